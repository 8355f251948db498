package runner

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func loadReport(t *testing.T, name string) *Report {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "merge", name))
	if err != nil {
		t.Fatal(err)
	}
	var r Report
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	return &r
}

func TestMergeShardReports(t *testing.T) {
	s1, s2 := loadReport(t, "shard-1.json"), loadReport(t, "shard-2.json")
	m, err := Merge([]*Report{s2, s1})
	if err != nil {
		t.Fatal(err)
	}
	// Device figures add up; the job is counted once, from shard 2, which
	// ended last and saw it complete.
	if m.Devices != 200 || m.Fleet.ConnectedAtEnd != 198 || m.Fleet.Connects != 210 || m.DeviceSide.TelemetrySent != 100 {
		t.Errorf("fleet: %d devices, %+v, telemetry %d", m.Devices, m.Fleet, m.DeviceSide.TelemetrySent)
	}
	// Shard 1 never had its whole fleet connected: neither has the merge.
	if m.Fleet.AllConnected != 0 {
		t.Errorf("merged fleet all connected after %v, with two devices of shard 1 never connected", m.Fleet.AllConnected)
	}
	s1.Fleet.AllConnected = Duration(3 * time.Second)
	if m2, err := Merge([]*Report{s1, s2}); err != nil || m2.Fleet.AllConnected != Duration(4200*time.Millisecond) {
		t.Errorf("merged fleet all connected after %v (%v), want the longer shard's 4.2s", m2.Fleet.AllConnected, err)
	}
	if len(m.Jobs) != 1 || m.Jobs[0].Status != "completed" || m.Jobs[0].DeviceCount != 200 || m.Jobs[0].Succeeded != 194 {
		t.Errorf("jobs %+v, want one completed job of 200 devices, 194 succeeded", m.Jobs)
	}
	if len(m.Shards) != 2 || m.Shards[0].Shard != "1/2" || m.Shards[0].NeverConnected != 2 || m.Shards[0].FailedExpectations != 1 || m.Shards[1].Connects != 100 {
		t.Errorf("shards %+v", m.Shards)
	}
	if m.NeverConnected == nil || m.NeverConnected.Count != 3 || len(m.NeverConnected.Causes) != 1 || m.NeverConnected.Causes[0].Count != 3 {
		t.Errorf("never connected %+v", m.NeverConnected)
	}
	// 198 of 200 is 99.0%: the fleet-wide expectation holds on the merged
	// figures although it failed on shard 1 alone.
	if len(m.Expectations) != 2 || !m.Expectations[0].Passed || !strings.HasPrefix(m.Expectations[0].Detail, "198 of 200 connected (99.0%)") {
		t.Errorf("expectations %+v", m.Expectations)
	}
	if !m.Passed || m.Run == nil || len(m.Run.Lost) != 1 || m.Run.Lost[0].Shard != 2 || len(m.Warnings) != 1 {
		t.Errorf("passed %v, run %+v, warnings %q", m.Passed, m.Run, m.Warnings)
	}
	if m.Started != s1.Started || m.Ended != s2.Ended || m.Duration != Duration(70e9) {
		t.Errorf("started %s ended %s duration %v", m.Started, m.Ended, m.Duration)
	}
}

func TestMergeRefuses(t *testing.T) {
	other := loadReport(t, "shard-2.json")
	other.Seed = 8
	three := loadReport(t, "shard-2.json")
	three.Shard = "2/3"
	for _, tt := range []struct {
		name    string
		reports []*Report
	}{
		{"none", nil},
		{"the same shard twice", []*Report{loadReport(t, "shard-1.json"), loadReport(t, "shard-1.json")}},
		{"another seed", []*Report{loadReport(t, "shard-1.json"), other}},
		{"another shard count", []*Report{loadReport(t, "shard-1.json"), three}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Merge(tt.reports); !errors.Is(err, ErrMerge) {
				t.Errorf("Merge: %v, want ErrMerge", err)
			}
		})
	}
}

func TestMergeWithAShardMissing(t *testing.T) {
	m, err := Merge([]*Report{loadReport(t, "shard-2.json")})
	if err != nil {
		t.Fatal(err)
	}
	if m.Passed || len(m.Expectations) != 3 || m.Expectations[0].Passed || m.Expectations[0].Detail != "no report of shard 1" {
		t.Errorf("passed %v, expectations %+v", m.Passed, m.Expectations)
	}
}

// TestMergeCountsARolloutOnce merges shard reports of one rollout: the
// merged report has it once, from the shard that ran it (with its events),
// whatever the order of the reports and whether another shard could read it.
func TestMergeCountsARolloutOnce(t *testing.T) {
	ran := RolloutReport{ID: "fw", HubID: "fw-1a2b3c4d", Status: "completed", Touched: 40,
		Events: []RolloutEventReport{{Msg: "rollout fw-1a2b3c4d completed"}}}
	read := ran
	read.Events, read.From = nil, "shard 1"
	unread := RolloutReport{ID: "fw", HubID: "fw-1a2b3c4d", Status: "unknown", From: "shard 1", ReadError: "shard 1 has not published it"}
	for _, tt := range []struct {
		name   string
		shards []RolloutReport // shard i+1's rollout
	}{
		{"read by shard 2", []RolloutReport{ran, read}},
		{"shard 1 last", []RolloutReport{read, unread, ran}},
		{"not read by shard 2", []RolloutReport{unread, ran}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var reps []*Report
			for i, ro := range tt.shards {
				reps = append(reps, &Report{Scenario: "s", Seed: 1, Shard: fmt.Sprintf("%d/%d", i+1, len(tt.shards)), Rollouts: []RolloutReport{ro}, Passed: true})
			}
			m, err := Merge(reps)
			if err != nil {
				t.Fatal(err)
			}
			if len(m.Rollouts) != 1 || m.Rollouts[0].From != "" || len(m.Rollouts[0].Events) != 1 {
				t.Errorf("rollouts %+v, want shard 1's report of fw once", m.Rollouts)
			}
		})
	}
}
