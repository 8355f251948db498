package sysmem

import (
	"runtime"
	"testing"
)

func TestReadings(t *testing.T) {
	for _, tc := range []struct {
		name     string
		got      int64
		min, max int64
	}{
		{"Total", Total(), 64 << 20, 1 << 50},
		{"RSS", RSS(), 1 << 20, 1 << 50},
		{"PeakRSS", PeakRSS(), 1 << 20, 1 << 50},
	} {
		if runtime.GOOS != "linux" {
			if tc.got != 0 {
				t.Errorf("%s = %d off Linux, want 0", tc.name, tc.got)
			}
			continue
		}
		if tc.got < tc.min || tc.got > tc.max {
			t.Errorf("%s = %d bytes, out of any plausible range", tc.name, tc.got)
		}
	}
	if rss := RSS(); runtime.GOOS == "linux" {
		if peak := PeakRSS(); peak < rss { // read after: the peak only grows
			t.Errorf("peak RSS %d below an earlier RSS %d", peak, rss)
		}
	}
}

func TestKBFieldMissing(t *testing.T) {
	if got := kBField("/nonexistent/meminfo", "MemTotal"); got != 0 {
		t.Errorf("missing file: %d", got)
	}
	if runtime.GOOS == "linux" {
		if got := kBField("/proc/meminfo", "NoSuchField"); got != 0 {
			t.Errorf("missing field: %d", got)
		}
	}
}
