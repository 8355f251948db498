package rollout_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/internal/testkit"
	"github.com/fleetsim/fleetsim/scenarios/rollout"
)

// TestAbortCancelsAndRollsBack: a stage whose devices are mostly offline
// trips the failure-rate rule once enough devices finished; the job is
// cancelled, the rollback job runs over the stage's devices, and no later
// stage starts.
func TestAbortCancelsAndRollsBack(t *testing.T) {
	h := testkit.StartHub(t, testkit.HubOptions{})
	devs := fleetOf(20, func(i int) map[string]any { return map[string]any{"ring": "canary"} })
	for i := range 12 {
		devs[i].offline = true
	}
	startFleet(t, h, devs)
	p := parse(t, `
id: abort-1
action: {method: update, payload: {version: 2}}
rollback: {twin: {desired: {fw: rollback}}}
stages:
  - {name: canary, condition: "tags.ring = 'canary'"}
  - {name: rest, rest: true}
abort: {maxFailureRate: 0.5, minDevices: 5}
poll: 10ms
`)
	st, _ := run(t, rollout.HubOf(h), p)
	if st.Status != rollout.StatusAborted || st.Abort == nil {
		t.Fatalf("status %s, abort %+v", st.Status, st.Abort)
	}
	a := st.Abort
	if !strings.HasPrefix(a.Rule, "maxFailureRate") || a.Stage != "canary" || a.Finished < 5 || float64(a.Failed) < 0.5*float64(a.Finished) {
		t.Errorf("abort %+v", a)
	}
	var rb *rollout.JobRecord
	for _, j := range st.Stages[0].Jobs {
		if j.Kind == rollout.KindRollback {
			rb = j
		}
		// A cancelled job is read until the hub reports it ended, so the
		// state and the report hold its final status and figures.
		if j.Kind == rollout.KindAction && (j.Status != "cancelled" && j.Status != "completed" || j.Ended == nil) {
			t.Errorf("action job %s: status %s, ended %v", j.ID, j.Status, j.Ended)
		}
	}
	if rb == nil || rb.Status != "completed" || rb.Stats.DeviceCount != 20 || rb.Condition != "tags.rollout.r_abort_1.stage = 1" {
		t.Fatalf("rollback %+v", rb)
	}
	if len(st.Stages[1].Jobs) != 0 {
		t.Errorf("stage rest ran: %+v", st.Stages[1].Jobs)
	}
	page, err := h.Query("SELECT COUNT() AS n FROM devices WHERE properties.desired.fw = 'rollback'", 10, "")
	if err != nil || fmt.Sprint(page.Items) != "[map[n:20]]" {
		t.Errorf("rolled back: %v %v", page.Items, err)
	}
}

// TestRetriesFailedDevicesWithBackoff: devices that come online late fail
// the stage's job (DeviceNotOnline) and are retried, after the backoff, by
// jobs over exactly those devices until they succeed.
func TestRetriesFailedDevicesWithBackoff(t *testing.T) {
	h := testkit.StartHub(t, testkit.HubOptions{})
	devs := fleetOf(10, func(int) map[string]any { return nil })
	for i := range 3 {
		devs[i].lateBy = 1500 * time.Millisecond
	}
	startFleet(t, h, devs)
	p := parse(t, `
id: retry-1
action: {method: update}
stages: [{name: all, rest: true}]
retry: {attempts: 4, backoff: 500ms, factor: 2}
gates: {minSuccessRate: 1}
poll: 10ms
`)
	st, _ := run(t, rollout.HubOf(h), p)
	if st.Status != rollout.StatusDone {
		t.Fatalf("status %s: %s", st.Status, st.Reason)
	}
	var retries []*rollout.JobRecord
	var last time.Time
	for _, j := range st.Stages[0].Jobs {
		switch j.Kind {
		case rollout.KindAction:
			if j.Stats.FailedCount != 3 {
				t.Errorf("action job %+v", j.Stats)
			}
		case rollout.KindRetry:
			if len(retries) == 0 && j.Stats.DeviceCount != 3 {
				t.Errorf("first retry over %d devices, want the 3 that failed", j.Stats.DeviceCount)
			}
			retries = append(retries, j)
		}
		if j.Ended != nil && j.Kind != rollout.KindMark {
			if len(retries) > 1 && j.Kind == rollout.KindRetry && j.Created.Sub(last) < time.Second {
				t.Errorf("retry %s created %s after the previous job ended, backoff 1s", j.ID, j.Created.Sub(last))
			}
			last = *j.Ended
		}
	}
	if len(retries) == 0 || retries[len(retries)-1].Stats.SucceededCount != retries[len(retries)-1].Stats.DeviceCount {
		t.Fatalf("retries %+v", retries)
	}
	if g := st.Stages[0].Gates; len(g) != 1 || !g[0].Passed || !strings.HasPrefix(g[0].Figures, "10 of 10") {
		t.Errorf("gates %+v", g)
	}
}

// TestConvergenceGateStops: a convergence gate whose condition no device
// meets fails at its time limit with its figures, and the rollout stops
// before the next stage.
func TestConvergenceGateStops(t *testing.T) {
	h := testkit.StartHub(t, testkit.HubOptions{})
	startFleet(t, h, fleetOf(6, func(int) map[string]any { return nil }))
	p := parse(t, `
id: conv-1
action: {twin: {desired: {fw: "2.0.0"}}}
stages: [{name: first, share: 0.5}, {name: rest, rest: true}]
gates:
  converge: {match: "properties.reported.fw.value = '9.9.9'", minFraction: 0.5, within: 200ms}
poll: 10ms
`)
	st, _ := run(t, rollout.HubOf(h), p)
	if st.Status != rollout.StatusStopped || !strings.Contains(st.Reason, "converge") {
		t.Fatalf("status %s: %s", st.Status, st.Reason)
	}
	g := st.Stages[0].Gates
	if len(g) != 1 || g[0].Passed || !strings.HasPrefix(g[0].Figures, fmt.Sprintf("0 of %d devices", st.Stages[0].Devices)) {
		t.Errorf("gates %+v", g)
	}
	if len(st.Stages[1].Jobs) != 0 {
		t.Errorf("next stage ran")
	}
}

// TestApprovalAndOperatorAbort: a stage waits for approval, proceeds once
// approved, and an operator's abort at the next approval stops the rollout.
func TestApprovalAndOperatorAbort(t *testing.T) {
	h := testkit.StartHub(t, testkit.HubOptions{})
	startFleet(t, h, fleetOf(9, func(int) map[string]any { return nil }))
	p := parse(t, `
id: appr-1
action: {twin: {desired: {x: 1}}}
stages: [{name: a, share: 0.3}, {name: b, share: 0.3}, {name: c, rest: true}]
gates: {approval: true}
poll: 10ms
`)
	path := filepath.Join(t.TempDir(), "state.json")
	e, err := rollout.Start(rollout.HubOf(h), p, "", path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := e.Run(ctx); done <- err }()
	waiting := func(stage int) func() bool {
		return func() bool {
			s, err := rollout.LoadState(path)
			return err == nil && s.Status == rollout.StatusWaiting && s.Stage == stage
		}
	}
	testkit.Eventually(t, 20*time.Second, waiting(0), "stage a waits for approval")
	if got, err := rollout.Approve(path, ""); err != nil || got != "a" {
		t.Fatalf("approve: %q %v", got, err)
	}
	testkit.Eventually(t, 20*time.Second, waiting(1), "stage b waits for approval")
	if err := rollout.RequestAbort(path, "stop it"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	st := e.State()
	if st.Status != rollout.StatusAborted || st.Reason != "stop it" || st.Abort.Rule != "operator" || st.Abort.Stage != "b" {
		t.Fatalf("state %s %q %+v", st.Status, st.Reason, st.Abort)
	}
}

// TestResumeAfterStop: a rollout whose engine stops mid-way resumes from
// its state file without running any job twice.
func TestResumeAfterStop(t *testing.T) {
	h := testkit.StartHub(t, testkit.HubOptions{})
	startFleet(t, h, fleetOf(8, func(int) map[string]any { return nil }))
	p := parse(t, `
id: res-1
action: {twin: {desired: {y: 1}}}
stages: [{name: a, share: 0.5}, {name: b, rest: true}]
gates: {bake: 300ms}
poll: 10ms
`)
	path := filepath.Join(t.TempDir(), "state.json")
	e, _ := rollout.Start(rollout.HubOf(h), p, "", path)
	ctx, cancel := context.WithCancel(t.Context())
	e.OnEvent = func(ev rollout.Event) {
		if strings.HasPrefix(ev.Msg, "baking") {
			cancel()
		}
	}
	if _, err := e.Run(ctx); err == nil {
		t.Fatal("run ended without error after its context ended")
	}
	e2, err := rollout.Start(rollout.HubOf(h), p, "", path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := e2.Run(t.Context())
	if err != nil || st.Status != rollout.StatusDone {
		t.Fatalf("resumed: %v %s %s", err, st.Status, st.Reason)
	}
	seen := map[string]bool{}
	for _, s := range st.Stages {
		for _, j := range s.Jobs {
			if seen[j.ID] {
				t.Errorf("job %s twice", j.ID)
			}
			seen[j.ID] = true
		}
	}
	if st.Stages[0].Devices+st.Stages[1].Devices != 8 {
		t.Errorf("devices %d + %d", st.Stages[0].Devices, st.Stages[1].Devices)
	}
}

// TestStartRefusesUnreadableState: a state file that exists but cannot be
// read stops the engine instead of starting the rollout over.
func TestStartRefusesUnreadableState(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := parse(t, "id: x\naction: {method: m}\nstages: [{name: all, rest: true}]\n")
	if _, err := rollout.Start(nil, p, "", path); err == nil {
		t.Fatal("started over an unreadable state file")
	}
}
