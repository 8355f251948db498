package jobstore_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/fleetsim/fleetsim/hubjobs/jobs"
	"github.com/fleetsim/fleetsim/hubjobs/jobstore"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

func open(t testing.TB, path string) *jobstore.Store {
	t.Helper()
	s, err := jobstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func load(t testing.TB, s *jobstore.Store) map[string]jobs.StoredJob {
	t.Helper()
	out := map[string]jobs.StoredJob{}
	if err := s.Load(func(sj jobs.StoredJob) error { out[sj.Record.JobID] = sj; return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func record(id string) jobs.JobRecord {
	return jobs.JobRecord{Job: jobs.Job{
		JobID: id, Type: jobs.TypeDeviceMethod, QueryCondition: "*", Status: jobs.StatusRunning,
		CloudToDeviceMethod: &iothub.MethodRequest{MethodName: "reboot", Payload: json.RawMessage(`{"a":1}`)},
		CreatedTime:         time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC),
		StartTime:           time.Date(2026, 11, 22, 10, 0, 1, 0, time.UTC),
		DeviceJobStatistics: jobs.Statistics{DeviceCount: 3, PendingCount: 3},
	}, Started: time.Date(2026, 11, 22, 10, 0, 1, 0, time.UTC)}
}

func TestRoundTripAcrossReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.db")
	s := open(t, path)
	w := jobs.Write{
		Jobs:       []jobs.JobRecord{record("a"), record("b")},
		DeviceSets: []jobs.DeviceSet{{JobID: "a", Devices: []string{"d1", "d2", "d3"}}, {JobID: "b", Devices: []string{}}},
		Results: []jobs.DeviceResult{
			{JobID: "a", DeviceID: "d1", Status: jobs.StatusCompleted, Response: &iothub.MethodResult{Status: 500, Payload: json.RawMessage(`"busy"`)}},
			{JobID: "a", DeviceID: "d2", Status: jobs.StatusFailed, Error: &jobs.DeviceJobError{Code: "DeviceNotOnline", Description: "offline"}},
		},
	}
	if err := s.Write(w); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer s.Close()
	got := load(t, s)
	a, b := got["a"], got["b"]
	if len(got) != 2 || !a.Record.CreatedTime.Equal(w.Jobs[0].CreatedTime) || a.Record.CloudToDeviceMethod.MethodName != "reboot" {
		t.Fatalf("loaded %+v", got)
	}
	if !slices.Equal(a.Devices, []string{"d1", "d2", "d3"}) || b.Devices == nil || len(b.Devices) != 0 {
		t.Errorf("device sets %q, %q", a.Devices, b.Devices)
	}
	slices.SortFunc(a.Results, func(x, y jobs.DeviceResult) int { return cmpString(x.DeviceID, y.DeviceID) })
	if len(a.Results) != 2 || a.Results[0].Response.Status != 500 || a.Results[1].Error.Code != "DeviceNotOnline" {
		t.Errorf("results %+v", a.Results)
	}
}

func cmpString(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func TestWriteIsAllOrNothing(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "jobs.db"))
	defer s.Close()
	tests := []struct {
		name string
		w    jobs.Write
	}{
		{"result of an unknown job", jobs.Write{Jobs: []jobs.JobRecord{record("x")}, Results: []jobs.DeviceResult{{JobID: "nope", DeviceID: "d"}}}},
		{"set of an unknown job", jobs.Write{Jobs: []jobs.JobRecord{record("x")}, DeviceSets: []jobs.DeviceSet{{JobID: "nope"}}}},
		{"newline in a device id", jobs.Write{Jobs: []jobs.JobRecord{record("x")}, DeviceSets: []jobs.DeviceSet{{JobID: "x", Devices: []string{"a\nb"}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Write(tt.w); err == nil {
				t.Fatal("Write succeeded")
			}
			if got := load(t, s); len(got) != 0 {
				t.Errorf("a failed Write left %v", got)
			}
		})
	}
}

func TestDelete(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "jobs.db"))
	defer s.Close()
	err := s.Write(jobs.Write{
		Jobs:       []jobs.JobRecord{record("a"), record("b")},
		DeviceSets: []jobs.DeviceSet{{JobID: "a", Devices: []string{"d"}}},
		Results:    []jobs.DeviceResult{{JobID: "a", DeviceID: "d", Status: jobs.StatusCompleted}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete([]string{"a", "unknown"}); err != nil {
		t.Fatal(err)
	}
	got := load(t, s)
	if _, ok := got["a"]; ok || len(got) != 1 {
		t.Errorf("after delete: %v", got)
	}
	// The id can be used again, without the old set and results.
	if err := s.Write(jobs.Write{Jobs: []jobs.JobRecord{record("a")}}); err != nil {
		t.Fatal(err)
	}
	if a := load(t, s)["a"]; a.Devices != nil || len(a.Results) != 0 {
		t.Errorf("recreated job has %v, %v", a.Devices, a.Results)
	}
}

func TestOpenRejectsOtherLayouts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucketIfNotExists([]byte("meta"))
		if err != nil {
			return err
		}
		return b.Put([]byte("layout"), []byte("99"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jobstore.Open(path); !errors.Is(err, jobstore.ErrLayout) {
		t.Errorf("Open: %v, want ErrLayout", err)
	}
}

// TestKillLosesNoAcknowledgedWrite runs a writer in a child process, kills it
// with SIGKILL after some acknowledged batches, and checks that every
// acknowledged batch is in the file.
func TestKillLosesNoAcknowledgedWrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jobs.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$", "-test.count=1")
	cmd.Env = append(os.Environ(), "JOBSTORE_WRITER="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := -1
	sc := bufio.NewScanner(out)
	deadline := time.Now().Add(20 * time.Second)
	for acked < 20 && time.Now().Before(deadline) && sc.Scan() {
		if n, err := strconv.Atoi(sc.Text()); err == nil {
			acked = n
		}
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	if acked < 0 {
		t.Fatal("the writer acknowledged nothing")
	}
	s := open(t, path)
	defer s.Close()
	j, ok := load(t, s)["crash"]
	if !ok {
		t.Fatal("the job is gone")
	}
	have := map[string]bool{}
	for _, r := range j.Results {
		have[r.DeviceID] = true
	}
	for b := 0; b <= acked; b++ {
		for i := range 256 {
			if id := fmt.Sprintf("b%03d-d%03d", b, i); !have[id] {
				t.Fatalf("batch %d was acknowledged but %s is missing", b, id)
			}
		}
	}
	t.Logf("%d batches acknowledged, %d results found", acked+1, len(j.Results))
}

// TestHelperWriter is the child of TestKillLosesNoAcknowledgedWrite: it
// prints the number of each batch once Write has returned.
func TestHelperWriter(t *testing.T) {
	path := os.Getenv("JOBSTORE_WRITER")
	if path == "" {
		t.Skip("run by TestKillLosesNoAcknowledgedWrite")
	}
	s := open(t, path)
	if err := s.Write(jobs.Write{Jobs: []jobs.JobRecord{record("crash")}}); err != nil {
		t.Fatal(err)
	}
	for b := range 1000 {
		w := jobs.Write{}
		for i := range 256 {
			w.Results = append(w.Results, jobs.DeviceResult{JobID: "crash", DeviceID: fmt.Sprintf("b%03d-d%03d", b, i), Status: jobs.StatusCompleted})
		}
		if err := s.Write(w); err != nil {
			t.Fatal(err)
		}
		fmt.Println(b)
	}
}

func BenchmarkWriteResults(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "jobs.db"))
	defer s.Close()
	if err := s.Write(jobs.Write{Jobs: []jobs.JobRecord{record("bench")}}); err != nil {
		b.Fatal(err)
	}
	n := 0
	for b.Loop() {
		w := jobs.Write{}
		for range 256 {
			w.Results = append(w.Results, jobs.DeviceResult{JobID: "bench", DeviceID: fmt.Sprintf("dev-%07d", n), Status: jobs.StatusCompleted,
				Response: &iothub.MethodResult{Status: 200, Payload: json.RawMessage(`{"ok":true}`)}})
			n++
		}
		if err := s.Write(w); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "results/s")
}

func BenchmarkLoad100k(b *testing.B) {
	s := open(b, filepath.Join(b.TempDir(), "jobs.db"))
	defer s.Close()
	w := jobs.Write{Jobs: []jobs.JobRecord{record("big")}}
	ids := make([]string, 100_000)
	for i := range ids {
		ids[i] = fmt.Sprintf("dev-%06d", i)
		w.Results = append(w.Results, jobs.DeviceResult{JobID: "big", DeviceID: ids[i], Status: jobs.StatusCompleted})
	}
	w.DeviceSets = []jobs.DeviceSet{{JobID: "big", Devices: ids}}
	if err := s.Write(w); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		n := 0
		if err := s.Load(func(sj jobs.StoredJob) error { n += len(sj.Results); return nil }); err != nil || n != 100_000 {
			b.Fatal(err, n)
		}
	}
}
