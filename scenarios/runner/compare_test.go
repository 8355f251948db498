package runner_test

import (
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// TestCompare builds the comparison of two runs from their reports: the
// abort's touched count over the stage jobs', failures net of the retries
// that succeeded, stages reached, the time to 99 % converged, and the
// expectations named after their plans.
func TestCompare(t *testing.T) {
	conv := runner.Duration(42 * time.Second)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := &runner.Report{Seed: 3, Started: start, Ended: start.Add(time.Minute), Passed: true,
		Expectations: []runner.ExpectationResult{{Description: "rollout a ends completed", Passed: true}},
		Rollouts: []runner.RolloutReport{{ID: "a", Status: "completed", Touched: 100, Converged99: &conv, Stages: []runner.RolloutStageReport{
			{Name: "canary", Devices: 10, JobFigures: []runner.RolloutJobReport{
				{Kind: "action", Devices: 10, Succeeded: 7, Failed: 3}, {Kind: "retry", Devices: 3, Succeeded: 2, Failed: 1}}},
			{Name: "rest", Devices: 90, JobFigures: []runner.RolloutJobReport{{Kind: "action", Devices: 90, Succeeded: 90}}},
		}}}}
	b := &runner.Report{Seed: 3, Started: start.Add(2 * time.Minute), Ended: start.Add(3 * time.Minute),
		Rollouts: []runner.RolloutReport{{ID: "b", Status: "aborted", Touched: 60, StoppedAt: "early",
			Abort: &runner.RolloutAbortReport{Kind: "maxFailures", Stage: "early", Touched: 40}, Stages: []runner.RolloutStageReport{
				{Name: "canary", Devices: 10, JobFigures: []runner.RolloutJobReport{{Kind: "action", Devices: 10, Succeeded: 10}}},
				{Name: "early", Devices: 50, JobFigures: []runner.RolloutJobReport{{Kind: "action", Devices: 30, Succeeded: 24, Failed: 6}, {Kind: "rollback", Devices: 50}}},
				{Name: "rest"},
			}}}}
	rep, err := runner.Compare([]string{"a.yaml", "b.yaml"}, []*runner.Report{a, b})
	if err != nil {
		t.Fatal(err)
	}
	want := []runner.PlanComparison{
		{Plan: "a.yaml", Rollout: "a", Verdict: "completed", Passed: true, Touched: 100, Converged99: &conv, Failures: 1, StagesReached: 2, Stages: 2},
		{Plan: "b.yaml", Rollout: "b", Verdict: "aborted", Touched: 40, Failures: 6, StagesReached: 2, Stages: 3, StoppedAt: "early", AbortRule: "maxFailures"},
	}
	for i, c := range rep.Comparison {
		w := want[i]
		if c.Converged99 != w.Converged99 {
			t.Errorf("plan %d converged99 %v, want %v", i+1, c.Converged99, w.Converged99)
		}
		c.Converged99, w.Converged99 = nil, nil
		if c != w {
			t.Errorf("plan %d: %+v, want %+v", i+1, c, w)
		}
	}
	if rep.Passed || len(rep.Rollouts) != 2 || rep.Expectations[0].Description != "[a.yaml] rollout a ends completed" || rep.Duration != runner.Duration(3*time.Minute) {
		t.Errorf("report: passed %v, %d rollouts, expectations %+v, duration %v", rep.Passed, len(rep.Rollouts), rep.Expectations, rep.Duration)
	}
	if _, err := runner.Compare([]string{"a.yaml", "a2.yaml"}, []*runner.Report{a, a}); err == nil {
		t.Error("two plans with one rollout id compared")
	}
}
