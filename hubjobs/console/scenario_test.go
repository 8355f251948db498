package console

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// fakeScenario is a Scenario whose state the test sets; it counts the
// snapshots taken.
type fakeScenario struct {
	mu    sync.Mutex
	st    ScenarioState
	reads atomic.Int64
}

func (f *fakeScenario) ScenarioState() ScenarioState {
	f.reads.Add(1)
	f.mu.Lock()
	defer f.mu.Unlock()
	st := f.st
	st.Steps = slices.Clone(st.Steps)
	return st
}

func (f *fakeScenario) set(fn func(*ScenarioState)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.st)
	f.st.Version++
}

// countingCounters are the hub's counters with a known number of events
// between two samples: every Totals call adds perSample messages.
type countingCounters struct{ in, perSample atomic.Int64 }

func (c *countingCounters) Totals() Totals {
	return Totals{Devices: 10, Connected: 10, MessagesIn: c.in.Add(c.perSample.Load())}
}

// sseEvent is one server-sent event.
type sseEvent struct{ name, data string }

// streamEvents opens the event stream at path with a new session and sends
// its events on the channel until the stream ends.
func streamEvents(t *testing.T, c *Console, srv *httptest.Server, path string) <-chan sseEvent {
	t.Helper()
	rec := httptest.NewRecorder()
	c.auth.start(rec, "p", false, time.Now())
	req, _ := http.NewRequestWithContext(t.Context(), "GET", srv.URL+path, nil)
	req.Header.Set("Cookie", rec.Header().Get("Set-Cookie"))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	out := make(chan sseEvent, 1000)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				ev.data = strings.TrimPrefix(line, "data: ")
			case line == "" && ev.name != "":
				out <- ev
				ev = sseEvent{}
			}
		}
	}()
	return out
}

func startConsole(t *testing.T, cfg Config) (*Console, *httptest.Server) {
	t.Helper()
	cfg.Hostname = "h"
	cfg.Policies = []Policy{{Name: "p", Keys: [][]byte{[]byte("k")}, Read: true}}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- c.Run(ctx) }()
	srv := httptest.NewTLSServer(c.Handler())
	t.Cleanup(func() {
		srv.CloseClientConnections()
		cancel()
		if err := <-runDone; err != nil {
			t.Error(err)
		}
		srv.Close()
	})
	return c, srv
}

// TestLiveRateBound sends a known, large number of device events between
// two samples and checks that the stream carries one aggregate per
// sample, whatever the events: never a message per event.
func TestLiveRateBound(t *testing.T) {
	d, j := fleetFixture(10)
	cnt := &countingCounters{}
	cnt.perSample.Store(5000)
	c, srv := startConsole(t, Config{Devices: d, Jobs: j, Counters: cnt, Rate: 5 * time.Millisecond})
	events := streamEvents(t, c, srv, "/console/api/events")
	const want = 20
	var lives int
	var first, last liveMessage
	for ev := range events {
		if ev.name != "live" {
			continue
		}
		var m liveMessage
		if err := json.Unmarshal([]byte(ev.data), &m); err != nil {
			t.Fatal(err)
		}
		if lives == 0 {
			first = m
		} else if m.Seq <= last.Seq {
			t.Fatalf("message %d after %d: a sample sent twice", m.Seq, last.Seq)
		}
		last = m
		if lives++; lives == want {
			break
		}
	}
	samples := last.Seq - first.Seq + 1
	events2 := last.Tot.MessagesIn - first.Tot.MessagesIn + 5000
	t.Logf("%d live messages for %d samples and %d device events", lives, samples, events2)
	if int64(lives) > samples {
		t.Errorf("%d live messages for %d samples: more than one a sample", lives, samples)
	}
	if events2 < 100*int64(lives) {
		t.Errorf("only %d events for %d messages: the test did not send many events a sample", events2, lives)
	}
}

// TestCellsFirstLoad checks that the grid's first request builds it: the
// page's first load shows the fleet without waiting for the event stream.
func TestCellsFirstLoad(t *testing.T) {
	d := newFakeDevices(50, func(int) bool { return true })
	c, srv := startConsole(t, Config{Devices: d, Jobs: &fakeJobs{}, Counters: fakeCounters{}, Rate: time.Hour})
	rec := httptest.NewRecorder()
	c.auth.start(rec, "p", false, time.Now())
	req, _ := http.NewRequest("GET", srv.URL+"/console/api/fleet/cells", nil)
	req.Header.Set("Cookie", rec.Header().Get("Set-Cookie"))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Version int64          `json:"version"`
		Devices int            `json:"devices"`
		Counts  map[string]int `json:"counts"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if body.Version == 0 || body.Devices != 50 || body.Counts["connected"] != 50 {
		t.Errorf("first load's grid: %+v, want 50 devices connected", body)
	}
}

// TestScenarioEvents checks the scenario page's data: the state is read
// only while a scenario page watches, sent only to those streams, and
// sent again only when its version changed.
func TestScenarioEvents(t *testing.T) {
	d, j := fleetFixture(10)
	sc := &fakeScenario{st: ScenarioState{Version: 1, Name: "demo", Mode: "run", Phase: "playing",
		Steps: []ScenarioStep{{AtMs: 1000, Action: "job a"}}}}
	c, srv := startConsole(t, Config{Devices: d, Jobs: j, Counters: fakeCounters{}, Rate: 5 * time.Millisecond})
	c.SetScenario(sc)

	plain := streamEvents(t, c, srv, "/console/api/events")
	for range 5 {
		if ev := <-plain; ev.name == "scenario" {
			t.Fatal("a stream without ?scenario=1 got the scenario")
		}
	}
	if n := sc.reads.Load(); n != 0 {
		t.Errorf("the scenario was read %d times with no scenario page open", n)
	}
	events := streamEvents(t, c, srv, "/console/api/events?scenario=1")
	next := func() ScenarioState {
		t.Helper()
		for ev := range events {
			if ev.name == "scenario" {
				var st ScenarioState
				if err := json.Unmarshal([]byte(ev.data), &st); err != nil {
					t.Fatal(err)
				}
				return st
			}
		}
		t.Fatal("stream ended")
		return ScenarioState{}
	}
	if st := next(); st.Name != "demo" || len(st.Steps) != 1 || st.Steps[0].Done {
		t.Errorf("first scenario event: %+v", st)
	}
	// Unchanged: many samples, no event; then a change is sent once.
	lives := 0
	for ev := range events {
		if ev.name == "scenario" {
			t.Fatal("an unchanged scenario was sent again")
		}
		if ev.name == "live" {
			if lives++; lives == 10 {
				break
			}
		}
	}
	sc.set(func(st *ScenarioState) { st.Steps[0].Done, st.Steps[0].DoneAtMs = true, 1003 })
	if st := next(); !st.Steps[0].Done || st.Steps[0].DoneAtMs != 1003 {
		t.Errorf("changed scenario: %+v", st)
	}
}

// TestCellsPayload100k builds the grid's payload for 100k devices from
// fake registries, without devices connecting: a fleet all online is a few
// bytes, a fleet in which every neighbour differs at most a byte a device
// (in base64), so the page's first load and its grid updates stay small.
func TestCellsPayload100k(t *testing.T) {
	const n = 100_000
	mixed, mixedJobs := fleetFixture(n)
	for _, tc := range []struct {
		name string
		d    *fakeDevices
		j    Jobs
		max  int
	}{
		{"all online", newFakeDevices(n, func(int) bool { return true }), &fakeJobs{}, 200},
		{"a third offline, a job over half", mixed, mixedJobs, 4*n/3 + 200},
		{"every neighbour differs", newFakeDevices(n, func(i int) bool { return i%2 == 0 }), &fakeJobs{}, 4*n/3 + 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := newLive(tc.d, tc.j, fakeCounters{})
			l.watchers.Add(1)
			l.wantFleet.Store(true)
			l.tick(t.Context(), time.Now())
			_, _, f, _ := l.snapshot()
			b, err := json.Marshal(cellsBody(f))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d devices, %s: cells payload %d bytes (%s)", n, tc.name, len(b), f.enc)
			if len(f.ids) != n || len(b) > tc.max {
				t.Errorf("%d devices in a %d-byte payload, want %d in at most %d", len(f.ids), len(b), n, tc.max)
			}
		})
	}
}
