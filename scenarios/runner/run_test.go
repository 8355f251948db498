package runner_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/scenarios"
	"github.com/fleetsim/fleetsim/scenarios/runner"
)

func load(t *testing.T, name string) *scenarios.Scenario {
	t.Helper()
	sc, err := scenarios.Load(name)
	if err != nil {
		t.Fatalf("load %s: %v", name, err)
	}
	return sc
}

func TestQuickstartPasses(t *testing.T) {
	var notes []string
	var last runner.Progress
	rep, err := runner.Run(t.Context(), load(t, "quickstart"), runner.Options{Progress: func(p runner.Progress) {
		if p.Note != "" {
			notes = append(notes, p.Note)
		}
		last = p
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range rep.Expectations {
		if !e.Passed {
			t.Errorf("expectation failed: %s: %s", e.Description, e.Detail)
		}
	}
	if !rep.Passed || rep.Devices != 200 || len(rep.Jobs) != 2 {
		t.Fatalf("report: passed %v, %d devices, %d jobs", rep.Passed, rep.Devices, len(rep.Jobs))
	}
	ping := rep.Jobs[0]
	if ping.JobID != "ping-all" || ping.DeviceCount != 200 || ping.Succeeded+ping.Failed != 200 || ping.Method != "ping" {
		t.Errorf("ping job %+v", ping)
	}
	if ping.Latency.P50 <= 0 || ping.Latency.P99 < ping.Latency.P50 || len(ping.Completion) == 0 || ping.OpsPerSecond <= 0 {
		t.Errorf("ping figures: latency %+v, %d completion points, %.1f ops/s", ping.Latency, len(ping.Completion), ping.OpsPerSecond)
	}
	// Devices answer 500 about 1% of the time: the hub completes those calls.
	if n := ping.DeviceStatuses[200] + ping.DeviceStatuses[500]; n != ping.Succeeded {
		t.Errorf("device statuses %v, succeeded %d", ping.DeviceStatuses, ping.Succeeded)
	}
	twin := rep.Jobs[1]
	if twin.JobID != "set-interval-b43" || twin.DeviceCount != 100 || twin.Succeeded != 100 {
		t.Errorf("twin job %+v", twin)
	}
	if len(notes) < 2 || last.Connected != 200 || len(last.Jobs) != 2 {
		t.Errorf("progress: notes %q, last %+v", notes, last)
	}
	if rep.Fleet.MethodCalls < 200 || rep.Fleet.DesiredPatches < 100 {
		t.Errorf("fleet %+v", rep.Fleet)
	}
	// The last live figures of finished jobs are the report's.
	for i, lj := range last.Jobs {
		j := rep.Jobs[i]
		if !lj.LatencyKnown || lj.P50 != time.Duration(j.Latency.P50) || lj.P99 != time.Duration(j.Latency.P99) || lj.OpsPerSecond != j.OpsPerSecond {
			t.Errorf("job %s: live p50 %v p99 %v %.1f ops/s; report p50 %v p99 %v %.1f ops/s", j.JobID,
				lj.P50, lj.P99, lj.OpsPerSecond, time.Duration(j.Latency.P50), time.Duration(j.Latency.P99), j.OpsPerSecond)
		}
	}
	// The connected-fleet expectation and the fleet summary read the same count.
	want := fmt.Sprintf("%d of %d connected", rep.Fleet.ConnectedAtEnd, rep.Devices)
	if e := rep.Expectations[len(rep.Expectations)-1]; !strings.HasPrefix(e.Detail, want) {
		t.Errorf("expectation %q says %q, the fleet summary %s", e.Description, e.Detail, want)
	}
}

func TestFailingExpectationsFailTheReport(t *testing.T) {
	sc, err := scenarios.Parse("strict.yaml", []byte(`
name: strict
duration: 20s
devices:
  - count: 20
    idPattern: "s-{index}"
    tags: {floor: [1, 2]}
    behavior:
      methods:
        ping: {statuses: {200: 0.5, 500: 0.5}}
timeline:
  - at: 0s
    job: {id: ping, method: ping, condition: "tags.floor = 1", responseTimeout: 5s, connectTimeout: 5s}
  - at: 0s
    job: {id: nobody, method: absent, condition: "tags.floor = 2", responseTimeout: 5s, connectTimeout: 5s}
expect:
  - {job: ping, status: completed, minDevices: 10}
  - {job: nobody, status: completed, minSucceeded: 10}
  - {job: ping, minDevices: 11}
`))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := runner.Run(t.Context(), sc, runner.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Passed {
		t.Fatal("the report passed")
	}
	want := []bool{true, true, true, false, false}
	if len(rep.Expectations) != len(want) {
		t.Fatalf("expectations %+v", rep.Expectations)
	}
	for i, e := range rep.Expectations {
		if e.Passed != want[i] {
			t.Errorf("%s: passed %v, want %v (%s)", e.Description, e.Passed, want[i], e.Detail)
		}
	}
	nobody := rep.Jobs[1]
	if nobody.Failed != 10 || len(nobody.Failures) != 1 || nobody.Failures[0].Cause != "GatewayTimeout" {
		t.Errorf("unanswered job: %+v", nobody)
	}
}

func TestShardRunsItsSlice(t *testing.T) {
	sc := load(t, "quickstart")
	var total int
	for i := 1; i <= 2; i++ {
		sc := load(t, "quickstart")
		ids := map[string]bool{}
		for d := range sc.DeviceSpecs(i-1, 2) {
			ids[d.ID] = true
		}
		total += len(ids)
	}
	if total != sc.DeviceCount() {
		t.Fatalf("shards hold %d devices, the fleet %d", total, sc.DeviceCount())
	}
	if _, err := runner.Run(t.Context(), sc, runner.Options{Shard: 3, Shards: 2}); !errors.Is(err, runner.ErrBadShard) {
		t.Errorf("shard 3/2: %v", err)
	}
}

func TestRunStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Second)
	defer cancel()
	_, err := runner.Run(ctx, load(t, "s1-throttled"), runner.Options{})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Run: %v", err)
	}
}

// TestInterruptedRunReports cancels a run after its first job was created:
// Run returns the context's error with a partial report that judged the
// jobs created so far and says it was interrupted.
func TestInterruptedRunReports(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	rep, err := runner.Run(ctx, load(t, "quickstart"), runner.Options{Progress: func(p runner.Progress) {
		for _, j := range p.Jobs {
			if j.JobID == "ping-all" && j.Status == "completed" {
				cancel()
			}
		}
	}})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if rep == nil || !rep.Interrupted || rep.Passed {
		t.Fatalf("report %+v, want an interrupted one that did not pass", rep)
	}
	if len(rep.Jobs) != 1 || rep.Jobs[0].JobID != "ping-all" || rep.Jobs[0].Status != "completed" || rep.Jobs[0].Succeeded != 200 {
		t.Errorf("jobs %+v, want ping-all completed on 200 devices", rep.Jobs)
	}
	if len(rep.Expectations) == 0 || !rep.Expectations[0].Passed {
		t.Errorf("expectations %+v: ping-all's are judged and hold", rep.Expectations)
	}
}
