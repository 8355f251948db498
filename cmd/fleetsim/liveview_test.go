package main

import (
	"bytes"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// progressSequence is a short run: devices connect, a reboot job is created,
// runs and completes with a few failures, and the run settles once the
// rebooted devices are back.
func progressSequence() []runner.Progress {
	job := func(status string, ok, failed, running, pending int, ops float64, p50, p99 time.Duration) runner.JobProgress {
		return runner.JobProgress{JobID: "reboot-all", Status: status, DeviceCount: 100, Succeeded: ok, Failed: failed,
			Running: running, Pending: pending, OpsPerSecond: ops, P50: p50, P99: p99, LatencyKnown: p99 > 0}
	}
	return []runner.Progress{
		{Elapsed: 0, Devices: 100, Connected: 0, Note: "T+0s: connecting 100 devices"},
		{Elapsed: 300 * time.Millisecond, Devices: 100, Connected: 60},
		{Elapsed: 600 * time.Millisecond, Devices: 100, Connected: 100},
		{Elapsed: 1200 * time.Millisecond, Devices: 100, Connected: 100, Note: "T+1.2s: created job reboot-all",
			Jobs: []runner.JobProgress{job("running", 0, 0, 10, 90, 0, 0, 0)}},
		{Elapsed: 1500 * time.Millisecond, Devices: 100, Connected: 97,
			Jobs:       []runner.JobProgress{job("running", 40, 2, 10, 48, 140.5, 12*time.Millisecond, 80*time.Millisecond)},
			DeviceSide: runner.DeviceSide{Reboots: &runner.RebootFigures{Count: 12}}},
		{Elapsed: 2600 * time.Millisecond, Devices: 100, Connected: 98, Note: "T+2.6s: job reboot-all completed",
			Jobs:     []runner.JobProgress{job("completed", 95, 5, 0, 0, 95.2, 11*time.Millisecond, 310*time.Millisecond)},
			Settling: true, Outstanding: 37, DeviceSide: runner.DeviceSide{Reboots: &runner.RebootFigures{Count: 58}}},
		{Elapsed: 4100 * time.Millisecond, Devices: 100, Connected: 100, Note: "T+4.1s: settled: the devices finished the work the jobs started",
			Jobs:     []runner.JobProgress{job("completed", 95, 5, 0, 0, 95.2, 11*time.Millisecond, 310*time.Millisecond)},
			Settling: true, Settled: true, DeviceSide: runner.DeviceSide{Reboots: &runner.RebootFigures{Count: 95}}},
	}
}

// visible shows escape sequences as text, so golden files stay readable.
func visible(b []byte) []byte {
	return bytes.ReplaceAll(b, []byte("\x1b"), []byte(`\e`))
}

func TestLiveViewFrames(t *testing.T) {
	tests := []struct {
		name   string
		opts   viewOptions
		golden string
	}{
		{"terminal", viewOptions{Terminal: true, Width: 120, Title: "quickstart"}, "liveview_terminal.golden"},
		{"terminal colour", viewOptions{Terminal: true, Color: true, Width: 120, Title: "quickstart"}, "liveview_color.golden"},
		{"narrow terminal", viewOptions{Terminal: true, Width: 50, Title: "quickstart"}, "liveview_narrow.golden"},
		{"plain", viewOptions{Title: "quickstart"}, "liveview_plain.golden"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			v := newLiveView(&out, tt.opts)
			for _, p := range progressSequence() {
				v.Update(p)
				v.Draw()
				out.WriteString("<draw>\n")
			}
			v.Draw() // nothing changed: nothing drawn
			v.Close()
			golden(t, tt.golden, visible(out.Bytes()))
		})
	}
}

func TestLiveViewTerminalRedrawsInPlace(t *testing.T) {
	var out bytes.Buffer
	v := newLiveView(&out, viewOptions{Terminal: true, Width: 120})
	seq := progressSequence()
	v.Update(seq[3])
	v.Draw()
	first := out.Len()
	lines := strings.Count(out.String(), "\n")
	v.Update(seq[4])
	v.Draw()
	second := out.String()[first:]
	// The second frame goes back up over the first, line by line, in one write.
	if want := "\r\x1b[" + itoa(lines) + "A"; !strings.HasPrefix(second, want) {
		t.Errorf("second frame starts %q, want cursor up %d lines %q", second[:min(12, len(second))], lines, want)
	}
	if strings.Count(second, "\x1b[2K") != strings.Count(second, "\n") {
		t.Errorf("every line of a frame must be cleared before it is written:\n%q", second)
	}
	for _, l := range strings.Split(strings.TrimSuffix(stripANSI(second), "\n"), "\n") {
		if n := len([]rune(l)); n >= 120 {
			t.Errorf("line of %d characters would wrap at 120: %q", n, l)
		}
	}
	if !strings.Contains(second, "[████████████x▒▒▒················]") {
		t.Errorf("job bar missing or wrong in:\n%s", second)
	}
	n := out.Len()
	v.Draw()
	if out.Len() != n {
		t.Errorf("Draw without news wrote %q", out.String()[n:])
	}
}

func TestLiveViewLogLinesGoAboveTheFrame(t *testing.T) {
	var screen bytes.Buffer
	v := newLiveView(&screen, viewOptions{Terminal: true, Width: 120})
	v.Update(progressSequence()[3])
	v.Draw()
	w := v.LogWriter(&screen)
	w.Write([]byte("12:00:00 WRN device flapping\n"))
	got := screen.String()
	i := strings.Index(got, "WRN device flapping")
	if i < 0 {
		t.Fatalf("log line missing: %q", got)
	}
	// Before the log line the frame is lifted; after it, drawn again.
	lines := strings.Count(got[:strings.Index(got, "\r")], "\n")
	if !strings.Contains(got[:i], "\r"+strings.Repeat("\x1b[1A\x1b[2K", lines)) || !strings.Contains(got[i:], "reboot-all") {
		t.Errorf("log line not placed above a redrawn frame: %q", got)
	}
}

func TestBarAddsUp(t *testing.T) {
	tests := []runner.JobProgress{
		{DeviceCount: 3, Succeeded: 1, Failed: 1, Running: 1},
		{DeviceCount: 7, Succeeded: 2, Pending: 5},
		{DeviceCount: 0},
		{DeviceCount: 100000, Succeeded: 99999, Failed: 1},
		{DeviceCount: 10, Succeeded: 12}, // counts above the device count
	}
	v := newLiveView(&bytes.Buffer{}, viewOptions{})
	for _, j := range tests {
		bar := v.bar(j, barWidth)
		if n := len([]rune(bar)); n != barWidth+2 {
			t.Errorf("%+v: bar %q is %d wide, want %d", j, bar, n, barWidth+2)
		}
	}
}

func TestCut(t *testing.T) {
	tests := []struct{ in, want string }{
		{"hello", "hello"},
		{"hello world", "hello"},
		{"\x1b[32m████\x1b[0m···", "\x1b[32m████\x1b[0m·\x1b[0m"},
		{"\x1b[32mabcdefgh\x1b[0m", "\x1b[32mabcde\x1b[0m\x1b[0m"},
	}
	for _, tt := range tests {
		if got := cut(tt.in, 5); got != tt.want {
			t.Errorf("cut(%q, 5) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func stripANSI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '[' {
			j := i + 2
			for j < len(s) && (s[j] < 0x40 || s[j] > 0x7e) {
				j++
			}
			i = j
			continue
		}
		if s[i] != '\r' {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestLiveViewFigures feeds known progress through the terminal frame and
// the plain line and checks the numbers they show: each job's p50 and p99,
// the rate of the running jobs only, no rate for a job that never operated
// on a device, and "-" for a latency not measured.
func TestLiveViewFigures(t *testing.T) {
	p := runner.Progress{Elapsed: 5 * time.Second, Devices: 350, Connected: 278, Jobs: []runner.JobProgress{
		{JobID: "ping", Status: "completed", DeviceCount: 200, Succeeded: 200, OpsPerSecond: 11000, P50: 41 * time.Millisecond, P99: 154 * time.Millisecond, LatencyKnown: true},
		{JobID: "twin", Status: "running", DeviceCount: 100, Succeeded: 40, Running: 10, Pending: 50, OpsPerSecond: 187.7, P50: 66465200, P99: 1233 * time.Millisecond, LatencyKnown: true},
		{JobID: "reboot", Status: "cancelled", DeviceCount: 50, Failed: 50},
		{JobID: "big", Status: "running", DeviceCount: 100000, Succeeded: 30000, Running: 100, Pending: 69900, OpsPerSecond: 12.3},
	}}
	var out bytes.Buffer
	v := newLiveView(&out, viewOptions{Terminal: true, Width: 200})
	v.Update(p)
	v.Draw()
	frame := stripANSI(out.String())
	for _, want := range []string{
		"278/350 connected",
		"jobs     4, 2 running at 200.0 device-ops/s",
		"200/200  11000.0 ops/s  p50 41ms  p99 154ms",
		"40/100  187.7 ops/s  p50 66.47ms  p99 1.23s",
		"50/50  - ops/s  p50 -  p99 -",
		"30000/100000  12.3 ops/s  p50 -  p99 -",
	} {
		if !strings.Contains(frame, want) {
			t.Errorf("frame lacks %q:\n%s", want, frame)
		}
	}
	line := plainLine(p)
	for _, want := range []string{
		"ping completed 200/200 succeeded=200 failed=0 running=0 pending=0 11000.0 ops/s p50=41ms p99=154ms",
		"twin running 40/100 succeeded=40 failed=0 running=10 pending=50 187.7 ops/s p50=66.47ms p99=1.23s",
		"reboot cancelled 50/50 succeeded=0 failed=50 running=0 pending=0 - ops/s p50=- p99=-",
	} {
		if !strings.Contains(line, want) {
			t.Errorf("plain line lacks %q:\n%s", want, line)
		}
	}
}

// TestLiveViewFitsNarrowTerminals draws frames at widths from 30 to 120
// columns: no line reaches the last column, and the figures are never cut.
func TestLiveViewFitsNarrowTerminals(t *testing.T) {
	p := runner.Progress{Elapsed: 5 * time.Second, Devices: 100, Connected: 100, Jobs: []runner.JobProgress{
		{JobID: "firmware-broad-ring", Status: "running", DeviceCount: 100000, Succeeded: 30000, Failed: 12, Running: 100, Pending: 69888,
			OpsPerSecond: 1234.5, P50: 93 * time.Millisecond, P99: 20*time.Minute + 33600*time.Millisecond, LatencyKnown: true},
	}}
	for width := 30; width <= 120; width += 5 {
		var out bytes.Buffer
		v := newLiveView(&out, viewOptions{Terminal: true, Width: width})
		v.Update(p)
		v.Draw()
		frame := stripANSI(out.String())
		for _, l := range strings.Split(strings.TrimSuffix(frame, "\n"), "\n") {
			if n := len([]rune(l)); n >= width {
				t.Errorf("width %d: line of %d characters: %q", width, n, l)
			}
		}
		if width >= 50 && !strings.Contains(frame, "p99 20m33.6s") {
			t.Errorf("width %d: the p99 is cut:\n%s", width, frame)
		}
	}
}

func TestVisibleLen(t *testing.T) {
	for in, want := range map[string]int{"abc": 3, "\x1b[32m████\x1b[0m·": 5, "p99 20.56ms": 11, "≤20ms": 5} {
		if got := visibleLen(in); got != want {
			t.Errorf("visibleLen(%q) = %d, want %d", in, got, want)
		}
	}
}

// TestLiveViewDeviceSide feeds known device-side counts and a settling run
// through the terminal frame at several widths and through the plain line,
// and checks the numbers they show and that no line is wider than the
// terminal allows.
func TestLiveViewDeviceSide(t *testing.T) {
	p := runner.Progress{Elapsed: 61 * time.Second, Devices: 1000, Connected: 989, Settling: true, Outstanding: 37,
		Jobs: []runner.JobProgress{{JobID: "fw-broad", Status: "completed", DeviceCount: 942, Succeeded: 941, Failed: 1, OpsPerSecond: 93.3}},
		DeviceSide: runner.DeviceSide{
			TwinAcks: &runner.AckFigures{Acknowledged: 748, Failed: 3, NotApplied: 7},
			Firmware: &runner.FirmwareFigures{Updated: 932, Failed: 68, RolledBack: 25, Phases: []runner.PhaseFigures{
				{Phase: "downloading", Succeeded: 969, Failed: 31}, {Phase: "verifying", Succeeded: 957, Failed: 12},
				{Phase: "applying", Succeeded: 940, Failed: 17}, {Phase: "rebooting", Succeeded: 932, Failed: 8}}},
			Reboots:       &runner.RebootFigures{Count: 940},
			TelemetrySent: 8000,
		}}
	wide := []string{
		"settling every job is terminal; 37 device operations still in progress",
		"acks     748 accepted (7 not applied), 3 failed",
		"firmware 932 updated, 68 failed, 25 rolled back; failed in downloading 31, verifying 12, applying 17, rebooting 8",
		"reboots  940 back online",
		"telemetry 8000 sent",
	}
	for _, width := range []int{30, 40, 60, 80, 120, 200} {
		var out bytes.Buffer
		v := newLiveView(&out, viewOptions{Terminal: true, Width: width})
		v.Update(p)
		v.Draw()
		frame := stripANSI(out.String())
		for _, l := range strings.Split(strings.TrimSuffix(frame, "\n"), "\n") {
			if n := len([]rune(l)); n >= width {
				t.Errorf("width %d: line of %d characters: %q", width, n, l)
			}
		}
		// Wrapped or not, the figures read the same once the frame's
		// line breaks and indents are folded.
		folded := regexp.MustCompile(`\n {9}`).ReplaceAllString(frame, " ")
		for _, want := range wide {
			if width >= 40 && !strings.Contains(folded, want) {
				t.Errorf("width %d: frame lacks %q:\n%s", width, want, frame)
			}
		}
		if width == 200 {
			for _, want := range wide {
				if !strings.Contains(frame, want+"\n") {
					t.Errorf("width 200: %q is not one line:\n%s", want, frame)
				}
			}
		}
	}
	line := plainLine(p)
	want := " | settling outstanding=37 | devices acks=748 ack-failures=3 acks-not-applied=7 fw-updated=932 fw-failed=68 fw-rolled-back=25 reboots-back=940 telemetry=8000"
	if !strings.HasSuffix(line, want) {
		t.Errorf("plain line\n%s\nwant it to end in\n%s", line, want)
	}
	// Nothing device-side yet: no extra line, no extra figures.
	quiet := runner.Progress{Elapsed: time.Second, Devices: 10, Connected: 10}
	if got := deviceSideLive(quiet); len(got) != 0 {
		t.Errorf("device-side lines for a quiet run: %v", got)
	}
	if got := plainDeviceSide(quiet); got != "" {
		t.Errorf("plain device-side part for a quiet run: %q", got)
	}
}
