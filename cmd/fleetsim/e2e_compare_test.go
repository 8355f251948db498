package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// TestRunComparesRolloutPlans plays rollout-retry-flapping under two plans
// whose outcomes its seeded fleet fixes: with retries the ten canary
// devices away at the start are retried until they succeed and the rollout
// completes over all 130 devices; without, they fail, the canary's 100 %
// success gate stops the rollout, and the rest is never touched. The
// comparison in report.json, the text report and report.html holds those
// figures.
func TestRunComparesRolloutPlans(t *testing.T) {
	if testing.Short() {
		t.Skip("plays a scenario twice")
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	code, stdout, stderr := fleetsim(t, dir, "run", "rollout-retry-flapping", "--no-live",
		"--rollout-plan", abs(t, "testdata/plan-retry.yaml"), "--rollout-plan", abs(t, "testdata/plan-noretry.yaml"), "--report", out)
	// The plan without retries does not complete, which its rehearsal expects.
	if code != exitFail {
		t.Fatalf("exit %d, want %d\n%s%s", code, exitFail, stdout, stderr)
	}
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var rep runner.Report
	if err := json.Unmarshal(b, &rep); err != nil {
		t.Fatal(err)
	}
	want := []runner.PlanComparison{
		{Plan: abs(t, "testdata/plan-retry.yaml"), Rollout: "with-retry", Verdict: "completed", Passed: true, Touched: 130, Failures: 0, StagesReached: 2, Stages: 2},
		{Plan: abs(t, "testdata/plan-noretry.yaml"), Rollout: "no-retry", Verdict: "stopped", Touched: 30, Failures: 10, StagesReached: 1, Stages: 2, StoppedAt: "canary"},
	}
	if len(rep.Comparison) != 2 {
		t.Fatalf("comparison %+v", rep.Comparison)
	}
	for i, c := range rep.Comparison {
		if c != want[i] {
			t.Errorf("plan %d: %+v, want %+v", i+1, c, want[i])
		}
	}
	if rep.Passed || len(rep.Rollouts) != 2 || rep.Seed != 6 {
		t.Errorf("passed %v, %d rollouts, seed %d", rep.Passed, len(rep.Rollouts), rep.Seed)
	}
	for _, w := range []string{"Rollout plans side by side", "with-retry  completed", "no-retry    stopped at canary"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("text report lacks %q:\n%s", w, stdout)
		}
	}
	h, err := os.ReadFile(filepath.Join(out, "report.html"))
	if err != nil || !strings.Contains(string(h), "<h2>Rollout plans side by side</h2>") ||
		!strings.Contains(string(h), `<span class="badge stopped">stopped</span> at canary</td><td class="num">30</td>`) {
		t.Errorf("report.html lacks the comparison: %v", err)
	}
}

func abs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}
