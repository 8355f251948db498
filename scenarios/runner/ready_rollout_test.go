package runner_test

import (
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
