package registry_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs/query"
	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/hubjobs/regstore"
	"github.com/fleetsim/fleetsim/internal/iothub"
	"github.com/fleetsim/fleetsim/internal/testkit"
)

// faultyStore is the real store with two faults a test turns on and off:
// hold makes Apply wait until release, failWith makes Apply fail without
// writing anything, as a full or broken disk does.
type faultyStore struct {
	registry.Persistence
	calls atomic.Int64 // Apply calls entered

	mu   sync.Mutex
	gate chan struct{} // nil: not held
	fail error
}

func (s *faultyStore) hold() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gate == nil {
		s.gate = make(chan struct{})
	}
}

func (s *faultyStore) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gate != nil {
		close(s.gate)
		s.gate = nil
	}
}

func (s *faultyStore) failWith(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = err
}

func (s *faultyStore) Apply(batch []registry.Write) error {
	s.calls.Add(1)
	s.mu.Lock()
	gate := s.gate
	s.mu.Unlock()
	if gate != nil {
		<-gate
	}
	s.mu.Lock()
	fail := s.fail
	s.mu.Unlock()
	if fail != nil {
		return fail
	}
	return s.Persistence.Apply(batch)
}

// faultyReg is a registry on a faultyStore, running; stop ends Run and
// returns its error.
type faultyReg struct {
	r    *registry.Registry
	l    *fakeLink
	st   *faultyStore
	path string
	done chan error
	stop context.CancelFunc
}

func newFaultyReg(t *testing.T) *faultyReg {
	t.Helper()
	path := filepath.Join(t.TempDir(), "r.db")
	s, err := regstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	fs := &faultyStore{Persistence: s}
	l := newFakeLink()
	r, err := registry.New(registry.Options{Hostname: "hub.local", Store: fs, Link: l})
	if err != nil {
		t.Fatal(err)
	}
	l.r = r
	runCtx, stop := context.WithCancel(context.Background())
	f := &faultyReg{r: r, l: l, st: fs, path: path, done: make(chan error, 1), stop: stop}
	go func() { f.done <- r.Run(runCtx) }()
	t.Cleanup(func() {
		fs.release()
		stop()
		<-f.done
		l.wg.Wait()
	})
	return f
}

// view is what readers, queries, job selection and the device saw.
type view struct {
	Twin, Device map[string]any
	Stats        registry.Statistics
	IDs          []string
	Selected     []string
	Queried      int
	Connected    bool
	Credentials  string
	Pushes       []string
}

func (f *faultyReg) view(t *testing.T) view {
	t.Helper()
	var v view
	if tw, err := f.r.GetTwin("d1"); err == nil {
		v.Twin = jsonOf(t, tw)
		delete(v.Twin, "lastActivityTime")
	}
	if d, err := f.r.GetDevice("d1"); err == nil {
		v.Device = jsonOf(t, d)
		delete(v.Device, "lastActivityTime")
	}
	v.Stats = f.r.Statistics()
	for _, d := range f.r.ListDevices(0) {
		v.IDs = append(v.IDs, d.DeviceID)
	}
	cond, err := query.ParseCondition("tags.n = 2 OR properties.desired.rate = 5 OR status = 'disabled' OR deviceId = 'd2' OR properties.reported.fw = '2.0'")
	if err != nil {
		t.Fatal(err)
	}
	if v.Selected, err = f.r.SelectDeviceIDs(ctx, cond); err != nil {
		t.Fatal(err)
	}
	q, err := query.Parse("SELECT * FROM devices WHERE tags.n = 2 OR properties.desired.rate = 5")
	if err != nil {
		t.Fatal(err)
	}
	page, err := f.r.Query(q, 100, "")
	if err != nil {
		t.Fatal(err)
	}
	v.Queried = len(page.Items)
	v.Connected = f.l.online("d1")
	for _, id := range []string{"d1", "d2"} {
		_, _, enabled, err := f.r.Credentials(id)
		v.Credentials += fmt.Sprintf("%s:%v:%v ", id, enabled, err == nil)
	}
	for _, m := range f.l.messages() {
		if strings.Contains(m, "PATCH/properties/desired") {
			v.Pushes = append(v.Pushes, m)
		}
	}
	return v
}

// writes are the registry's write paths, each changing something every
// reader in view would see.
var writes = []struct {
	name string
	do   func(f *faultyReg) error
}{
	{"create", func(f *faultyReg) error {
		_, err := f.r.CreateDevice(ctx, registry.Device{DeviceID: "d2"})
		return err
	}},
	{"disable", func(f *faultyReg) error {
		_, err := f.r.UpdateDevice(ctx, registry.Device{DeviceID: "d1", Status: "disabled"}, "*")
		return err
	}},
	{"delete", func(f *faultyReg) error { return f.r.DeleteDevice(ctx, "d1", "*") }},
	{"patch twin", func(f *faultyReg) error {
		_, err := f.r.PatchTwin(ctx, "d1", []byte(`{"tags":{"n":2},"properties":{"desired":{"rate":5}}}`), "*")
		return err
	}},
	{"replace twin", func(f *faultyReg) error {
		_, err := f.r.ReplaceTwin(ctx, "d1", []byte(`{"tags":{"n":2},"properties":{"desired":{"rate":5}}}`), "*")
		return err
	}},
	{"twin job", func(f *faultyReg) error {
		p, err := iothub.ParseTwinPatch([]byte(`{"tags":{"n":2},"properties":{"desired":{"rate":5}}}`))
		if err != nil {
			return err
		}
		return f.r.ForceUpdateTwin(ctx, "d1", p)
	}},
	{"bulk", func(f *faultyReg) error {
		res, err := f.r.BulkUpdate(ctx, []registry.ExportImportDevice{
			{ID: "d2", ImportMode: "create"},
			{ID: "d1", ImportMode: "updateTwin", Tags: map[string]any{"n": 2.0}},
		})
		if err == nil && !res.IsSuccessful {
			err = &iothub.Error{Code: iothub.CodeServerError, Message: res.Errors[0].ErrorStatus}
			for _, e := range res.Errors {
				if e.ErrorCode != iothub.CodeServerError.Name {
					err = fmt.Errorf("bulk entry %s: %s", e.DeviceID, e.ErrorCode)
				}
			}
		}
		return err
	}},
	{"reported", func(f *faultyReg) error {
		before := len(f.l.messages())
		publish(f.r, "d1", iothub.TwinReportedTopic("R"), `{"fw":"2.0"}`)
		var answer string
		for deadline := time.Now().Add(5 * time.Second); answer == "" && time.Now().Before(deadline); {
			if m := f.l.messages(); len(m) > before {
				answer = m[before]
			} else {
				time.Sleep(time.Millisecond)
			}
		}
		switch {
		case strings.HasPrefix(answer, "d1 $iothub/twin/res/204/"):
			return nil
		case strings.HasPrefix(answer, `d1 $iothub/twin/res/500/?$rid=R {"errorCode":500001`):
			return &iothub.Error{Code: iothub.CodeServerError}
		}
		return fmt.Errorf("answer %q", answer)
	}},
}

// TestFailedWriteLeavesNothingVisible fails the store under each write path:
// the caller gets IoT Hub's 500 ServerError, no reader, query, job
// selection or device sees the change (nor does the store after a reopen),
// Run returns the store's error, and later writes are refused.
func TestFailedWriteLeavesNothingVisible(t *testing.T) {
	diskFull := errors.New("no space left on device")
	for _, w := range writes {
		t.Run(w.name, func(t *testing.T) {
			f := newFaultyReg(t)
			must[registry.Device](t)(f.r.CreateDevice(ctx, registry.Device{DeviceID: "d1"}))
			must[registry.Twin](t)(f.r.PatchTwin(ctx, "d1", []byte(`{"tags":{"n":1}}`), "*"))
			f.l.setOnline("d1", true)
			before := f.view(t)

			f.st.failWith(diskFull)
			err := w.do(f)
			if code(err) != "ServerError" || iothub.AsError(err).HTTPStatus() != 500 {
				t.Fatalf("write with a failing store: %v, want 500 ServerError", err)
			}
			if after := f.view(t); !reflect.DeepEqual(after, before) {
				t.Errorf("a failed write is visible:\nbefore %+v\nafter  %+v", before, after)
			}
			select {
			case err := <-f.done:
				if !errors.Is(err, diskFull) {
					t.Errorf("Run returned %v, want the store's error", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("Run did not stop after the store failed")
			}
			if _, err := f.r.CreateDevice(ctx, registry.Device{DeviceID: "d3"}); err == nil {
				t.Error("a write after the store failed succeeded")
			}
			if after := f.view(t); !reflect.DeepEqual(after, before) {
				t.Errorf("a failed write is visible after Run stopped:\nbefore %+v\nafter  %+v", before, after)
			}
			f.done <- nil // for the cleanup

			// The store has the state before the failed write.
			f.st.failWith(nil)
			r2, err := registry.New(registry.Options{Store: f.st})
			if err != nil {
				t.Fatal(err)
			}
			defer r2.Close()
			tw := must[registry.Twin](t)(r2.GetTwin("d1"))
			if tw.Tags["n"] != 1.0 || tw.Status != "enabled" || r2.Statistics().TotalDeviceCount != 1 {
				t.Errorf("stored after the failure: %+v, %+v", tw, r2.Statistics())
			}
		})
	}
}

// TestDurableBeforeVisible holds the store while each write path is in
// flight: until the write is durable, every reader sees the old state and
// the device gets no desired patch; once it is, everything sees the new one.
func TestDurableBeforeVisible(t *testing.T) {
	for _, w := range writes {
		t.Run(w.name, func(t *testing.T) {
			f := newFaultyReg(t)
			must[registry.Device](t)(f.r.CreateDevice(ctx, registry.Device{DeviceID: "d1"}))
			must[registry.Twin](t)(f.r.PatchTwin(ctx, "d1", []byte(`{"tags":{"n":1}}`), "*"))
			f.l.setOnline("d1", true)
			before := f.view(t)

			f.st.hold()
			calls := f.st.calls.Load()
			done := make(chan error, 1)
			go func() { done <- w.do(f) }()
			testkit.Eventually(t, 5*time.Second, func() bool { return f.st.calls.Load() > calls }, "the write never reached the store")
			if after := f.view(t); !reflect.DeepEqual(after, before) {
				t.Errorf("visible before durable:\nbefore %+v\nafter  %+v", before, after)
			}
			select {
			case err := <-done:
				t.Fatalf("acknowledged before durable: %v", err)
			default:
			}
			f.st.release()
			if err := <-done; err != nil {
				t.Fatal(err)
			}
			if after := f.view(t); reflect.DeepEqual(after, before) {
				t.Errorf("the durable write is not visible: %+v", after)
			}
		})
	}
}

// TestWritesBuildOnQueuedChanges: while one change of a device waits for the
// store, the next builds on it (etags and versions follow), though readers
// still see neither.
func TestWritesBuildOnQueuedChanges(t *testing.T) {
	f := newFaultyReg(t)
	must[registry.Device](t)(f.r.CreateDevice(ctx, registry.Device{DeviceID: "d1"}))
	etag := must[registry.Twin](t)(f.r.GetTwin("d1")).Etag
	f.st.hold()
	calls := f.st.calls.Load()
	first := make(chan registry.Twin, 1)
	go func() {
		first <- must[registry.Twin](t)(f.r.PatchTwin(ctx, "d1", []byte(`{"tags":{"a":1}}`), etag))
	}()
	testkit.Eventually(t, 5*time.Second, func() bool { return f.st.calls.Load() > calls }, "the first write never reached the store")
	second := make(chan error, 1)
	go func() {
		_, err := f.r.PatchTwin(ctx, "d1", []byte(`{"tags":{"b":2}}`), "*")
		second <- err
	}()
	// The old etag no longer matches: a change is queued ahead.
	if _, err := f.r.PatchTwin(ctx, "d1", []byte(`{"tags":{"c":3}}`), etag); code(err) != "PreconditionFailed" {
		t.Errorf("If-Match of the replaced etag: %v", err)
	}
	if tw := must[registry.Twin](t)(f.r.GetTwin("d1")); tw.Etag != etag || len(tw.Tags) != 0 {
		t.Errorf("visible before durable: %+v", tw)
	}
	f.st.release()
	<-first
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	tw := must[registry.Twin](t)(f.r.GetTwin("d1"))
	if tw.Tags["a"] != 1.0 || tw.Tags["b"] != 2.0 || tw.Version != 4 {
		t.Errorf("twin after both writes: %+v", tw)
	}
}
