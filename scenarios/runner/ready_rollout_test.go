package runner_test

import (
	"slices"
	"testing"

	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// TestReadyRolloutScenarios plays the two ready rollout scenarios: with one
// seed the canary's failures trip the abort, the rollback runs and the rest
// of the fleet is never touched; with another the rollout completes. Both
// reports show the stages and the firmware work the devices did.
func TestReadyRolloutScenarios(t *testing.T) {
	for _, tc := range []struct {
		name, status, stoppedAt string
	}{
		{"rollout-canary-abort", "aborted", "canary"},
		{"rollout-canary-pass", "completed", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rep, err := runner.Run(t.Context(), load(t, tc.name), runner.Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range rep.Expectations {
				if !e.Passed {
					t.Errorf("expectation failed: %s: %s", e.Description, e.Detail)
				}
			}
			if len(rep.Rollouts) != 1 {
				t.Fatalf("rollouts %+v, want one", rep.Rollouts)
			}
			r := rep.Rollouts[0]
			if r.Status != tc.status || r.Touched == 0 {
				t.Errorf("rollout %s: status %s, %d devices touched; want %s", r.ID, r.Status, r.Touched, tc.status)
			}
			if tc.stoppedAt != "" && (r.Abort == nil || r.Abort.Stage != tc.stoppedAt) {
				t.Errorf("rollout %s: abort %+v, want one at stage %s", r.ID, r.Abort, tc.stoppedAt)
			}
			if fw := rep.DeviceSide.Firmware; fw == nil || fw.Updated == 0 {
				t.Errorf("firmware %+v: the devices' updates are not in the report", fw)
			}
		})
	}
}

// TestReadyRolloutRuleScenarios plays the ready scenario of each rollout
// rule and checks its report against what the seeded fleet must give: the
// convergence figures of each stage, the absolute failure count that
// aborts on the first wave of the second ring (its eight dead devices),
// the rollback over that ring, and retries over exactly the canary devices
// that were away (ten, then the four that came back late).
func TestReadyRolloutRuleScenarios(t *testing.T) {
	for _, tc := range []struct {
		name  string
		check func(t *testing.T, r runner.RolloutReport)
	}{
		{"rollout-converge", func(t *testing.T, r runner.RolloutReport) {
			if r.Status != "completed" || r.Touched != 200 || len(r.Stages) != 2 {
				t.Fatalf("rollout %+v", r)
			}
			for _, s := range r.Stages {
				g := gate(t, s, "converge")
				if !g.Passed || g.Of != s.Devices || g.Count*10 < 9*g.Of || g.Threshold != 0.9 || g.Value != float64(g.Count)/float64(g.Of) {
					t.Errorf("stage %s: converge gate %+v over %d devices", s.Name, g, s.Devices)
				}
			}
			if r.Stages[0].Devices+r.Stages[1].Devices != 200 || r.Stages[0].Devices < 10 || r.Stages[0].Devices > 30 {
				t.Errorf("stages %d + %d devices: want a tenth and the rest of 200", r.Stages[0].Devices, r.Stages[1].Devices)
			}
		}},
		{"rollout-converge-timeout", func(t *testing.T, r runner.RolloutReport) {
			if r.Status != "stopped" || r.StoppedAt != "canary" || r.Rollback != nil || r.Stages[1].Devices != 0 {
				t.Fatalf("rollout %+v", r)
			}
			if g := gate(t, r.Stages[0], "converge"); g.Passed || g.Count != 0 || g.Of != r.Stages[0].Devices {
				t.Errorf("converge gate %+v: no device can finish an update in 3 s", g)
			}
		}},
		{"rollout-abort-rollback", func(t *testing.T, r runner.RolloutReport) {
			a := r.Abort
			if r.Status != "aborted" || a == nil || a.Kind != "maxFailures" || a.Stage != "wave1" || a.Failed < 5 || a.Failed > 8 {
				t.Fatalf("rollout %+v, abort %+v", r, a)
			}
			// The canary's 20 and at most wave1's first wave of 17.
			if r.Touched < 20+a.Failed || r.Touched > 37 || a.Touched != r.Touched {
				t.Errorf("%d devices touched (abort says %d)", r.Touched, a.Touched)
			}
			w := r.Stages[1]
			if w.Devices != 68 || len(w.JobFigures) != 1 || w.JobFigures[0].ID != "cfg-2-s2-a1" || w.JobFigures[0].Devices != 17 {
				t.Errorf("wave1 %+v: want one wave job of 17 of its 68 devices", w)
			}
			rb := r.Rollback
			if rb == nil || rb.ID != "cfg-2-s2-rollback" || rb.Status != "completed" || rb.Devices != 68 || rb.Succeeded != 60 || rb.Failed != 8 {
				t.Errorf("rollback %+v: want all 68 wave1 devices, the 8 dead ones failing", rb)
			}
			if r.Stages[2].Devices != 0 {
				t.Errorf("rest ring %+v was selected", r.Stages[2])
			}
		}},
		{"rollout-retry-flapping", func(t *testing.T, r runner.RolloutReport) {
			if r.Status != "completed" || r.Touched != 130 {
				t.Fatalf("rollout %+v", r)
			}
			c := r.Stages[0]
			if !slices.Equal(c.Retries, []int{10, 4}) || len(r.Stages[1].Retries) != 0 {
				t.Fatalf("retries %v and %v, want [10 4] and []", c.Retries, r.Stages[1].Retries)
			}
			want := []runner.RolloutJobReport{
				{ID: "cfg-3-s1-a1", Kind: "action", Status: "completed", Devices: 30, Succeeded: 20, Failed: 10},
				{ID: "cfg-3-s1-r1", Kind: "retry", Status: "completed", Devices: 10, Succeeded: 6, Failed: 4},
				{ID: "cfg-3-s1-r2", Kind: "retry", Status: "completed", Devices: 4, Succeeded: 4},
			}
			if !slices.Equal(c.JobFigures, want) {
				t.Errorf("canary jobs %+v, want %+v", c.JobFigures, want)
			}
			if g := gate(t, c, "successRate"); !g.Passed || g.Count != 30 || g.Of != 30 {
				t.Errorf("success gate %+v: every canary device succeeded after the retries", g)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			rep, err := runner.Run(t.Context(), load(t, tc.name), runner.Options{})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range rep.Expectations {
				if !e.Passed {
					t.Errorf("expectation failed: %s: %s", e.Description, e.Detail)
				}
			}
			if len(rep.Rollouts) != 1 {
				t.Fatalf("rollouts %+v, want one", rep.Rollouts)
			}
			tc.check(t, rep.Rollouts[0])
		})
	}
}

func gate(t *testing.T, s runner.RolloutStageReport, name string) runner.RolloutGateReport {
	t.Helper()
	for _, g := range s.Gates {
		if g.Gate == name {
			return g
		}
	}
	t.Fatalf("stage %s has no %s gate: %+v", s.Name, name, s.Gates)
	return runner.RolloutGateReport{}
}
