package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"math"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs"
)

func TestPercentile(t *testing.T) {
	var s []time.Duration
	for i := 1; i <= 100; i++ {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	tests := []struct {
		p    float64
		want time.Duration
	}{{50, 50 * time.Millisecond}, {95, 95 * time.Millisecond}, {99, 99 * time.Millisecond}, {100, 100 * time.Millisecond}, {0.1, time.Millisecond}}
	for _, tt := range tests {
		if got := percentile(s, tt.p); got != tt.want {
			t.Errorf("percentile(%v) = %v, want %v", tt.p, got, tt.want)
		}
	}
	if percentile(nil, 50) != 0 {
		t.Error("percentile of nothing is not 0")
	}
}

func TestJobFigures(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	rows := []deviceOutcome{
		{DeviceID: "d1", Status: "completed", Start: at(0), End: at(10), HasResponse: true, DeviceCode: 200},
		{DeviceID: "d2", Status: "completed", Start: at(0), End: at(20), HasResponse: true, DeviceCode: 500},
		{DeviceID: "d3", Status: "completed", Start: at(5), End: at(1005), HasResponse: true, DeviceCode: 200},
		{DeviceID: "d4", Status: "failed", Start: at(0), End: at(30), ErrorCode: "DeviceNotOnline", ErrorDesc: "Timed out waiting for device to connect"},
		{DeviceID: "d5", Status: "failed", Start: at(0), End: at(40), ErrorCode: "DeviceNotOnline"},
		{DeviceID: "d6", Status: "canceled", Start: at(0), End: at(50)},
		{DeviceID: "d7", Status: "pending"},
	}
	lat, fails, statuses, curve, ops := jobFigures(start, rows)
	if lat.P50 != Duration(30*time.Millisecond) || lat.Max != Duration(time.Second) {
		t.Errorf("latency = %+v", lat)
	}
	total := 0
	for _, b := range lat.Histogram {
		total += b.Count
	}
	if total != 6 {
		t.Errorf("histogram holds %d latencies, want 6: %+v", total, lat.Histogram)
	}
	if last := lat.Histogram[len(lat.Histogram)-1]; time.Duration(last.UpperBound) < time.Second {
		t.Errorf("histogram does not cover the max: %+v", lat.Histogram)
	}
	if len(fails) != 2 || fails[0].Cause != "DeviceNotOnline" || fails[0].Count != 2 || fails[1].Cause != "canceled" {
		t.Errorf("failures = %+v", fails)
	}
	if statuses[200] != 2 || statuses[500] != 1 {
		t.Errorf("statuses = %v", statuses)
	}
	if len(curve) != 61 || curve[len(curve)-1].Done != 6 || curve[0].At != 0 {
		t.Errorf("completion curve: %d points, last %+v", len(curve), curve[len(curve)-1])
	}
	for i := 1; i < len(curve); i++ {
		if curve[i].Done < curve[i-1].Done {
			t.Fatalf("completion curve decreases at %d: %+v", i, curve)
		}
	}
	if want := 5 / 1.005; math.Abs(ops-want) > 1e-9 { // 5 devices operated on (not the cancelled one) by 1.005 s
		t.Errorf("ops/s = %v, want %v", ops, want)
	}
}

// TestLiveJobMatchesReport feeds known device records through the live
// figures and the report's: p50 and p99 are the true percentiles, the same
// in both, and the rate counts only devices the hub operated on.
func TestLiveJobMatchesReport(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return start.Add(time.Duration(ms) * time.Millisecond) }
	// 100 devices with latencies 1..100 ms, all started at the job's start.
	var rows []deviceOutcome
	for i := 1; i <= 100; i++ {
		rows = append(rows, deviceOutcome{DeviceID: "d", Status: "completed", Start: start, End: at(i)})
	}
	end := at(100)
	running := hubjobs.Job{JobID: "j", Status: hubjobs.JobRunning, StartTime: start}
	running.DeviceJobStatistics.DeviceCount = 200
	running.DeviceJobStatistics.SucceededCount = 100
	running.DeviceJobStatistics.PendingCount = 100
	done := running
	done.Status, done.EndTime = hubjobs.JobCompleted, &end
	cancelled := running
	cancelled.Status = hubjobs.JobCancelled
	cancelled.DeviceJobStatistics.SucceededCount, cancelled.DeviceJobStatistics.FailedCount = 0, 200

	tests := []struct {
		name     string
		job      hubjobs.Job
		rows     []deviceOutcome
		haveRows bool
		now      time.Time
		p50, p99 time.Duration
		known    bool
		ops      float64
	}{
		{"running, 100 done in 2s", running, rows, true, at(2000), 50 * time.Millisecond, 99 * time.Millisecond, true, 50},
		{"completed: rate up to the last device", done, rows, true, at(5000), 50 * time.Millisecond, 99 * time.Millisecond, true, 1000},
		{"cancelled before any device ran", cancelled, []deviceOutcome{{Status: "canceled", Start: start, End: at(10)}}, true, at(1000), 10 * time.Millisecond, 10 * time.Millisecond, true, 0},
		{"cancelled, no rows", cancelled, nil, false, at(1000), 0, 0, false, 0},
		{"running, no rows: rate from statistics", running, nil, false, at(4000), 0, 0, false, 25},
		{"scheduled", hubjobs.Job{JobID: "j", Status: hubjobs.JobScheduled}, nil, true, at(1000), 0, 0, false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := liveJob(tt.job, tt.rows, tt.haveRows, tt.now)
			if got.P50 != tt.p50 || got.P99 != tt.p99 || got.LatencyKnown != tt.known {
				t.Errorf("p50 %v p99 %v known %v, want %v %v %v", got.P50, got.P99, got.LatencyKnown, tt.p50, tt.p99, tt.known)
			}
			if math.Abs(got.OpsPerSecond-tt.ops) > 1e-9 {
				t.Errorf("ops/s %v, want %v", got.OpsPerSecond, tt.ops)
			}
		})
	}
	// The live figures of the finished job are the report's.
	lat, _, _, _, ops := jobFigures(start, rows)
	live := liveJob(done, rows, true, at(9999))
	if time.Duration(lat.P50) != live.P50 || time.Duration(lat.P99) != live.P99 || ops != live.OpsPerSecond {
		t.Errorf("report p50 %v p99 %v %v ops/s; live %v %v %v", lat.P50, lat.P99, ops, live.P50, live.P99, live.OpsPerSecond)
	}
}

func TestDurationJSONIsMilliseconds(t *testing.T) {
	tests := []struct {
		d    time.Duration
		json string
	}{
		{0, "0"},
		{66465200, "66.4652"},
		{1500 * time.Millisecond, "1500"},
		{time.Nanosecond, "0.000001"},
		{150 * time.Millisecond, "150"},
	}
	for _, tt := range tests {
		b, err := json.Marshal(Duration(tt.d))
		if err != nil || string(b) != tt.json {
			t.Errorf("%v marshals to %s (%v), want %s", tt.d, b, err, tt.json)
		}
		var back Duration
		if err := json.Unmarshal(b, &back); err != nil || time.Duration(back) != tt.d {
			t.Errorf("%s unmarshals to %v (%v), want %v", b, time.Duration(back), err, tt.d)
		}
	}
	var d Duration
	if err := json.Unmarshal([]byte(`"1s"`), &d); err == nil {
		t.Error("a string duration unmarshals")
	}
}

var update = flag.Bool("update", false, "rewrite report.schema.json")

// TestReportJSONSchema fails when report.schema.json is not what
// ReportJSONSchema generates; go test -update rewrites it.
func TestReportJSONSchema(t *testing.T) {
	got := ReportJSONSchema()
	if *update {
		if err := os.WriteFile("report.schema.json", got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("report.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("report.schema.json is stale: run go test ./scenarios/runner -run TestReportJSONSchema -update")
	}
	for _, key := range []string{`"p99Ms"`, `"durationMs"`, `"connectedAtEnd"`, `"additionalProperties": false`} {
		if !bytes.Contains(got, []byte(key)) {
			t.Errorf("schema lacks %s", key)
		}
	}
}

func TestWarnings(t *testing.T) {
	got := warnings([]JobReport{
		{JobID: "none", Status: "completed", Condition: "tags.x = 1"},
		{JobID: "later", Status: "scheduled"},
		{JobID: "some", Status: "completed", DeviceCount: 3},
	})
	if len(got) != 1 || got[0] != `job none selected no devices: its query condition "tags.x = 1" matched none` {
		t.Errorf("warnings = %q", got)
	}
}

// rowsHub is a target that serves one job's records, which change between
// reads as a running job's do.
type rowsHub struct {
	target
	rowsNow []deviceOutcome
}

func (h *rowsHub) local() bool { return true }
func (h *rowsHub) rows(context.Context, string) ([]deviceOutcome, error) {
	return slices.Clone(h.rowsNow), nil
}

// TestLiveRowsReadAfterTheEnd checks that the live figures of a finished
// job come from records read after it ended, not from the last read while
// it ran (which left the live view with other numbers than the report).
func TestLiveRowsReadAfterTheEnd(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	row := func(ms int) deviceOutcome {
		return deviceOutcome{Status: "completed", Start: start, End: start.Add(time.Duration(ms) * time.Millisecond)}
	}
	h := &rowsHub{rowsNow: []deviceOutcome{row(1)}}
	p := &player{hub: h, finalRows: map[string][]deviceOutcome{}}
	j := hubjobs.Job{JobID: "j", Status: hubjobs.JobRunning, StartTime: start}
	if rows, ok := p.liveRows(t.Context(), j); !ok || len(rows) != 1 {
		t.Fatalf("running: %d rows, %v", len(rows), ok)
	}
	// The job ends between two reads: its last records arrive with it.
	h.rowsNow = []deviceOutcome{row(1), row(100)}
	j.Status = hubjobs.JobCompleted
	rows, _ := p.liveRows(t.Context(), j)
	if live := liveJob(j, rows, true, start.Add(time.Second)); live.P99 != 100*time.Millisecond {
		t.Errorf("finished job's live p99 %v, want 100ms", live.P99)
	}
	// Once read after the end, the records are kept.
	h.rowsNow = nil
	if rows, _ := p.liveRows(t.Context(), j); len(rows) != 2 {
		t.Errorf("finished job re-read: %d rows, want the 2 kept", len(rows))
	}
}
