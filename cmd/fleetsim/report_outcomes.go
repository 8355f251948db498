package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// writeSettleText says how the run ended and lists the report's warnings.
func writeSettleText(w io.Writer, r *runner.Report) {
	if r.Settle.Note != "" {
		fmt.Fprintf(w, "Run %s\n", r.Settle.Note)
	}
	for _, s := range r.Warnings {
		fmt.Fprintf(w, "WARNING: %s\n", s)
	}
}

// writeDeviceSideText writes what the devices did, measured at the
// devices, under indent.
func writeDeviceSideText(w io.Writer, indent string, ds *runner.DeviceSide) {
	if ds == nil {
		return
	}
	if a := ds.TwinAcks; a != nil {
		fmt.Fprintf(w, "%sacknowledgements: %d accepted by the hub%s, %d failed; latency p50 %s, p99 %s, max %s\n",
			indent, a.Acknowledged, notAppliedNote(a), a.Failed, fmtMs(a.LatencyMs.P50), fmtMs(a.LatencyMs.P99), fmtMs(a.LatencyMs.Max))
	}
	if f := ds.Firmware; f != nil {
		fmt.Fprintf(w, "%sfirmware: %d updated, %d failed, %d rolled back; time to the new version p50 %s, p99 %s\n",
			indent, f.Updated, f.Failed, f.RolledBack, fmtMs(f.TimeToVersionMs.P50), fmtMs(f.TimeToVersionMs.P99))
		var parts []string
		for _, p := range f.Phases {
			parts = append(parts, fmt.Sprintf("%s %d ok / %d failed", p.Phase, p.Succeeded, p.Failed))
		}
		if len(parts) > 0 {
			fmt.Fprintf(w, "%s  phases: %s\n", indent, strings.Join(parts, "; "))
		}
	}
	if rb := ds.Reboots; rb != nil {
		fmt.Fprintf(w, "%sreboots: %d back online; offline p50 %s, p99 %s, max %s\n",
			indent, rb.Count, fmtMs(rb.OfflineMs.P50), fmtMs(rb.OfflineMs.P99), fmtMs(rb.OfflineMs.Max))
	}
}

// notAppliedNote is " (N report the change was not applied)" for
// acknowledgements of which N say the device failed to apply the change,
// or "" when none did.
func notAppliedNote(a *runner.AckFigures) string {
	switch a.NotApplied {
	case 0:
		return ""
	case 1:
		return " (1 reports the change was not applied)"
	}
	return fmt.Sprintf(" (%d report the change was not applied)", a.NotApplied)
}

// fmtMs formats milliseconds for people.
func fmtMs(v float64) string {
	switch {
	case v == 0:
		return "0"
	case v < 1000:
		return fmt.Sprintf("%.0f ms", v)
	case v < 60000:
		return fmt.Sprintf("%.2f s", v/1000)
	}
	return fmt.Sprintf("%.1f min", v/60000)
}

// htmlDeviceSide is what the devices did, ready for the page: one row per
// kind of outcome, and the firmware phases.
type htmlDeviceSide struct {
	Rows   []outcomeRow
	Phases []phaseRow
}

// outcomeRow is one kind of device-side outcome: how many finished well,
// how many failed or rolled back ("-" where the kind has no such thing),
// and the distribution of its time.
type outcomeRow struct {
	What, Measured     string
	Note               string // a second line under What
	Done               string
	Failed, RolledBack string
	P50, P99, Max      string
}

// phaseRow is one firmware phase: updates that passed it and that failed in
// it, with a bar of the two.
type phaseRow struct {
	Phase             string
	Succeeded, Failed int
	Segments          []segment
}

// deviceSideHTML lays out ds for the page; nil when there is nothing to
// show. Telemetry is a row only where it is counted (the run).
func deviceSideHTML(ds *runner.DeviceSide, telemetry bool) *htmlDeviceSide {
	if ds == nil {
		return nil
	}
	out := &htmlDeviceSide{}
	dist := func(r *outcomeRow, m runner.MsSummary) {
		r.P50, r.P99, r.Max = fmtMs(m.P50), fmtMs(m.P99), fmtMs(m.Max)
	}
	if a := ds.TwinAcks; a != nil {
		r := outcomeRow{What: "Acknowledgements", Measured: "latency: desired change received → hub answered the reported acknowledgement",
			Done: strconv.Itoa(a.Acknowledged), Failed: strconv.Itoa(a.Failed), RolledBack: "-"}
		if a.NotApplied > 0 {
			r.Note = fmt.Sprintf("of the accepted, %d report that the device could not apply the change", a.NotApplied)
		}
		dist(&r, a.LatencyMs)
		out.Rows = append(out.Rows, r)
	}
	if f := ds.Firmware; f != nil {
		r := outcomeRow{What: "Firmware updates", Measured: "time to the new version: update accepted → new version reported",
			Done: strconv.Itoa(f.Updated), Failed: strconv.Itoa(f.Failed), RolledBack: strconv.Itoa(f.RolledBack)}
		dist(&r, f.TimeToVersionMs)
		out.Rows = append(out.Rows, r)
		for _, p := range f.Phases {
			pr := phaseRow{Phase: p.Phase, Succeeded: p.Succeeded, Failed: p.Failed}
			if total := p.Succeeded + p.Failed; total > 0 {
				for _, s := range []segment{{Class: "ok", Label: "passed", Count: p.Succeeded}, {Class: "fail", Label: "failed", Count: p.Failed}} {
					if s.Count > 0 {
						s.Pct = strconv.FormatFloat(100*float64(s.Count)/float64(total), 'f', 2, 64)
						pr.Segments = append(pr.Segments, s)
					}
				}
			}
			out.Phases = append(out.Phases, pr)
		}
	}
	if rb := ds.Reboots; rb != nil {
		r := outcomeRow{What: "Reboots", Measured: "offline time: went down → connected again",
			Done: strconv.Itoa(rb.Count), Failed: "-", RolledBack: "-"}
		dist(&r, rb.OfflineMs)
		out.Rows = append(out.Rows, r)
	}
	if telemetry {
		out.Rows = append(out.Rows, outcomeRow{What: "Telemetry messages sent", Done: strconv.FormatInt(ds.TelemetrySent, 10),
			Failed: "-", RolledBack: "-", P50: "-", P99: "-", Max: "-"})
	}
	if ds.C2DReceived > 0 {
		out.Rows = append(out.Rows, outcomeRow{What: "Cloud-to-device messages received (acknowledged)", Done: strconv.FormatInt(ds.C2DAcked, 10),
			Failed: strconv.FormatInt(ds.C2DReceived-ds.C2DAcked, 10), RolledBack: "-", P50: "-", P99: "-", Max: "-"})
	}
	if len(out.Rows) == 0 {
		return nil
	}
	return out
}

// settleHTML is the page's sentence on how the run ended: the note with
// its first letter capitalised, and when the jobs and the devices were done.
func settleHTML(s runner.Settle) string {
	if s.Note == "" {
		return ""
	}
	note := strings.ToUpper(s.Note[:1]) + s.Note[1:]
	var when []string
	at := func(v float64) string { return "T+" + fmtDur(time.Duration(v*float64(time.Millisecond))) }
	if s.JobsDoneMs > 0 {
		when = append(when, "every job terminal at "+at(s.JobsDoneMs))
	}
	if s.SettledMs > 0 {
		when = append(when, "devices done at "+at(s.SettledMs))
	}
	if len(when) > 0 {
		note += " (" + strings.Join(when, ", ") + ")"
	}
	return note + "."
}

// deviceSideTemplate is the page's block for a htmlDeviceSide, used for the
// run and for each job.
const deviceSideTemplate = `{{define "deviceside"}}<table class="outcomes">
<thead><tr><th>Outcome</th><th class="num">Done</th><th class="num">Failed</th><th class="num">Rolled back</th><th class="num">p50</th><th class="num">p99</th><th class="num">max</th></tr></thead>
<tbody>
{{range .Rows}}<tr><td>{{.What}}{{with .Measured}}<br><span class="sub">{{.}}</span>{{end}}{{with .Note}}<br><span class="sub note">{{.}}</span>{{end}}</td><td class="num">{{.Done}}</td><td class="num">{{.Failed}}</td><td class="num">{{.RolledBack}}</td><td class="num">{{.P50}}</td><td class="num">{{.P99}}</td><td class="num">{{.Max}}</td></tr>
{{end}}</tbody>
</table>
{{with .Phases}}<table class="phases">
<thead><tr><th>Firmware phase</th><th class="num">Passed</th><th class="num">Failed</th><th>Passed and failed</th></tr></thead>
<tbody>
{{range .}}<tr><td>{{.Phase}}</td><td class="num">{{.Succeeded}}</td>{{if .Failed}}<td class="num fail">{{.Failed}}</td>{{else}}<td class="num">0</td>{{end}}<td><div class="bar thin">{{range .Segments}}<div class="{{.Class}}" style="width: {{.Pct}}%" title="{{.Count}} {{.Label}}"></div>{{end}}</div></td></tr>
{{end}}</tbody>
</table>
{{end}}{{end}}`

// liveLine is one labelled line of the live view. Its text wraps at
// spaces; a no-break space (U+00A0) keeps a number with its noun.
type liveLine struct {
	label string
	text  string
}

// nbsp joins the words of one figure so that it never wraps apart.
const nbsp = "\u00a0"

// deviceSideLive is the live view's device-side lines: settling or settled,
// then the acknowledgements, firmware updates, reboots and telemetry
// counted so far. Kinds nothing has happened to yet have no line.
func deviceSideLive(p runner.Progress) []liveLine {
	var out []liveLine
	n := func(v int64, noun string) string { return strconv.FormatInt(v, 10) + nbsp + noun }
	switch {
	case p.Settled:
		out = append(out, liveLine{"settled", "the devices finished the work the jobs started"})
	case p.Settling:
		what := "every job is terminal; waiting for the devices to go quiet"
		if p.Outstanding > 0 {
			ops := "device" + nbsp + "operations"
			if p.Outstanding == 1 {
				ops = "device" + nbsp + "operation"
			}
			what = "every job is terminal; " + n(p.Outstanding, ops) + " still in progress"
		}
		out = append(out, liveLine{"settling", what})
	}
	ds := p.DeviceSide
	if a := ds.TwinAcks; a != nil {
		text := n(int64(a.Acknowledged), "accepted,")
		if a.NotApplied > 0 {
			text = n(int64(a.Acknowledged), "accepted") + " (" + n(int64(a.NotApplied), "not"+nbsp+"applied),")
		}
		out = append(out, liveLine{"acks", text + " " + n(int64(a.Failed), "failed")})
	}
	if f := ds.Firmware; f != nil {
		text := n(int64(f.Updated), "updated,") + " " + n(int64(f.Failed), "failed,") + " " + n(int64(f.RolledBack), "rolled"+nbsp+"back")
		var in []string
		for _, ph := range f.Phases {
			if ph.Failed > 0 {
				in = append(in, ph.Phase+nbsp+strconv.Itoa(ph.Failed))
			}
		}
		if len(in) > 0 {
			text += "; failed in " + strings.Join(in, ", ")
		}
		out = append(out, liveLine{"firmware", text})
	}
	if rb := ds.Reboots; rb != nil {
		out = append(out, liveLine{"reboots", n(int64(rb.Count), "back"+nbsp+"online")})
	}
	if ds.TelemetrySent > 0 {
		out = append(out, liveLine{"telemetry", n(ds.TelemetrySent, "sent")})
	}
	if ds.C2DReceived > 0 {
		out = append(out, liveLine{"c2d", n(ds.C2DReceived, "received") + ", " + n(ds.C2DAcked, "acked")})
	}
	return out
}

// wrapFigures lays out a labelled line in the frame's label column,
// wrapped at spaces (indented under the first line's text) so that no line
// is wider than width visible runes; a word wider than the line is cut.
func wrapFigures(label, text string, width int) []string {
	const col = 9 // "devices  ", "jobs     "
	head := label + " "
	if n := utf8.RuneCountInString(head); n < col {
		head += strings.Repeat(" ", col-n)
	}
	indent := strings.Repeat(" ", col)
	var lines []string
	line, fresh := head, true // fresh: nothing after the label or indent yet
	for _, w := range strings.Fields(text) {
		w = strings.ReplaceAll(w, nbsp, " ")
		if !fresh && visibleLen(line)+1+utf8.RuneCountInString(w) > width {
			lines = append(lines, line)
			line, fresh = indent, true
		}
		if !fresh {
			line += " "
		}
		line += w
		fresh = false
	}
	lines = append(lines, line)
	for i, l := range lines {
		lines[i] = cut(l, width)
	}
	return lines
}

// plainDeviceSide is the plain progress line's device-side part.
func plainDeviceSide(p runner.Progress) string {
	var b strings.Builder
	switch {
	case p.Settled:
		b.WriteString(" | settled")
	case p.Settling:
		fmt.Fprintf(&b, " | settling outstanding=%d", p.Outstanding)
	}
	ds := p.DeviceSide
	var parts []string
	if a := ds.TwinAcks; a != nil {
		parts = append(parts, fmt.Sprintf("acks=%d ack-failures=%d", a.Acknowledged, a.Failed))
		if a.NotApplied > 0 {
			parts = append(parts, fmt.Sprintf("acks-not-applied=%d", a.NotApplied))
		}
	}
	if f := ds.Firmware; f != nil {
		parts = append(parts, fmt.Sprintf("fw-updated=%d fw-failed=%d fw-rolled-back=%d", f.Updated, f.Failed, f.RolledBack))
	}
	if rb := ds.Reboots; rb != nil {
		parts = append(parts, fmt.Sprintf("reboots-back=%d", rb.Count))
	}
	if ds.TelemetrySent > 0 {
		parts = append(parts, fmt.Sprintf("telemetry=%d", ds.TelemetrySent))
	}
	if ds.C2DReceived > 0 {
		parts = append(parts, fmt.Sprintf("c2d-received=%d c2d-acked=%d", ds.C2DReceived, ds.C2DAcked))
	}
	if len(parts) > 0 {
		b.WriteString(" | devices " + strings.Join(parts, " "))
	}
	return b.String()
}
