package jobs_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs/jobs"
	"github.com/fleetsim/fleetsim/hubjobs/query"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// fleet is a fake hub: devices with tags, a method behaviour per device, and
// a record of every call. Its answers take virtual time inside synctest
// bubbles.
type fleet struct {
	mu      sync.Mutex
	docs    map[string]map[string]any
	calls   map[string]int
	patches map[string][]string
	// answer decides a device's answer; nil answers {200, {"ok":true}} after
	// 100 ms.
	answer func(ctx context.Context, id string) (iothub.MethodResult, error)
}

func newFleet(n int) *fleet {
	f := &fleet{docs: map[string]map[string]any{}, calls: map[string]int{}, patches: map[string][]string{}}
	for i := range n {
		id := fmt.Sprintf("dev-%04d", i)
		f.docs[id] = map[string]any{"deviceId": id, "tags": map[string]any{"floor": float64(i % 5)}}
	}
	return f
}

func (f *fleet) InvokeMethod(ctx context.Context, id string, req iothub.MethodRequest) (iothub.MethodResult, error) {
	f.mu.Lock()
	f.calls[id]++
	answer := f.answer
	f.mu.Unlock()
	if answer != nil {
		return answer(ctx, id)
	}
	return answerAfter(ctx, 100*time.Millisecond, iothub.MethodResult{Status: 200, Payload: json.RawMessage(`{"ok":true}`)}, nil)
}

// answerAfter answers res and err after d, unless ctx ends first: then the
// call is cut with an error wrapping ctx.Err(), as the registry's method
// calls are.
func answerAfter(ctx context.Context, d time.Duration, res iothub.MethodResult, err error) (iothub.MethodResult, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return res, err
	case <-ctx.Done():
		return iothub.MethodResult{}, fmt.Errorf("invoke: %w", ctx.Err())
	}
}

func (f *fleet) ForceUpdateTwin(ctx context.Context, id string, patch iothub.TwinPatch) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.docs[id]; !ok {
		return iothub.Errorf(iothub.CodeDeviceNotFound, "no device %s", id)
	}
	doc := map[string]any{}
	if tags := patch.Tags(); tags != nil {
		doc["tags"] = tags
	}
	if desired := patch.Desired(); desired != nil {
		doc["properties"] = map[string]any{"desired": desired}
	}
	b, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	f.patches[id] = append(f.patches[id], string(b))
	return nil
}

func (f *fleet) SelectDeviceIDs(ctx context.Context, q *query.Query) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ids []string
	for id, doc := range f.docs {
		if q.Match(doc) {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func (f *fleet) callsOf(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[id]
}

// running is an engine running in the current bubble.
type running struct {
	*jobs.Engine
	stop func() error
}

func start(t testing.TB, cfg jobs.Config) running {
	t.Helper()
	e, err := jobs.NewEngine(cfg)
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	var once sync.Once
	var runErr error
	stop := func() error {
		once.Do(func() {
			cancel()
			runErr = <-done
		})
		return runErr
	}
	t.Cleanup(func() { _ = stop() })
	return running{e, stop}
}

func config(f *fleet, st jobs.Store) jobs.Config {
	return jobs.Config{Store: st, Methods: f, Twins: f, Devices: f}
}

func methodJob(id, cond string) jobs.JobRequest {
	rt := 30
	return jobs.JobRequest{
		JobID: id, Type: jobs.TypeDeviceMethod, QueryCondition: cond,
		CloudToDeviceMethod: &iothub.MethodRequest{MethodName: "reboot", Payload: json.RawMessage(`{"delay":1}`), ResponseTimeoutInSeconds: &rt},
	}
}

// waitStatus sleeps in virtual time until the job has status s, checking the
// statistics invariant at every look.
func waitStatus(t testing.TB, e running, id string, s jobs.Status) jobs.Job {
	t.Helper()
	for range 100000 {
		j, err := e.Get(id)
		if err != nil {
			t.Fatalf("Get(%s): %v", id, err)
		}
		checkStats(t, j)
		if j.Status == s {
			return j
		}
		if j.Status.Terminal() {
			t.Fatalf("job %s ended %s (%s), want %s", id, j.Status, j.FailureReason, s)
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("job %s never reached %s", id, s)
	return jobs.Job{}
}

// checkStats checks the statistics invariant of one read of a job: the
// counters add up to deviceCount, and a terminal job has no device pending
// or running.
func checkStats(t testing.TB, j jobs.Job) {
	t.Helper()
	s := j.DeviceJobStatistics
	if s.PendingCount+s.RunningCount+s.SucceededCount+s.FailedCount != s.DeviceCount || min(s.PendingCount, s.RunningCount, s.SucceededCount, s.FailedCount) < 0 {
		t.Fatalf("job %s statistics inconsistent: %+v", j.JobID, s)
	}
	if j.Status.Terminal() && s.PendingCount+s.RunningCount != 0 {
		t.Fatalf("job %s is %s with devices not done: %+v", j.JobID, j.Status, s)
	}
}

// checkRows checks that no devices.jobs row of the terminal job id is
// pending or running, and that its rows add up to its statistics.
func checkRows(t *testing.T, e running, id string) {
	t.Helper()
	j, err := e.Get(id)
	if err != nil {
		t.Fatal(err)
	}
	checkStats(t, j)
	if !j.Status.Terminal() {
		t.Fatalf("job %s is %s, not terminal", id, j.Status)
	}
	byStatus := map[any]int{}
	for _, r := range rows(t, e, "SELECT * FROM devices.jobs WHERE jobId = '"+id+"'") {
		byStatus[r["status"]]++
		if s := r["status"]; s == "pending" || s == "running" {
			t.Errorf("job %s is %s and its device job %v is %s", id, j.Status, r["deviceId"], s)
		}
	}
	s := j.DeviceJobStatistics
	if byStatus["completed"] != s.SucceededCount || byStatus["failed"]+byStatus["canceled"] != s.FailedCount {
		t.Errorf("job %s: rows by status %v, statistics %+v", id, byStatus, s)
	}
}

func rows(t *testing.T, e running, q string) []map[string]any {
	t.Helper()
	parsed, err := query.Parse(q)
	if err != nil {
		t.Fatalf("parse %q: %v", q, err)
	}
	var out []map[string]any
	cont := ""
	for {
		page, err := e.Query(parsed, 100, cont)
		if err != nil {
			t.Fatalf("execute %q: %v", q, err)
		}
		for _, it := range page.Items {
			m, _ := it.(map[string]any)
			out = append(out, m)
		}
		if page.Continuation == "" {
			return out
		}
		cont = page.Continuation
	}
}

func TestMethodJobRunsEveryDevice(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFleet(200)
		f.answer = func(ctx context.Context, id string) (iothub.MethodResult, error) {
			switch id {
			case "dev-0003":
				return answerAfter(ctx, 50*time.Millisecond, iothub.MethodResult{Status: 500, Payload: json.RawMessage(`{"error":"busy"}`)}, nil)
			case "dev-0008":
				return answerAfter(ctx, 50*time.Millisecond, iothub.MethodResult{}, iothub.Errorf(iothub.CodeDeviceNotOnline, "device dev-0008 is not online"))
			}
			return answerAfter(ctx, 50*time.Millisecond, iothub.MethodResult{Status: 200, Payload: json.RawMessage(`"done"`)}, nil)
		}
		e := start(t, config(f, jobs.NewMemStore()))
		j, err := e.Create(t.Context(), methodJob("reboot-floor-3", "tags.floor = 3"))
		if err != nil {
			t.Fatal(err)
		}
		if j.Status != jobs.StatusQueued || j.Pacing != "unlimited" || j.MaxExecutionTimeInSeconds != 3600 {
			t.Errorf("created %+v", j)
		}
		j = waitStatus(t, e, j.JobID, jobs.StatusCompleted)
		want := jobs.Statistics{DeviceCount: 40, SucceededCount: 39, FailedCount: 1}
		if j.DeviceJobStatistics != want {
			t.Errorf("statistics %+v, want %+v", j.DeviceJobStatistics, want)
		}
		if j.EndTime == nil || j.EndTime.Before(j.StartTime) {
			t.Errorf("end time %v, start %v", j.EndTime, j.StartTime)
		}
		for id, doc := range f.docs {
			want := 0
			if doc["tags"].(map[string]any)["floor"] == float64(3) {
				want = 1
			}
			if got := f.callsOf(id); got != want {
				t.Errorf("%s called %d times, want %d", id, got, want)
			}
		}
		// The device's 500 is the device's answer: the device job completed.
		r := rows(t, e, "SELECT * FROM devices.jobs WHERE deviceId = 'dev-0003'")
		if len(r) != 1 || r[0]["status"] != "completed" {
			t.Fatalf("rows %v", r)
		}
		if resp := r[0]["outcome"].(map[string]any)["deviceMethodResponse"].(map[string]any); resp["status"] != float64(500) {
			t.Errorf("outcome %v", resp)
		}
		r = rows(t, e, "SELECT * FROM devices.jobs WHERE status = 'failed'")
		if len(r) != 1 || r[0]["deviceId"] != "dev-0008" || r[0]["error"].(map[string]any)["code"] != "DeviceNotOnline" {
			t.Errorf("failed rows %v", r)
		}
		if n := len(rows(t, e, "SELECT * FROM devices.jobs WHERE jobId = 'reboot-floor-3'")); n != 40 {
			t.Errorf("%d rows of the job, want 40", n)
		}
	})
}

func TestScheduledJobStartsAtItsTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFleet(10)
		e := start(t, config(f, jobs.NewMemStore()))
		req := methodJob("later", "*")
		at := time.Now().Add(time.Hour)
		req.StartTime = &at
		j, err := e.Create(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		if j.Status != jobs.StatusScheduled || !j.StartTime.Equal(at) {
			t.Fatalf("created %+v", j)
		}
		time.Sleep(59 * time.Minute)
		synctest.Wait()
		if j, _ := e.Get("later"); j.Status != jobs.StatusScheduled || f.callsOf("dev-0000") != 0 {
			t.Fatalf("before its start time: %+v", j)
		}
		time.Sleep(time.Minute)
		j = waitStatus(t, e, "later", jobs.StatusCompleted)
		if j.DeviceJobStatistics.SucceededCount != 10 {
			t.Errorf("statistics %+v", j.DeviceJobStatistics)
		}
	})
}

func TestTwinJobPatchesEveryTwin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFleet(20)
		e := start(t, config(f, nil))
		_, err := e.Create(t.Context(), jobs.JobRequest{
			JobID: "twin", Type: jobs.TypeUpdateTwin, QueryCondition: "tags.floor IN [1, 2]",
			UpdateTwin: json.RawMessage(`{"etag":"*","tags":{"ring":"canary"},"properties":{"desired":{"interval":30}}}`),
		})
		if err != nil {
			t.Fatal(err)
		}
		j := waitStatus(t, e, "twin", jobs.StatusCompleted)
		if j.DeviceJobStatistics.SucceededCount != 8 {
			t.Errorf("statistics %+v", j.DeviceJobStatistics)
		}
		got := f.patches["dev-0001"]
		if len(got) != 1 || got[0] != `{"properties":{"desired":{"interval":30}},"tags":{"ring":"canary"}}` {
			t.Errorf("patches of dev-0001: %q", got)
		}
		if len(f.patches["dev-0000"]) != 0 {
			t.Errorf("dev-0000 (floor 0) was patched")
		}
	})
}

// watch reads job id every 10 ms of virtual time until the test ends and
// reports any read that breaks the statistics invariant.
func watch(t *testing.T, e running, id string) {
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan struct{})
	t.Cleanup(func() { stop(); <-done })
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if j, err := e.Get(id); err == nil {
				s := j.DeviceJobStatistics
				if s.PendingCount+s.RunningCount+s.SucceededCount+s.FailedCount != s.DeviceCount ||
					(j.Status.Terminal() && s.PendingCount+s.RunningCount != 0) {
					t.Errorf("job %s read %s with %+v", id, j.Status, s)
					return
				}
			}
			select {
			case <-time.After(10 * time.Millisecond):
			case <-ctx.Done():
			}
		}
	}()
}

// slowFleet is n devices that answer after 5 s (dev-0015 with
// GatewayTimeout, as the hub reports a device that does not answer in
// time), or fail with the context's error when the call is cut.
func slowFleet(n int) *fleet {
	f := newFleet(n)
	f.answer = func(ctx context.Context, id string) (iothub.MethodResult, error) {
		if id == "dev-0015" {
			return answerAfter(ctx, 5*time.Second, iothub.MethodResult{}, iothub.Errorf(iothub.CodeGatewayTimeout, "Timed out waiting for the response from device."))
		}
		return answerAfter(ctx, 5*time.Second, iothub.MethodResult{Status: 200}, nil)
	}
	return f
}

func TestCancelStopsNewWorkAndLetsCallsFinish(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := slowFleet(100)
		cfg := config(f, jobs.NewMemStore())
		cfg.MaxInFlight = 10
		e := start(t, cfg)
		if _, err := e.Create(t.Context(), methodJob("c", "*")); err != nil {
			t.Fatal(err)
		}
		watch(t, e, "c")
		time.Sleep(7 * time.Second) // 10 done, 10 in flight since 5 s
		synctest.Wait()
		j, err := e.Cancel(t.Context(), "c")
		if err != nil {
			t.Fatal(err)
		}
		checkStats(t, j)
		// Calls in flight: the job is still running, not yet cancelled.
		if j.Status != jobs.StatusRunning || j.EndTime != nil || j.StatusMessage == "" {
			t.Fatalf("cancelled job with calls in flight %+v", j)
		}
		if s := j.DeviceJobStatistics; s.SucceededCount != 10 || s.RunningCount != 10 || s.FailedCount != 80 || s.PendingCount != 0 {
			t.Errorf("right after cancel: %+v", s)
		}
		cancelledAt := time.Now()
		j = waitStatus(t, e, "c", jobs.StatusCancelled)
		// The calls in flight answered 3 s after the cancel, and were
		// recorded with their answers: dev-0015's GatewayTimeout fails it.
		if s := j.DeviceJobStatistics; s.SucceededCount != 19 || s.RunningCount != 0 || s.PendingCount != 0 || s.FailedCount != 81 {
			t.Errorf("after the calls in flight ended: %+v", s)
		}
		if j.EndTime == nil || !j.EndTime.Equal(cancelledAt.Add(3*time.Second).UTC()) {
			t.Errorf("end time %v, want when the last call in flight was recorded (%v)", j.EndTime, cancelledAt.Add(3*time.Second))
		}
		called := 0
		for id := range f.docs {
			called += f.callsOf(id)
		}
		if called != 20 {
			t.Errorf("%d devices called, want 20", called)
		}
		checkRows(t, e, "c")
		r := rows(t, e, "SELECT * FROM devices.jobs WHERE status = 'canceled'")
		if len(r) != 80 || r[0]["error"].(map[string]any)["code"] != jobs.ErrorCodeJobCancelled {
			t.Errorf("%d canceled rows, first %v", len(r), r[0])
		}
		r = rows(t, e, "SELECT * FROM devices.jobs WHERE deviceId = 'dev-0015'")
		if len(r) != 1 || r[0]["status"] != "failed" || r[0]["error"].(map[string]any)["code"] != "GatewayTimeout" {
			t.Errorf("the call in flight that timed out: %v", r)
		}
		r = rows(t, e, "SELECT * FROM devices.jobs WHERE deviceId = 'dev-0012'")
		if len(r) != 1 || r[0]["status"] != "completed" || r[0]["outcome"].(map[string]any)["deviceMethodResponse"] == nil {
			t.Errorf("a call in flight that answered: %v", r)
		}
		// Cancelling again returns the job unchanged.
		if j2, err := e.Cancel(t.Context(), "c"); err != nil || !j2.EndTime.Equal(*j.EndTime) || j2.Status != jobs.StatusCancelled {
			t.Errorf("second cancel: %+v, %v", j2, err)
		}
	})
}

// TestCancelWithoutCallsInFlightEndsAtOnce: a job cancelled before its start
// or between calls is cancelled when Cancel returns.
func TestCancelWithoutCallsInFlightEndsAtOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFleet(10)
		f.answer = func(context.Context, string) (iothub.MethodResult, error) {
			return iothub.MethodResult{Status: 200}, nil
		}
		cfg := config(f, jobs.NewMemStore())
		cfg.Pacing, _ = jobs.ParseProfile("S1")
		cfg.Pacing.MaxConcurrentJobs = 0
		e := start(t, cfg)
		later := time.Now().Add(time.Hour)
		req := methodJob("later", "*")
		req.StartTime = &later
		for _, r := range []jobs.JobRequest{methodJob("now", "*"), req} {
			if _, err := e.Create(t.Context(), r); err != nil {
				t.Fatal(err)
			}
		}
		// S1 starts a device every 100 ms and each answers at once: at
		// 150 ms two have answered and the third is not yet called.
		time.Sleep(150 * time.Millisecond)
		synctest.Wait()
		for _, id := range []string{"now", "later"} {
			j, err := e.Cancel(t.Context(), id)
			if err != nil {
				t.Fatal(err)
			}
			checkStats(t, j)
			if j.Status != jobs.StatusCancelled || j.EndTime == nil {
				t.Errorf("%s: %+v", id, j)
			}
		}
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		checkRows(t, e, "now")
		if j, _ := e.Get("now"); j.DeviceJobStatistics != (jobs.Statistics{DeviceCount: 10, SucceededCount: 2, FailedCount: 8}) {
			t.Errorf("statistics %+v", j.DeviceJobStatistics)
		}
		if j, _ := e.Get("later"); j.Status != jobs.StatusCancelled || j.DeviceJobStatistics.DeviceCount != 0 {
			t.Errorf("later: %+v", j)
		}
	})
}

// TestCancelOutlivesMaxExecutionTime: a job cancelled before its maximum
// execution time lets its calls in flight finish past that time, and ends
// cancelled, not expired.
func TestCancelOutlivesMaxExecutionTime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := slowFleet(30)
		cfg := config(f, jobs.NewMemStore())
		cfg.MaxInFlight = 10
		e := start(t, cfg)
		req := methodJob("short", "*")
		maxT := int64(8)
		req.MaxExecutionTimeInSeconds = &maxT
		if _, err := e.Create(t.Context(), req); err != nil {
			t.Fatal(err)
		}
		watch(t, e, "short")
		time.Sleep(7 * time.Second)
		synctest.Wait()
		if _, err := e.Cancel(t.Context(), "short"); err != nil {
			t.Fatal(err)
		}
		j := waitStatus(t, e, "short", jobs.StatusCancelled)
		if s := j.DeviceJobStatistics; s.SucceededCount != 19 || s.FailedCount != 11 {
			t.Errorf("statistics %+v", s)
		}
		checkRows(t, e, "short")
	})
}

// TestCancelledJobEndsAfterRestart: the hub stops (as a kill would) while a
// cancelled job waits for its calls in flight. Their answers are lost; after
// the restart the job ends cancelled at once, those devices canceled, and no
// device is called again.
func TestCancelledJobEndsAfterRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := slowFleet(30)
		st := jobs.NewMemStore()
		cfg := config(f, st)
		cfg.MaxInFlight = 10
		e := start(t, cfg)
		if _, err := e.Create(t.Context(), methodJob("c", "*")); err != nil {
			t.Fatal(err)
		}
		time.Sleep(7 * time.Second)
		synctest.Wait()
		if _, err := e.Cancel(t.Context(), "c"); err != nil {
			t.Fatal(err)
		}
		if err := e.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		j, _ := e.Get("c")
		checkStats(t, j)
		if j.Status.Terminal() {
			t.Errorf("after the stop: %+v", j)
		}

		e2 := start(t, cfg)
		watch(t, e2, "c")
		j = waitStatus(t, e2, "c", jobs.StatusCancelled)
		if s := j.DeviceJobStatistics; s.SucceededCount != 10 || s.FailedCount != 20 {
			t.Errorf("after the restart: %+v", s)
		}
		checkRows(t, e2, "c")
		called := 0
		for id := range f.docs {
			called += f.callsOf(id)
		}
		if called != 20 {
			t.Errorf("%d calls, want 20", called)
		}
		// The end is stored: a third start reads the same job.
		if err := e2.stop(); err != nil {
			t.Fatal(err)
		}
		e3 := start(t, cfg)
		if j3, _ := e3.Get("c"); j3.Status != jobs.StatusCancelled || !j3.EndTime.Equal(*j.EndTime) {
			t.Errorf("third start: %+v", j3)
		}
		checkRows(t, e3, "c")
	})
}

// TestStoreFailureWhileCancelling: the store fails while a cancelled job
// waits for its calls in flight. The engine stops; the job never reads
// terminal with devices not done, and it ends cancelled once the hub runs
// again on a working store.
func TestStoreFailureWhileCancelling(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := slowFleet(30)
		st := jobs.NewMemStore()
		cfg := config(f, st)
		cfg.MaxInFlight = 10
		e := start(t, cfg)
		if _, err := e.Create(t.Context(), methodJob("c", "*")); err != nil {
			t.Fatal(err)
		}
		watch(t, e, "c")
		time.Sleep(7 * time.Second)
		synctest.Wait()
		if _, err := e.Cancel(t.Context(), "c"); err != nil {
			t.Fatal(err)
		}
		boom := errors.New("disk full")
		st.SetWriteError(boom)
		time.Sleep(5 * time.Second)
		synctest.Wait()
		if err := e.stop(); !errors.Is(err, boom) {
			t.Errorf("Run returned %v, want the store error", err)
		}
		j, _ := e.Get("c")
		checkStats(t, j)

		st.SetWriteError(nil)
		e2 := start(t, cfg)
		j = waitStatus(t, e2, "c", jobs.StatusCancelled)
		if s := j.DeviceJobStatistics; s.SucceededCount != 10 || s.FailedCount != 20 {
			t.Errorf("after the restart: %+v", s)
		}
		checkRows(t, e2, "c")
	})
}

func TestMaxExecutionTimeFailsTheRest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFleet(30)
		f.answer = func(ctx context.Context, id string) (iothub.MethodResult, error) {
			if id >= "dev-0010" {
				<-ctx.Done() // never answers
				return iothub.MethodResult{}, ctx.Err()
			}
			return iothub.MethodResult{Status: 200}, nil
		}
		e := start(t, config(f, jobs.NewMemStore()))
		req := methodJob("slow", "*")
		maxT := int64(20)
		req.MaxExecutionTimeInSeconds = &maxT
		if _, err := e.Create(t.Context(), req); err != nil {
			t.Fatal(err)
		}
		watch(t, e, "slow")
		j := waitStatus(t, e, "slow", jobs.StatusFailed)
		if s := j.DeviceJobStatistics; s.SucceededCount != 10 || s.FailedCount != 20 {
			t.Errorf("statistics %+v", s)
		}
		if d := j.EndTime.Sub(j.StartTime); d != 20*time.Second {
			t.Errorf("ran %v of virtual time, want 20s", d)
		}
		r := rows(t, e, "SELECT * FROM devices.jobs WHERE status = 'failed'")
		if len(r) != 20 || r[0]["error"].(map[string]any)["code"] != jobs.ErrorCodeJobExpired {
			t.Errorf("%d failed rows: %v", len(r), r)
		}
		checkRows(t, e, "slow")
		// Cancel after the expiry changes nothing.
		if j2, err := e.Cancel(t.Context(), "slow"); err != nil || j2.Status != jobs.StatusFailed || !j2.EndTime.Equal(*j.EndTime) {
			t.Errorf("cancel of an expired job: %+v, %v", j2, err)
		}
	})
}

func TestPacingProfile(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFleet(50)
		f.answer = func(context.Context, string) (iothub.MethodResult, error) {
			return iothub.MethodResult{Status: 200}, nil
		}
		cfg := config(f, jobs.NewMemStore())
		var err error
		if cfg.Pacing, err = jobs.ParseProfile("S1"); err != nil {
			t.Fatal(err)
		}
		e := start(t, cfg)
		t0 := time.Now()
		if _, err := e.Create(t.Context(), methodJob("paced", "*")); err != nil {
			t.Fatal(err)
		}
		// S1 allows one active job.
		_, err = e.Create(t.Context(), methodJob("second", "*"))
		if ie := iothub.AsError(err); ie.Code != iothub.CodeThrottlingMaxActiveJobCountExceeded || ie.HTTPStatus() != 429 {
			t.Fatalf("second job: %v", err)
		}
		j := waitStatus(t, e, "paced", jobs.StatusCompleted)
		// 50 operations at 10/s take 4.9 s of virtual time (the first is free).
		if d := time.Since(t0); d < 4900*time.Millisecond || d > 5100*time.Millisecond {
			t.Errorf("50 operations at S1 took %v of virtual time, want about 4.9s", d)
		}
		if j.Pacing != "S1" {
			t.Errorf("pacing %q", j.Pacing)
		}
		if _, err := e.Create(t.Context(), methodJob("second", "*")); err != nil {
			t.Errorf("after the first ended: %v", err)
		}
	})
}

func TestResumeAfterRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFleet(100)
		// Before the restart devices from dev-0040 on never answer; after
		// it every device waits for release, so the loaded state can be
		// read before the resumed job moves on.
		var mu sync.Mutex
		restarted := false
		release := make(chan struct{})
		f.answer = func(ctx context.Context, id string) (iothub.MethodResult, error) {
			mu.Lock()
			r := restarted
			mu.Unlock()
			switch {
			case !r && id >= "dev-0040":
				<-ctx.Done()
				return iothub.MethodResult{}, ctx.Err()
			case r:
				select {
				case <-release:
				case <-ctx.Done():
					return iothub.MethodResult{}, ctx.Err()
				}
			}
			return iothub.MethodResult{Status: 200}, nil
		}
		st := jobs.NewMemStore()
		cfg := config(f, st)
		cfg.MaxInFlight = 20
		e := start(t, cfg)
		later := time.Now().Add(time.Hour)
		sched := methodJob("scheduled", "*")
		sched.StartTime = &later
		for _, r := range []jobs.JobRequest{methodJob("resume", "*"), sched} {
			if _, err := e.Create(t.Context(), r); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(time.Second)
		synctest.Wait()
		j, _ := e.Get("resume")
		if s := j.DeviceJobStatistics; s.SucceededCount != 40 || s.RunningCount != 20 {
			t.Fatalf("before the restart: %+v", s)
		}
		if err := e.stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		mu.Lock()
		restarted = true
		mu.Unlock()

		e2 := start(t, cfg)
		synctest.Wait()
		j, err := e2.Get("resume")
		if err != nil {
			t.Fatal(err)
		}
		if s := j.DeviceJobStatistics; s.SucceededCount != 40 || s.FailedCount != 0 || s.PendingCount+s.RunningCount != 60 || j.Status != jobs.StatusRunning {
			t.Errorf("loaded %s %+v", j.Status, s)
		}
		close(release)
		waitStatus(t, e2, "resume", jobs.StatusCompleted)
		for id := range f.docs {
			want := 1
			if id >= "dev-0040" && id < "dev-0060" {
				want = 2 // in flight at the restart, never recorded
			}
			if got := f.callsOf(id); got != want {
				t.Errorf("%s called %d times, want %d", id, got, want)
			}
		}
		if j, _ := e2.Get("scheduled"); j.Status != jobs.StatusScheduled {
			t.Errorf("scheduled job after restart: %s", j.Status)
		}
		time.Sleep(time.Hour)
		waitStatus(t, e2, "scheduled", jobs.StatusCompleted)
	})
}

func TestRetentionPrunesOldJobs(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFleet(5)
		st := jobs.NewMemStore()
		cfg := config(f, st)
		cfg.Retention = 2 * time.Hour
		e := start(t, cfg)
		if _, err := e.Create(t.Context(), methodJob("old", "*")); err != nil {
			t.Fatal(err)
		}
		waitStatus(t, e, "old", jobs.StatusCompleted)
		time.Sleep(90 * time.Minute)
		synctest.Wait()
		if _, err := e.Get("old"); err != nil {
			t.Fatalf("pruned too early: %v", err)
		}
		time.Sleep(2 * time.Hour)
		synctest.Wait()
		if _, err := e.Get("old"); iothub.AsError(err).Code != iothub.CodeJobNotFound {
			t.Errorf("after retention: %v", err)
		}
		if n := len(rows(t, e, "SELECT * FROM devices.jobs")); n != 0 {
			t.Errorf("%d device job rows left", n)
		}
		n := 0
		_ = st.Load(func(jobs.StoredJob) error { n++; return nil })
		if n != 0 {
			t.Errorf("%d jobs left in the store", n)
		}
	})
}

func TestStoreFailureStopsTheEngine(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFleet(5)
		st := jobs.NewMemStore()
		e := start(t, config(f, st))
		if _, err := e.Create(t.Context(), methodJob("j", "*")); err != nil {
			t.Fatal(err)
		}
		watch(t, e, "j")
		boom := errors.New("disk full")
		st.SetWriteError(boom)
		synctest.Wait()
		time.Sleep(time.Second)
		if err := e.stop(); !errors.Is(err, boom) {
			t.Errorf("Run returned %v, want the store error", err)
		}
		if j, _ := e.Get("j"); j.Status.Terminal() {
			t.Errorf("a job whose results were not stored ended %s", j.Status)
		}
		if _, err := e.Create(t.Context(), methodJob("k", "*")); iothub.AsError(err).HTTPStatus() != 500 {
			t.Errorf("Create with a failing store: %v", err)
		}
	})
}

func TestCreateRejects(t *testing.T) {
	rt := 30
	bigRT := 301
	method := &iothub.MethodRequest{MethodName: "m", ResponseTimeoutInSeconds: &rt}
	tests := []struct {
		name string
		req  jobs.JobRequest
		code iothub.Code
	}{
		{"bad id", jobs.JobRequest{JobID: "a b", Type: jobs.TypeDeviceMethod, CloudToDeviceMethod: method, QueryCondition: "*"}, iothub.CodeArgumentInvalid},
		{"long id", jobs.JobRequest{JobID: string(make([]byte, 65)), Type: jobs.TypeDeviceMethod, CloudToDeviceMethod: method, QueryCondition: "*"}, iothub.CodeArgumentInvalid},
		{"legacy type", jobs.JobRequest{JobID: "j", Type: "scheduleDirectMethod", CloudToDeviceMethod: method, QueryCondition: "*"}, iothub.CodeGenericBadRequest},
		{"no type", jobs.JobRequest{JobID: "j", CloudToDeviceMethod: method, QueryCondition: "*"}, iothub.CodeGenericBadRequest},
		{"no method", jobs.JobRequest{JobID: "j", Type: jobs.TypeDeviceMethod, QueryCondition: "*"}, iothub.CodeArgumentNull},
		{"no method name", jobs.JobRequest{JobID: "j", Type: jobs.TypeDeviceMethod, CloudToDeviceMethod: &iothub.MethodRequest{}, QueryCondition: "*"}, iothub.CodeArgumentInvalid},
		{"timeout out of range", jobs.JobRequest{JobID: "j", Type: jobs.TypeDeviceMethod, CloudToDeviceMethod: &iothub.MethodRequest{MethodName: "m", ResponseTimeoutInSeconds: &bigRT}, QueryCondition: "*"}, iothub.CodeArgumentInvalid},
		{"full select", jobs.JobRequest{JobID: "j", Type: jobs.TypeDeviceMethod, CloudToDeviceMethod: method, QueryCondition: "SELECT * FROM devices"}, iothub.CodeArgumentInvalid},
		{"no condition", jobs.JobRequest{JobID: "j", Type: jobs.TypeDeviceMethod, CloudToDeviceMethod: method}, iothub.CodeArgumentNull},
		{"bad condition", jobs.JobRequest{JobID: "j", Type: jobs.TypeDeviceMethod, CloudToDeviceMethod: method, QueryCondition: "tags.x = "}, iothub.CodeArgumentInvalid},
		{"no patch", jobs.JobRequest{JobID: "j", Type: jobs.TypeUpdateTwin, QueryCondition: "*"}, iothub.CodeArgumentNull},
		{"etag not *", jobs.JobRequest{JobID: "j", Type: jobs.TypeUpdateTwin, QueryCondition: "*", UpdateTwin: json.RawMessage(`{"etag":"AAAA","tags":{"a":1}}`)}, iothub.CodeArgumentInvalid},
		{"bad tag name", jobs.JobRequest{JobID: "j", Type: jobs.TypeUpdateTwin, QueryCondition: "*", UpdateTwin: json.RawMessage(`{"tags":{"a b":1}}`)}, iothub.CodeArgumentInvalid},
		{"bad value char", jobs.JobRequest{JobID: "j", Type: jobs.TypeUpdateTwin, QueryCondition: "*", UpdateTwin: json.RawMessage(`{"properties":{"desired":{"a":"x=y"}}}`)}, iothub.CodeArgumentInvalid},
		{"reported", jobs.JobRequest{JobID: "j", Type: jobs.TypeUpdateTwin, QueryCondition: "*", UpdateTwin: json.RawMessage(`{"properties":{"reported":{"a":1}}}`)}, iothub.CodeArgumentInvalid},
	}
	e, err := jobs.NewEngine(jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.Create(t.Context(), tt.req)
			ie := iothub.AsError(err)
			if err == nil || ie.Code != tt.code || ie.HTTPStatus() != 400 {
				t.Errorf("Create: %v (code %v), want %v", err, ie.Code, tt.code)
			}
		})
	}
	if _, err := e.Create(t.Context(), methodJob("dup", "*")); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Create(t.Context(), methodJob("dup", "*")); iothub.AsError(err).Code != iothub.CodeJobAlreadyExists {
		t.Errorf("duplicate: %v", err)
	}
	if _, err := e.Get("nope"); iothub.AsError(err).Code != iothub.CodeJobNotFound {
		t.Errorf("Get unknown: %v", err)
	}
}

func TestListFiltersAndPages(t *testing.T) {
	e, err := jobs.NewEngine(jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 25 {
		r := methodJob(fmt.Sprintf("m%02d", i), "*")
		if i%5 == 0 {
			r = jobs.JobRequest{JobID: fmt.Sprintf("t%02d", i), Type: jobs.TypeUpdateTwin, QueryCondition: "*", UpdateTwin: json.RawMessage(`{"tags":{"a":1}}`)}
		}
		if _, err := e.Create(t.Context(), r); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.Cancel(t.Context(), "m01"); err != nil {
		t.Fatal(err)
	}
	var all []string
	cont := ""
	for {
		page, next, err := e.List("", "", 7, cont)
		if err != nil {
			t.Fatal(err)
		}
		for _, j := range page {
			all = append(all, j.JobID)
		}
		if next == "" {
			break
		}
		cont = next
	}
	if len(all) != 25 || !slices.IsSorted(all) {
		t.Errorf("paged ids %v", all)
	}
	tests := []struct {
		typ, status string
		want        int
	}{
		{"scheduleUpdateTwin", "", 5},
		{"ScheduleDeviceMethod", "", 20},
		{"", "Cancelled", 1},
		{"", "canceled", 1},
		{"", "queued", 24},
		{"", "enqueued", 24},
		{"scheduleUpdateTwin", "completed", 0},
	}
	for _, tt := range tests {
		got, _, err := e.List(tt.typ, tt.status, 100, "")
		if err != nil || len(got) != tt.want {
			t.Errorf("List(%q, %q) = %d jobs, %v; want %d", tt.typ, tt.status, len(got), err, tt.want)
		}
	}
	if _, _, err := e.List("", "", 10, "!!"); iothub.AsError(err).Code != iothub.CodeArgumentInvalid {
		t.Errorf("bad continuation: %v", err)
	}
}

// TestRowsQueryableOnceRunning: the rows of a job are indexed while its
// devices run, and a devices.jobs query made as soon as the job runs waits
// for them: an indexed condition finds every row. (Real time, not a
// synctest bubble, where the indexing would always finish first.)
func TestRowsQueryableOnceRunning(t *testing.T) {
	const n = 20000
	f := newFleet(n)
	release := make(chan struct{})
	f.answer = func(ctx context.Context, id string) (iothub.MethodResult, error) {
		select {
		case <-release:
			return iothub.MethodResult{Status: 200}, nil
		case <-ctx.Done():
			return iothub.MethodResult{}, ctx.Err()
		}
	}
	defer close(release)
	e := start(t, config(f, jobs.NewMemStore()))
	if _, err := e.Create(t.Context(), methodJob("big", "*")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		j, err := e.Get("big")
		if err != nil {
			t.Fatal(err)
		}
		if j.Status == jobs.StatusRunning {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("job is %s", j.Status)
		}
		runtime.Gosched()
	}
	if got := len(rows(t, e, "SELECT * FROM devices.jobs WHERE jobId = 'big'")); got != n {
		t.Fatalf("%d rows found through the index, want %d", got, n)
	}
}

// TestQueryServesDevicesJobsOnly: the engine answers queries of
// devices.jobs and refuses the registry's collections with IoT Hub's 400.
func TestQueryServesDevicesJobsOnly(t *testing.T) {
	e, err := jobs.NewEngine(jobs.Config{})
	if err != nil {
		t.Fatalf("NewEngine: %v", err)
	}
	for _, tc := range []struct {
		q      string
		status int
	}{
		{"SELECT * FROM devices.jobs", 0},
		{"SELECT * FROM devices.jobs WHERE jobId = 'none'", 0},
		{"SELECT * FROM devices", 400},
		{"SELECT * FROM devices.modules", 400},
	} {
		q, err := query.Parse(tc.q)
		if err != nil {
			t.Fatalf("parse %q: %v", tc.q, err)
		}
		page, err := e.Query(q, 10, "")
		var ie *iothub.Error
		switch {
		case tc.status == 0 && (err != nil || len(page.Items) != 0):
			t.Errorf("%s: %+v, %v; want an empty page", tc.q, page, err)
		case tc.status != 0 && (!errors.As(err, &ie) || ie.HTTPStatus() != tc.status):
			t.Errorf("%s: %v; want a %d", tc.q, err, tc.status)
		}
	}
}
