package runner

import (
	"testing"
	"time"
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
	if ops < 5.9 || ops > 6.1 { // 6 devices done by 1.005 s
		t.Errorf("ops/s = %v, want ~6", ops)
	}
}
