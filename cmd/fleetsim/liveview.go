package main

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// liveView shows a run's progress. On a terminal it redraws a frame in place
// (devices connected, a progress bar per job, ops/s, latency, the last notes);
// otherwise it prints plain progress lines, at most one every plainEvery of
// run time, plus each note once. It is fed runner.Progress values by Update
// from any goroutine and drawn by Draw, so a ticker sets the redraw rate and
// tests can render frames without a terminal.
type liveView struct {
	mu    sync.Mutex
	w     io.Writer
	opts  viewOptions
	p     runner.Progress
	have  bool
	notes []string
	// drawn is the number of lines of the frame now on screen (terminal mode).
	drawn int
	dirty bool
	// plain mode: when the last status line was printed, and what it said about job statuses.
	printedAt  time.Duration
	printed    bool
	statuses   string
	unprinted  bool
	lastNote   string
	cursorHide bool
}

// viewOptions configures a liveView.
type viewOptions struct {
	// Terminal selects in-place redrawing; otherwise plain lines.
	Terminal bool
	// Color adds ANSI colours (terminal mode only).
	Color bool
	// Width is the terminal width; lines are cut to fit so they never wrap
	// (default 100).
	Width int
	// WidthNow, when set, reads the terminal's width before each frame, so
	// a resized terminal gets lines that fit.
	WidthNow func() int
	// Title heads the frame, e.g. the scenario name.
	Title string
}

const (
	barWidth   = 32
	keepNotes  = 4
	plainEvery = time.Second
)

// The characters of a job's progress bar, distinct without colour.
const (
	barSucceeded = '█'
	barFailed    = 'x'
	barRunning   = '▒'
	barPending   = '·'
)

const (
	ansiReset  = "\x1b[0m"
	ansiGreen  = "\x1b[32m"
	ansiRed    = "\x1b[31m"
	ansiYellow = "\x1b[33m"
	ansiDim    = "\x1b[2m"
	ansiBold   = "\x1b[1m"
)

func newLiveView(w io.Writer, opts viewOptions) *liveView {
	if opts.Width <= 0 {
		opts.Width = 100
	}
	return &liveView{w: w, opts: opts}
}

// Update records a progress snapshot. In plain mode it prints what is due.
func (v *liveView) Update(p runner.Progress) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.p, v.have, v.dirty = p, true, true
	if p.Note != "" && p.Note != v.lastNote {
		v.lastNote = p.Note
		v.notes = append(v.notes, p.Note)
		if len(v.notes) > keepNotes {
			v.notes = v.notes[len(v.notes)-keepNotes:]
		}
		if !v.opts.Terminal {
			if strings.HasPrefix(p.Note, "T+") {
				fmt.Fprintf(v.w, "%s\n", p.Note)
			} else {
				fmt.Fprintf(v.w, "%s: %s\n", fmtElapsed(p.Elapsed), p.Note)
			}
		}
	}
	if v.opts.Terminal {
		return
	}
	statuses := jobStatuses(p)
	if !v.printed || p.Elapsed-v.printedAt >= plainEvery || statuses != v.statuses {
		v.printPlainLocked()
	} else {
		v.unprinted = true
	}
}

func (v *liveView) printPlainLocked() {
	io.WriteString(v.w, plainLine(v.p)+"\n")
	v.printed, v.printedAt, v.statuses, v.unprinted = true, v.p.Elapsed, jobStatuses(v.p), false
}

// Draw redraws the frame on a terminal if anything changed since the last draw.
func (v *liveView) Draw() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.opts.Terminal && v.dirty {
		v.drawLocked()
	}
}

// Close draws the final state and leaves it on screen.
func (v *liveView) Close() {
	v.mu.Lock()
	defer v.mu.Unlock()
	if !v.opts.Terminal {
		if v.unprinted {
			v.printPlainLocked()
		}
		return
	}
	if v.dirty {
		v.drawLocked()
	}
	if v.cursorHide {
		io.WriteString(v.w, "\x1b[?25h")
		v.cursorHide = false
	}
	v.drawn = 0
}

// LogWriter returns a writer for log lines that go to dst (stderr, the same
// terminal): on a terminal it lifts the frame, writes the lines, and draws
// the frame again below them, so logs and the view do not garble each other.
func (v *liveView) LogWriter(dst io.Writer) io.Writer {
	return writerFunc(func(b []byte) (int, error) {
		v.mu.Lock()
		defer v.mu.Unlock()
		if v.opts.Terminal && v.drawn > 0 {
			// Clear the frame line by line from the bottom up: a clear to
			// the end of the screen from its top corner would push the old
			// frame into tmux's scrollback.
			io.WriteString(v.w, "\r"+strings.Repeat("\x1b[1A\x1b[2K", v.drawn))
			v.drawn = 0
			v.dirty = true
		}
		n, err := dst.Write(b)
		if v.opts.Terminal && v.have {
			v.drawLocked()
		}
		return n, err
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

// drawLocked writes the frame in one Write: cursor up over the old frame,
// each line cleared and rewritten, the rest of the screen cleared.
func (v *liveView) drawLocked() {
	var b bytes.Buffer
	if !v.cursorHide {
		b.WriteString("\x1b[?25l")
		v.cursorHide = true
	}
	if v.drawn > 0 {
		fmt.Fprintf(&b, "\r\x1b[%dA", v.drawn)
	}
	if v.opts.WidthNow != nil {
		if w := v.opts.WidthNow(); w > 0 {
			v.opts.Width = w
		}
	}
	lines := v.frameLocked()
	for _, l := range lines {
		b.WriteString("\x1b[2K")
		b.WriteString(cut(l, v.opts.Width-1))
		b.WriteString("\n")
	}
	b.WriteString("\x1b[J")
	v.w.Write(b.Bytes())
	v.drawn = len(lines)
	v.dirty = false
}

// frameLocked renders the terminal frame as lines.
func (v *liveView) frameLocked() []string {
	p := v.p
	c := v.colorizer()
	var lines []string
	title := "fleetsim"
	if v.opts.Title != "" {
		title += " · " + v.opts.Title
	}
	lines = append(lines, c(ansiBold, title)+"  "+fmtElapsed(p.Elapsed))
	connBar := ""
	if p.Devices > 0 {
		n := p.Connected * 20 / p.Devices
		connBar = "  [" + c(ansiGreen, strings.Repeat("█", n)) + c(ansiDim, strings.Repeat("·", 20-n)) + "]"
	}
	width := v.opts.Width - 1 // the last column would wrap on some terminals
	devices := fmt.Sprintf("devices  %d/%d connected", p.Connected, p.Devices)
	if visibleLen(devices+connBar) <= width {
		devices += connBar // the bar only where it fits whole
	}
	if p.Devices == 0 && p.Rollout != "" {
		devices = "rollout  " + p.Rollout
	}
	lines = append(lines, devices)
	if len(p.Jobs) == 0 {
		lines = append(lines, c(ansiDim, "no jobs yet"))
	} else {
		lines = append(lines, jobsSummary(p))
	}
	idw := 0
	for _, j := range p.Jobs {
		idw = max(idw, utf8.RuneCountInString(j.JobID))
	}
	idw = min(idw, 28, max(8, width-12))
	for _, j := range p.Jobs {
		done := j.Succeeded + j.Failed
		head := fmt.Sprintf("  %-*s %-9s", idw, cutPlain(j.JobID, idw), j.Status)
		parts := []string{fmt.Sprintf("%d/%d", done, j.DeviceCount), fmtRate(j), "p50 " + fmtLatency(j, j.P50), "p99 " + fmtLatency(j, j.P99)}
		figs := strings.Join(parts, "  ")
		indent := strings.Repeat(" ", 3+idw)
		if hw, fw := visibleLen(head), visibleLen(figs); hw+1+barWidth+2+1+fw <= width {
			lines = append(lines, head+" "+v.bar(j, barWidth)+" "+figs)
		} else {
			// Too narrow for one line: the figures whole, wrapped between
			// figures, then the bar as wide as fits.
			indent = "    "
			line := head
			for _, f := range parts {
				if visibleLen(line)+2+len([]rune(f)) > width && strings.TrimSpace(line) != "" {
					lines = append(lines, line)
					line = indent + f
					continue
				}
				if strings.TrimSpace(line) == "" {
					line += f
				} else {
					line += "  " + f
				}
			}
			lines = append(lines, line)
			lines = append(lines, indent+v.bar(j, min(barWidth, max(4, width-len(indent)-2))))
		}
		counts := fmt.Sprintf("%s%s %d succeeded  %s %d failed  %s %d running  %s %d pending",
			indent, c(ansiGreen, string(barSucceeded)), j.Succeeded, c(ansiRed, string(barFailed)), j.Failed,
			c(ansiYellow, string(barRunning)), j.Running, c(ansiDim, string(barPending)), j.Pending)
		if visibleLen(counts) > width {
			counts = fmt.Sprintf("%s%s %d  %s %d  %s %d  %s %d",
				indent, c(ansiGreen, string(barSucceeded)), j.Succeeded, c(ansiRed, string(barFailed)), j.Failed,
				c(ansiYellow, string(barRunning)), j.Running, c(ansiDim, string(barPending)), j.Pending)
		}
		lines = append(lines, counts)
	}
	for _, l := range deviceSideLive(p) {
		lines = append(lines, wrapFigures(l.label, l.text, width)...)
	}
	for _, n := range v.notes {
		lines = append(lines, c(ansiDim, "› ")+n)
	}
	return lines
}

// jobsSummary is the frame's jobs line: how many, how many are running, and
// the device-ops/s of the running ones together (finished jobs no longer
// add to what the hub is doing).
func jobsSummary(p runner.Progress) string {
	var ops float64
	running := 0
	for _, j := range p.Jobs {
		if j.Status == "running" {
			running++
			ops += j.OpsPerSecond
		}
	}
	if running == 0 {
		return fmt.Sprintf("jobs     %d, none running", len(p.Jobs))
	}
	return fmt.Sprintf("jobs     %d, %d running at %.1f device-ops/s", len(p.Jobs), running, ops)
}

// fmtRate is a job's device-ops/s, or "- ops/s" for a job that has not
// operated on any device (scheduled, or cancelled before it reached one).
func fmtRate(j runner.JobProgress) string {
	if j.OpsPerSecond == 0 {
		return "- ops/s"
	}
	return fmt.Sprintf("%.1f ops/s", j.OpsPerSecond)
}

// fmtLatency is a live latency, or "-" when it was not measured.
func fmtLatency(j runner.JobProgress, d time.Duration) string {
	if !j.LatencyKnown {
		return "-"
	}
	return fmtDur(d)
}

// visibleLen is the number of characters of s a terminal shows: runes
// outside ANSI escape sequences.
func visibleLen(s string) int {
	return utf8.RuneCountInString(stripEscapes(s))
}

// stripEscapes removes ANSI CSI sequences from s.
func stripEscapes(s string) string {
	if !strings.Contains(s, "\x1b") {
		return s
	}
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
		b.WriteByte(s[i])
	}
	return b.String()
}

// bar draws a job's progress bar, width cells between the brackets:
// succeeded, failed, running, pending.
func (v *liveView) bar(j runner.JobProgress, barWidth int) string {
	total := max(j.DeviceCount, j.Succeeded+j.Failed+j.Running+j.Pending)
	counts := []int{j.Succeeded, j.Failed, j.Running, j.Pending}
	chars := []rune{barSucceeded, barFailed, barRunning, barPending}
	colors := []string{ansiGreen, ansiRed, ansiYellow, ansiDim}
	c := v.colorizer()
	var b strings.Builder
	b.WriteByte('[')
	if total == 0 {
		b.WriteString(c(ansiDim, strings.Repeat(string(barPending), barWidth)))
	} else {
		// Cumulative rounding: the segments always add up to barWidth.
		cum, prev := 0, 0
		for i, n := range counts {
			cum += n
			end := cum * barWidth / total
			if i == len(counts)-1 {
				end = barWidth
			}
			if end > prev {
				b.WriteString(c(colors[i], strings.Repeat(string(chars[i]), end-prev)))
				prev = end
			}
		}
	}
	b.WriteByte(']')
	return b.String()
}

func (v *liveView) colorizer() func(code, s string) string {
	if !v.opts.Color {
		return func(_, s string) string { return s }
	}
	return func(code, s string) string {
		if s == "" {
			return s
		}
		return code + s + ansiReset
	}
}

// plainLine is one progress line for logs and pipes.
func plainLine(p runner.Progress) string {
	var b strings.Builder
	if p.Devices == 0 && p.Rollout != "" {
		fmt.Fprintf(&b, "%s  rollout %s", fmtElapsed(p.Elapsed), p.Rollout)
	} else {
		fmt.Fprintf(&b, "%s  devices %d/%d connected", fmtElapsed(p.Elapsed), p.Connected, p.Devices)
	}
	for _, j := range p.Jobs {
		fmt.Fprintf(&b, " | %s %s %d/%d succeeded=%d failed=%d running=%d pending=%d %s p50=%s p99=%s",
			j.JobID, j.Status, j.Succeeded+j.Failed, j.DeviceCount, j.Succeeded, j.Failed, j.Running, j.Pending,
			fmtRate(j), fmtLatency(j, j.P50), fmtLatency(j, j.P99))
	}
	b.WriteString(plainDeviceSide(p))
	return b.String()
}

// jobStatuses summarises the jobs' statuses, to print a line when one changes.
func jobStatuses(p runner.Progress) string {
	var b strings.Builder
	for _, j := range p.Jobs {
		b.WriteString(j.JobID + "=" + j.Status + ";")
	}
	// A line when the run starts to wait for the devices, and when they are done.
	if p.Settling {
		b.WriteString("settling;")
	}
	if p.Settled {
		b.WriteString("settled;")
	}
	return b.String()
}

func fmtElapsed(d time.Duration) string {
	return "T+" + d.Round(100*time.Millisecond).String()
}

// cut shortens s to width visible characters, keeping ANSI escape sequences
// (and closing any colour it cuts into).
func cut(s string, width int) string {
	var b strings.Builder
	n := 0
	cutAny := false
	for i := 0; i < len(s); {
		if s[i] == 0x1b {
			j := i + 1
			if j < len(s) && s[j] == '[' {
				j++
				for j < len(s) && (s[j] < 0x40 || s[j] > 0x7e) {
					j++
				}
				j++
			}
			b.WriteString(s[i:min(j, len(s))])
			i = j
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if n >= width {
			cutAny = true
			i += size
			continue
		}
		b.WriteRune(r)
		n++
		i += size
	}
	if cutAny && strings.Contains(s, "\x1b[") {
		b.WriteString(ansiReset)
	}
	return b.String()
}

// cutPlain shortens s (no escapes) to width characters.
func cutPlain(s string, width int) string {
	if utf8.RuneCountInString(s) <= width {
		return s
	}
	r := []rune(s)
	return string(r[:width-1]) + "…"
}
