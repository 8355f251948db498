package rollout_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs/restapi"
	"github.com/fleetsim/fleetsim/internal/testkit"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
	"github.com/fleetsim/fleetsim/scenarios/rollout"
)

// TestRolloutOverREST runs a rollout against a hub through its service REST
// API only (the Go client, as against fleetsim serve or a real IoT hub),
// with a method job whose offline devices trip the absolute failure count.
func TestRolloutOverREST(t *testing.T) {
	h := testkit.StartHub(t, testkit.HubOptions{})
	devs := fleetOf(12, func(i int) map[string]any { return map[string]any{"model": "m1"} })
	devs[11].offline, devs[10].offline = true, true
	startFleet(t, h, devs)
	ep := h.Endpoints()
	tlsConf, err := tlsutil.ClientConfig(tlsutil.Files{CAFile: ep.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	c, err := restapi.NewClient(ep.ServiceConnectionString, restapi.ClientOptions{BaseURL: "https://" + ep.HTTPSAddr, TLSConfig: tlsConf})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseIdleConnections()
	p := parse(t, `
id: rest-1
seed: 3
target: "tags.model = 'm1'"
action: {method: update}
stages: [{name: first, share: 0.25}, {name: rest, rest: true}]
abort: {maxFailures: 2}
gates: {minSuccessRate: 0.5}
maxQueryLength: 64
poll: 10ms
`)
	st, _ := run(t, rollout.ClientHub(c), p)
	if st.Status == rollout.StatusFailed {
		t.Fatalf("failed: %s", st.Reason)
	}
	// With marks of at most 64 characters, a stage takes several marking jobs.
	marks := 0
	for _, s := range st.Stages {
		for _, j := range s.Jobs {
			if j.Kind == rollout.KindMark {
				marks++
				if len(j.Condition) > 64 {
					t.Errorf("mark condition of %d characters", len(j.Condition))
				}
			}
		}
	}
	if marks < 3 {
		t.Errorf("%d marking jobs", marks)
	}
	failedSeen := 0
	for _, s := range st.Stages {
		for _, j := range s.Jobs {
			if j.Kind == rollout.KindAction {
				failedSeen += j.Stats.FailedCount
			}
		}
	}
	if failedSeen >= 2 && (st.Status != rollout.StatusAborted || !strings.HasPrefix(st.Abort.Rule, "maxFailures")) {
		t.Errorf("%d failures, status %s %+v", failedSeen, st.Status, st.Abort)
	}
	if failedSeen < 2 && st.Status != rollout.StatusDone {
		t.Errorf("%d failures, status %s", failedSeen, st.Status)
	}
}

// scriptHub is a hub whose one stage job reports scripted statistics, one
// entry per read, as a real job's figures grow; it records cancels.
type scriptHub struct {
	mu        sync.Mutex
	devices   int
	script    []rollout.Stats
	reads     int
	cancelled []string
}

func (f *scriptHub) CreateJob(ctx context.Context, req rollout.JobRequest) (rollout.Job, error) {
	return rollout.Job{JobID: req.JobID, Status: "running"}, ctx.Err()
}

func (f *scriptHub) GetJob(ctx context.Context, id string) (rollout.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if strings.Contains(id, "-m") { // marking jobs complete at once
		return rollout.Job{JobID: id, Status: "completed", DeviceJobStatistics: rollout.Stats{DeviceCount: f.devices, SucceededCount: f.devices}}, ctx.Err()
	}
	s := f.script[min(f.reads, len(f.script)-1)]
	f.reads++
	status := "running"
	if s.SucceededCount+s.FailedCount == s.DeviceCount || len(f.cancelled) > 0 {
		status = "completed"
	}
	return rollout.Job{JobID: id, Status: status, DeviceJobStatistics: s}, ctx.Err()
}

func (f *scriptHub) CancelJob(ctx context.Context, id string) (rollout.Job, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cancelled = append(f.cancelled, id)
	return rollout.Job{JobID: id, Status: "cancelled"}, ctx.Err()
}

func (f *scriptHub) QueryPage(ctx context.Context, q, _ string) ([]json.RawMessage, string, error) {
	var out []json.RawMessage
	if strings.HasPrefix(q, "SELECT deviceId") {
		for i := range f.devices {
			out = append(out, json.RawMessage(fmt.Sprintf(`{"deviceId":"d%d","tags":{}}`, i)))
		}
	}
	return out, "", ctx.Err()
}

// TestAbortWaitsForMinDevices: a failure rate over the limit does not abort
// before minDevices devices have finished, and does once they have.
func TestAbortWaitsForMinDevices(t *testing.T) {
	for _, tc := range []struct {
		name       string
		minDevices int
		wantAt     int // finished devices when the rule fires; 0: never
	}{
		{"fires at the first failures", 1, 2},
		{"waits for ten devices", 10, 10},
		{"never with too few devices", 30, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &scriptHub{devices: 20, script: []rollout.Stats{
				{DeviceCount: 20, PendingCount: 20},
				{DeviceCount: 20, FailedCount: 2, PendingCount: 18},
				{DeviceCount: 20, FailedCount: 4, SucceededCount: 2, PendingCount: 14},
				{DeviceCount: 20, FailedCount: 6, SucceededCount: 4, PendingCount: 10},
				{DeviceCount: 20, FailedCount: 8, SucceededCount: 12},
			}}
			p := parse(t, fmt.Sprintf(`
id: min-1
action: {method: m}
stages: [{name: all, rest: true}]
abort: {maxFailureRate: 0.4, minDevices: %d}
poll: 1ms
`, tc.minDevices))
			st, _ := run(t, f, p)
			if tc.wantAt == 0 {
				if st.Status != rollout.StatusDone || len(f.cancelled) != 0 {
					t.Fatalf("status %s, cancelled %v", st.Status, f.cancelled)
				}
				return
			}
			if st.Status != rollout.StatusAborted || st.Abort.Finished != tc.wantAt || len(f.cancelled) != 1 {
				t.Fatalf("status %s, abort %+v, cancelled %v", st.Status, st.Abort, f.cancelled)
			}
		})
	}
}

// TestMaxRateRunsWaves: a stage with maxRate runs in waves of at most
// maxRate × the wave length devices, one job per wave over the wave's tag.
func TestMaxRateRunsWaves(t *testing.T) {
	defer rollout.SetWaveLength(time.Millisecond)()
	f := &scriptHub{devices: 10, script: []rollout.Stats{{DeviceCount: 1, SucceededCount: 1}}}
	// 10 devices at 1000 a second in waves of 1 ms: one device a wave.
	p := parse(t, `
id: rate-1
action: {method: m}
stages: [{name: all, rest: true, maxRate: 1000}]
poll: 1ms
`)
	st, _ := run(t, f, p)
	if st.Status != rollout.StatusDone || st.Stages[0].Waves != 10 {
		t.Fatalf("status %s, waves %d", st.Status, st.Stages[0].Waves)
	}
	var actions []string
	for _, j := range st.Stages[0].Jobs {
		if j.Kind == rollout.KindAction {
			actions = append(actions, j.Condition)
		}
	}
	if len(actions) != 10 || actions[9] != "tags.rollout.r_rate_1.stage = 1 AND tags.rollout.r_rate_1.wave = 10" {
		t.Errorf("wave jobs %q", actions)
	}
}

// TestSuccessRateGateStops: a stage whose devices succeed below the gate's
// rate stops the rollout with the gate's figures, and the rollback runs.
func TestSuccessRateGateStops(t *testing.T) {
	f := &scriptHub{devices: 20, script: []rollout.Stats{{DeviceCount: 20, SucceededCount: 17, FailedCount: 3}}}
	p := parse(t, `
id: gate-1
action: {method: m}
rollback: {method: undo}
stages: [{name: first, condition: "tags.ring = 'canary'"}, {name: rest, rest: true}]
gates: {minSuccessRate: 0.9}
poll: 1ms
`)
	st, _ := run(t, f, p)
	if st.Status != rollout.StatusStopped || st.Stage != 0 {
		t.Fatalf("status %s at stage %d", st.Status, st.Stage)
	}
	g := st.Stages[0].Gates
	if len(g) != 1 || g[0].Passed || !strings.HasPrefix(g[0].Figures, "17 of 20 devices succeeded (85.0 %") {
		t.Errorf("gates %+v", g)
	}
	if last := st.Stages[0].Jobs[len(st.Stages[0].Jobs)-1]; last.Kind != rollout.KindRollback {
		t.Errorf("last job %+v, want the rollback", last)
	}
}
