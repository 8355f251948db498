package runner_test

import (
	"strings"
	"testing"

	"github.com/fleetsim/fleetsim/scenarios"
	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// TestRolloutAction plays a scenario whose timeline starts a rollout: the
// run settles once the rollout ended, the report shows each stage with its
// gates and jobs, and the rollout's expectations are judged.
func TestRolloutAction(t *testing.T) {
	sc, err := scenarios.Parse("rollout.yaml", []byte(`
name: rollout-action
duration: 1m
devices:
  - name: a
    count: 40
    idPattern: "ra-{index:02}"
    tags: {ring: {$weighted: {canary: 0.2, broad: 0.8}}}
    behavior:
      desired: {delay: {uniform: [10ms, 50ms]}}
timeline:
  - at: 500ms
    rollout:
      id: cfg
      action: {twin: {desired: {interval: 5}}}
      stages:
        - {name: canary, condition: "tags.ring = 'canary'"}
        - {name: rest, rest: true}
      gates:
        converge: {match: "properties.reported.interval.value = 5", minFraction: 1, within: 20s}
        approval: true
      poll: 50ms
expect:
  - rollout: {id: cfg, outcome: completed, minTouched: 40, maxTouched: 40}
`))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := runner.Run(t.Context(), sc, runner.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Passed || len(rep.Rollouts) != 1 {
		t.Fatalf("passed %v, expectations %+v, rollouts %+v", rep.Passed, rep.Expectations, rep.Rollouts)
	}
	r := rep.Rollouts[0]
	if r.Status != "completed" || len(r.Stages) != 2 || r.Stages[0].Devices+r.Stages[1].Devices != 40 {
		t.Fatalf("rollout %+v", r)
	}
	var gates []string
	for _, g := range r.Stages[0].Gates {
		gates = append(gates, g.Gate)
	}
	if strings.Join(gates, ",") != "converge,approval" {
		t.Errorf("canary gates %v", gates)
	}
	jobs := map[string]bool{}
	for _, j := range rep.Jobs {
		jobs[j.JobID] = true
	}
	if !jobs["cfg-s1-a1"] || !jobs["cfg-s2-a1"] {
		t.Errorf("report's jobs %v, want the stage jobs", jobs)
	}
}
