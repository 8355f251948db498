package runner

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/hubjobs/restapi"
	"github.com/fleetsim/fleetsim/internal/testkit"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
)

// servedHub starts a fleetsim serve on loopback for the test and returns a
// service client of it.
func servedHub(t *testing.T, o testkit.HubOptions) (*restapi.Client, hubjobs.Endpoints) {
	t.Helper()
	o.Persistent = true
	ep := testkit.StartHub(t, o).Endpoints()
	tc, err := tlsutil.ClientConfig(tlsutil.Files{CAFile: ep.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	c, err := restapi.NewClient(ep.ServiceConnectionString, restapi.ClientOptions{BaseURL: "https://" + ep.HTTPSAddr, TLSConfig: tc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c, ep
}

// fakeNow is a settable clock for the coordination's heartbeat ages.
type fakeNow struct{ t time.Time }

func (f *fakeNow) now() time.Time { return f.t }

func TestCoordinationOnAServedHub(t *testing.T) {
	c, _ := servedHub(t, testkit.HubOptions{})
	ctx := t.Context()
	clk := &fakeNow{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	cfg := Coordination{BarrierTimeout: time.Minute, HeartbeatTimeout: 30 * time.Second}
	shard := func(i, n int) *coord {
		co := newCoord(c, cfg, "r1", i, n, 10, func() int { return 7 })
		co.now = clk.now
		return co
	}

	s1, s2 := shard(1, 2), shard(2, 2)
	if err := s1.join(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s2.join(ctx); err != nil {
		t.Fatal(err)
	}
	if s1.epoch != 1 || s2.epoch != 1 || s1.jobSuffix() != s2.jobSuffix() {
		t.Fatalf("epochs %d, %d; suffixes %s, %s", s1.epoch, s2.epoch, s1.jobSuffix(), s2.jobSuffix())
	}

	t.Run("duplicate and inconsistent shards are refused", func(t *testing.T) {
		for _, co := range []*coord{shard(1, 2), shard(2, 3)} {
			if err := co.join(ctx); !errors.Is(err, ErrShardConflict) {
				t.Errorf("shard %d/%d joined: %v, want ErrShardConflict", co.shard, co.shards, err)
			}
		}
	})

	t.Run("the barrier starts the run when every shard is ready", func(t *testing.T) {
		done := make(chan error, 1)
		go func() { done <- s2.barrier(ctx, time.Millisecond) }()
		if err := s1.barrier(ctx, time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if r := s1.report(); len(r.MissingAtStart) != 0 || len(r.Peers) != 2 || r.Peers[1].Connected != 7 {
			t.Errorf("shard 1's run report %+v", r)
		}
	})

	t.Run("a shard that stops heartbeating is named", func(t *testing.T) {
		clk.t = clk.t.Add(31 * time.Second)
		if err := s1.beat(ctx); err != nil {
			t.Fatal(err)
		}
		if r := s1.report(); len(r.Lost) != 1 || r.Lost[0].Shard != 2 {
			t.Errorf("lost %+v, want shard 2", r.Lost)
		}
	})

	t.Run("a re-run starts a new epoch with new job ids", func(t *testing.T) {
		s1.finish(ctx)
		again := shard(1, 2)
		if err := again.join(ctx); err != nil {
			t.Fatal(err)
		}
		if again.epoch != 2 || again.jobSuffix() == s1.jobSuffix() {
			t.Errorf("re-run epoch %d suffix %s, first run %s", again.epoch, again.jobSuffix(), s1.jobSuffix())
		}
		// Alone at the barrier, shard 1 starts without shard 2 at its deadline.
		again.cfg.BarrierTimeout = 0
		if err := again.barrier(ctx, time.Millisecond); err != nil {
			t.Fatal(err)
		}
		if r := again.report(); len(r.MissingAtStart) != 1 || r.MissingAtStart[0] != 2 {
			t.Errorf("missing %v, want [2]", r.MissingAtStart)
		}
	})
}

func TestHubSettings(t *testing.T) {
	c, _ := servedHub(t, testkit.HubOptions{Pacing: "S1", MaxInFlight: 7})
	got := fetchSettings(t.Context(), c)
	if !got.known || got.settings.Pacing != "S1" || got.settings.MaxInFlight != 7 || got.settings.OpsPerSecond == 0 {
		t.Errorf("settings %+v, want S1 with 7 in flight", got)
	}
}

// notFoundHub answers every request as a hub without fleetsim's settings
// endpoint does.
type notFoundHub struct{}

func (notFoundHub) Do(context.Context, string, string, any, http.Header) (*restapi.Response, error) {
	return nil, restapi.ParseError(http.StatusNotFound, nil, []byte(`{"Message":"ErrorCode:NotFound;not found"}`))
}

func TestHubSettingsUnknown(t *testing.T) {
	got := fetchSettings(t.Context(), notFoundHub{})
	if got.known || !strings.Contains(got.err, "not a fleetsim serve") {
		t.Errorf("settings %+v, want unknown: not a fleetsim serve", got)
	}
}

func TestConnectCause(t *testing.T) {
	for _, tt := range []struct{ id, msg, want string }{
		{"d-1", "", neverTried},
		{"d-1", "connect d-1: dial tcp 10.0.0.1:8883: socket: too many open files", "connect <device>: dial tcp 10.0.0.1:8883: socket: too many open files"},
	} {
		if got := connectCause(tt.id, tt.msg); got != tt.want {
			t.Errorf("connectCause(%q, %q) = %q, want %q", tt.id, tt.msg, got, tt.want)
		}
	}
	nc := &NeverConnected{Count: 3, Causes: []NeverConnectedCause{{Cause: "connect <device>: dial tcp: socket: too many open files", Count: 3}}}
	if s := nc.summary(10); !strings.Contains(s, "3 of 10 devices never connected") || !strings.Contains(s, "descriptor") {
		t.Errorf("summary %q", s)
	}
}

func TestRunID(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tt := range []struct {
		given string
		env   map[string]string
		want  string
	}{
		{"My Run", nil, "my-run"},
		{"", map[string]string{EnvRunID: "from-env"}, "from-env"},
		{"", nil, "load-100k-42"},
		{"", map[string]string{EnvRunUID: "0f3c-77"}, "load-100k-42-0f3c-77"},
	} {
		if got := RunID(tt.given, "load-100k", 42, env(tt.env)); got != tt.want {
			t.Errorf("RunID(%q, %v) = %q, want %q", tt.given, tt.env, got, tt.want)
		}
	}
	if long := RunID(strings.Repeat("x", 100), "s", 1, env(nil)); len(long) != 48 {
		t.Errorf("long run id %q has %d characters, want 48", long, len(long))
	}
}

// TestRolloutReportsOnTheTwin publishes a rollout report in one run's
// generation: the other shard reads it, and the next generation on the
// twin starts without it.
func TestRolloutReportsOnTheTwin(t *testing.T) {
	c, _ := servedHub(t, testkit.HubOptions{})
	ctx := t.Context()
	cfg := Coordination{BarrierTimeout: time.Minute, HeartbeatTimeout: 30 * time.Second}
	s1 := newCoord(c, cfg, "r2", 1, 2, 10, func() int { return 10 })
	s2 := newCoord(c, cfg, "r2", 2, 2, 10, func() int { return 10 })
	for _, co := range []*coord{s1, s2} {
		if err := co.join(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if got, err := s2.readRollouts(ctx); err != nil || len(got) != 0 {
		t.Fatalf("before publishing: %v, %v", got, err)
	}
	if err := s1.publishRollout(ctx, "fw-2", `{"id":"fw-2","status":"completed"}`); err != nil {
		t.Fatal(err)
	}
	got, err := s2.readRollouts(ctx)
	if err != nil || got["fw-2"] != `{"id":"fw-2","status":"completed"}` {
		t.Fatalf("shard 2 read %v, %v", got, err)
	}
	s1.finish(ctx)
	s2.finish(ctx)
	next := newCoord(c, cfg, "r2", 2, 2, 10, func() int { return 10 })
	if err := next.join(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := next.readRollouts(ctx); next.epoch != 2 || err != nil || len(got) != 0 {
		t.Errorf("next generation %d read %v, %v; want none", next.epoch, got, err)
	}
	st, _, err := next.read(ctx)
	if err != nil || len(st.Ro) != 0 {
		t.Errorf("the twin keeps the last generation's reports: %v, %v", st.Ro, err)
	}
}
