package runner

import (
	"fmt"
	"slices"
)

// PlanComparison is one plan's outcome in a side-by-side run of a scenario
// under several rollout plans (fleetsim run --rollout-plan A --rollout-plan B).
type PlanComparison struct {
	// Plan is the plan's file; Rollout its id.
	Plan    string `json:"plan"`
	Rollout string `json:"rollout"`
	// Verdict is how the rollout ended: completed, aborted, stopped, failed.
	Verdict string `json:"verdict"`
	// Passed is whether that run's expectations all passed.
	Passed bool `json:"passed"`
	// Touched is the number of devices the stage jobs reached before the
	// abort (all of them when the rollout did not abort).
	Touched int `json:"touched"`
	// Converged99 is the time from the rollout's start to 99 % of its
	// population matching the convergence condition; absent if never.
	Converged99 *Duration `json:"converged99Ms,omitempty"`
	// Failures are the stages' devices whose latest job failed (after retries).
	Failures int `json:"failures"`
	// StagesReached counts the stages that selected devices, of Stages.
	StagesReached int    `json:"stagesReached"`
	Stages        int    `json:"stages"`
	StoppedAt     string `json:"stoppedAt,omitempty"`
	AbortRule     string `json:"abortRule,omitempty"`
}

// Compare makes one report of the runs of a scenario under several plans
// (reps[i] ran plans[i], each on a fresh hub with the same seed): the
// comparison table, every run's jobs, rollouts and expectations (each
// expectation named after its plan), and the first run's fleet figures.
// It passes when every run passed.
func Compare(plans []string, reps []*Report) (*Report, error) {
	if len(reps) == 0 || len(plans) != len(reps) {
		return nil, fmt.Errorf("compare: %d plans, %d reports", len(plans), len(reps))
	}
	out := *reps[0]
	out.Jobs, out.Expectations, out.Rollouts, out.Passed = nil, nil, nil, true
	for i, r := range reps {
		out.Jobs = append(out.Jobs, r.Jobs...)
		out.Rollouts = append(out.Rollouts, r.Rollouts...)
		for _, e := range r.Expectations {
			e.Description = fmt.Sprintf("[%s] %s", plans[i], e.Description)
			out.Expectations = append(out.Expectations, e)
		}
		out.Passed = out.Passed && r.Passed
		out.Interrupted = out.Interrupted || r.Interrupted
		out.Ended = r.Ended
		out.Duration = Duration(r.Ended.Sub(out.Started))
		c := PlanComparison{Plan: plans[i], Verdict: "did not run"}
		c.Passed = r.Passed
		if len(r.Rollouts) > 0 {
			ro := r.Rollouts[0]
			c.Rollout, c.Verdict, c.Touched, c.Converged99, c.StoppedAt = ro.ID, ro.Status, ro.Touched, ro.Converged99, ro.StoppedAt
			if ro.Abort != nil {
				c.Touched, c.AbortRule = ro.Abort.Touched, ro.Abort.Kind
			}
			c.Stages = len(ro.Stages)
			for _, s := range ro.Stages {
				if s.Devices > 0 {
					c.StagesReached++
				}
				for _, j := range s.JobFigures {
					switch j.Kind {
					case "action":
						c.Failures += j.Failed
					case "retry":
						c.Failures -= j.Succeeded
					}
				}
			}
		}
		out.Comparison = append(out.Comparison, c)
	}
	if ids := rolloutIDs(out.Rollouts); len(slices.Compact(slices.Sorted(slices.Values(ids)))) != len(ids) {
		return nil, fmt.Errorf("compare: the plans share a rollout id; give each its own, so their jobs can be told apart")
	}
	return &out, nil
}

func rolloutIDs(rs []RolloutReport) []string {
	ids := make([]string, len(rs))
	for i, r := range rs {
		ids[i] = r.ID
	}
	return ids
}
