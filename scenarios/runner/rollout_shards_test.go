package runner_test

import (
	"strings"
	"testing"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/fleetsim/fleetsim/scenarios"
	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// TestRolloutInShards plays a small rollout as two shards against one
// served hub, twice: shard 1 runs the rollout under the run's suffixed id
// and publishes its report on the run's coordination twin, shard 2 reports
// it from there, both judge its expectation, and the merged report counts
// it once. The re-run on the same hub gets new rollout and job ids, so it
// neither collides with the first run's jobs nor finds its device tags.
func TestRolloutInShards(t *testing.T) {
	ep, tlsConf := serveHub(t)
	remote := &runner.Remote{
		ServiceConnectionString: ep.ServiceConnectionString,
		RESTURL:                 "https://" + ep.HTTPSAddr,
		MQTTURL:                 "ssl://" + ep.MQTTAddr,
		TLSConfig:               tlsConf,
	}
	var hubIDs []string
	for run := range 2 {
		reports := make([]*runner.Report, 2)
		var g errgroup.Group
		for i := range 2 {
			g.Go(func() error {
				sc, err := scenarios.Load("testdata/rollout-shards.yaml")
				if err != nil {
					return err
				}
				reports[i], err = runner.Run(t.Context(), sc, runner.Options{Remote: remote, Shard: i + 1, Shards: 2,
					Run: runner.Coordination{BarrierTimeout: 30 * time.Second}})
				return err
			})
		}
		if err := g.Wait(); err != nil {
			t.Fatalf("run %d: %v", run+1, err)
		}
		for i, rep := range reports {
			for _, e := range rep.Expectations {
				if !e.Passed {
					t.Errorf("run %d shard %d: %s: %s", run+1, i+1, e.Description, e.Detail)
				}
			}
			if len(rep.Rollouts) != 1 {
				t.Fatalf("run %d shard %d: rollouts %+v, want one", run+1, i+1, rep.Rollouts)
			}
			r := rep.Rollouts[0]
			if r.ID != "fw-shards" || !strings.HasPrefix(r.HubID, "fw-shards-") || r.Status != "completed" || r.Touched != 40 || len(r.Stages) != 2 {
				t.Errorf("run %d shard %d: rollout %+v", run+1, i+1, r)
			}
			if wantFrom := map[int]string{0: "", 1: "shard 1"}[i]; r.From != wantFrom || r.ReadError != "" {
				t.Errorf("run %d shard %d: rollout from %q (read error %q), want from %q", run+1, i+1, r.From, r.ReadError, wantFrom)
			}
		}
		s1 := reports[0].Rollouts[0]
		if reports[1].Rollouts[0].HubID != s1.HubID {
			t.Errorf("run %d: the shards name the rollout %s and %s", run+1, s1.HubID, reports[1].Rollouts[0].HubID)
		}
		if len(s1.Stages) > 0 && (len(s1.Stages[0].Jobs) == 0 || s1.Stages[0].Jobs[0] != s1.HubID+"-s1-a1") {
			t.Errorf("run %d: canary jobs %v, want %s-s1-a1 first", run+1, s1.Stages[0].Jobs, s1.HubID)
		}
		hubIDs = append(hubIDs, s1.HubID)
		m, err := runner.Merge(reports)
		if err != nil {
			t.Fatal(err)
		}
		if !m.Passed || len(m.Rollouts) != 1 || m.Rollouts[0].From != "" || len(m.Rollouts[0].Events) == 0 {
			t.Errorf("run %d merged: passed %v, rollouts %+v", run+1, m.Passed, m.Rollouts)
		}
	}
	if hubIDs[0] == hubIDs[1] {
		t.Errorf("both runs ran rollout %s on the hub", hubIDs[0])
	}
}

// TestRolloutReportNotPublished runs shard 2 of 2 alone: shard 1 never
// runs the rollout, and shard 2's report says its result could not be read
// from shard 1, not that it did not run.
func TestRolloutReportNotPublished(t *testing.T) {
	ep, tlsConf := serveHub(t)
	sc, err := scenarios.Load("testdata/rollout-shards.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc.Duration = 3 * time.Second
	rep, err := runner.Run(t.Context(), sc, runner.Options{
		Remote: &runner.Remote{
			ServiceConnectionString: ep.ServiceConnectionString,
			RESTURL:                 "https://" + ep.HTTPSAddr,
			MQTTURL:                 "ssl://" + ep.MQTTAddr,
			TLSConfig:               tlsConf,
		},
		Shard: 2, Shards: 2,
		Run: runner.Coordination{BarrierTimeout: 500 * time.Millisecond, HeartbeatTimeout: 3 * time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Passed || len(rep.Rollouts) != 1 || rep.Rollouts[0].ReadError == "" {
		t.Fatalf("passed %v, rollouts %+v: want a rollout whose report could not be read", rep.Passed, rep.Rollouts)
	}
	var detail string
	for _, e := range rep.Expectations {
		if strings.HasPrefix(e.Description, "rollout fw-shards") || strings.Contains(e.Description, "fw-shards") {
			detail = e.Detail
		}
	}
	if !strings.HasPrefix(detail, "the rollout's result could not be read from shard 1: ") {
		t.Errorf("expectation detail %q, want it to say the result could not be read from shard 1", detail)
	}
}
