package main

import (
	"bytes"
	"fmt"
	"html"
	"html/template"
	"math"
	"strconv"
	"strings"
	"time"

	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// renderHTML renders the report as one self-contained HTML page: inline CSS
// and inline SVG charts drawn here, no scripts and no external resources, so
// it opens offline and from a CI artifact store. Per job it draws completion
// over time (a line chart), the latency histogram (bars) and failures by
// cause (bars); the expectation table comes first.
func renderHTML(r *runner.Report) ([]byte, error) {
	failed := 0
	for _, e := range r.Expectations {
		if !e.Passed {
			failed++
		}
	}
	page := htmlPage{Report: r, Failed: failed, Settle: settleHTML(r.Settle), DeviceSide: deviceSideHTML(&r.DeviceSide, true)}
	for _, j := range r.Jobs {
		page.Jobs = append(page.Jobs, htmlJob{
			JobReport:     j,
			DeviceSide:    deviceSideHTML(j.DeviceSide, false),
			Kind:          jobKind(j),
			Answers:       deviceAnswers(j.DeviceStatuses),
			CompletionSVG: template.HTML(completionChart(j)),
			LatencySVG:    template.HTML(latencyChart(j)),
			FailuresSVG:   template.HTML(failureChart(j)),
			Segments:      statusSegments(j),
		})
	}
	var b bytes.Buffer
	if err := htmlTemplate.Execute(&b, page); err != nil {
		return nil, fmt.Errorf("render HTML report: %w", err)
	}
	return b.Bytes(), nil
}

type htmlPage struct {
	Report     *runner.Report
	Failed     int
	Settle     string
	DeviceSide *htmlDeviceSide
	Jobs       []htmlJob
}

type htmlJob struct {
	runner.JobReport
	Kind                                   string
	Answers                                string
	CompletionSVG, LatencySVG, FailuresSVG template.HTML
	Segments                               []segment
	DeviceSide                             *htmlDeviceSide
}

// segment is one part of a job's status bar.
type segment struct {
	Class string
	Label string
	Count int
	Pct   string
}

func statusSegments(j runner.JobReport) []segment {
	total := j.DeviceCount
	if sum := j.Succeeded + j.Failed + j.Running + j.Pending; sum > total {
		total = sum
	}
	var out []segment
	for _, s := range []segment{
		{Class: "ok", Label: "succeeded", Count: j.Succeeded},
		{Class: "fail", Label: "failed", Count: j.Failed},
		{Class: "run", Label: "running", Count: j.Running},
		{Class: "pend", Label: "pending", Count: j.Pending},
	} {
		if s.Count == 0 || total == 0 {
			continue
		}
		s.Pct = strconv.FormatFloat(100*float64(s.Count)/float64(total), 'f', 2, 64)
		out = append(out, s)
	}
	return out
}

var htmlTemplate = template.Must(template.New("report").Funcs(template.FuncMap{
	"dur":  func(d runner.Duration) string { return fmtDur(time.Duration(d)) },
	"time": fmtTime,
	"ops":  func(f float64) string { return strconv.FormatFloat(f, 'f', 1, 64) },
	"pct":  func(f float64) string { return strconv.FormatFloat(100*f, 'f', 1, 64) },
	"ints": joinInts,
}).Parse(deviceSideTemplate + `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="fleetsim">
<title>fleetsim report: {{.Report.Scenario}}</title>
<style>
:root { --ok: #2e7d32; --fail: #c62828; --run: #f9a825; --pend: #b0bec5; --ink: #1f2933; --muted: #61707d; --line: #d9e2ec; --accent: #1565c0; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: var(--ink); background: #f5f7fa; }
main { max-width: 1120px; margin: 0 auto; padding: 24px; }
header { display: flex; align-items: center; gap: 16px; flex-wrap: wrap; }
h1 { font-size: 24px; margin: 0; }
h2 { font-size: 18px; margin: 32px 0 12px; }
h3 { font-size: 15px; margin: 0 0 8px; }
h4 { font-size: 13px; margin: 16px 0 0; }
.badge { display: inline-block; padding: 2px 10px; border-radius: 12px; font-weight: 600; font-size: 13px; color: #fff; }
.badge.pass, .badge.completed { background: var(--ok); }
.badge.fail, .badge.failed, .badge.cancelled, .badge.aborted, .badge.stopped { background: var(--fail); }
.gatebar { position: relative; height: 10px; min-width: 140px; background: #eef2f6; border-radius: 3px; margin: 3px 0; }
.gatebar .val { position: absolute; left: 0; top: 0; bottom: 0; border-radius: 3px; background: var(--ok); }
.gatebar .val.fail { background: var(--fail); }
.gatebar .need { position: absolute; top: -3px; bottom: -3px; width: 2px; background: var(--ink); }
.abort { background: #ffebee; border: 1px solid var(--fail); border-radius: 6px; padding: 8px 12px; margin: 12px 0 0; }
ul.gates, ul.rjobs { margin: 0; padding-left: 0; list-style: none; }
.badge.running, .badge.queued, .badge.scheduled, .badge.enqueued, .badge.unknown { background: var(--run); color: var(--ink); }
.desc { color: var(--muted); margin: 6px 0 0; }
.meta { display: grid; grid-template-columns: repeat(auto-fill, minmax(160px, 1fr)); gap: 8px; margin-top: 16px; }
.meta div { background: #fff; border: 1px solid var(--line); border-radius: 6px; padding: 8px 12px; }
.meta b { display: block; font-size: 18px; }
.meta span { color: var(--muted); font-size: 12px; }
table { width: 100%; border-collapse: collapse; background: #fff; border: 1px solid var(--line); }
th, td { text-align: left; padding: 6px 10px; border-bottom: 1px solid var(--line); vertical-align: top; }
th { background: #eef2f6; font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
td.pass { color: var(--ok); font-weight: 700; }
td.fail { color: var(--fail); font-weight: 700; }
section.job { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px; margin-top: 16px; }
.jobhead { display: flex; gap: 12px; align-items: baseline; flex-wrap: wrap; }
.jobhead code { color: var(--muted); }
.bar { display: flex; height: 14px; border-radius: 7px; overflow: hidden; background: #eceff1; margin: 10px 0 4px; }
.bar .ok { background: var(--ok); } .bar .fail { background: var(--fail); } .bar .run { background: var(--run); } .bar .pend { background: var(--pend); }
.legend { font-size: 12px; color: var(--muted); display: flex; gap: 14px; flex-wrap: wrap; }
.legend i { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 4px; vertical-align: -1px; }
.legend .ok { background: var(--ok); } .legend .fail { background: var(--fail); } .legend .run { background: var(--run); } .legend .pend { background: var(--pend); }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(320px, 1fr)); gap: 16px; margin-top: 12px; }
figure { margin: 0; }
figcaption { font-weight: 600; font-size: 13px; margin-bottom: 4px; }
svg { width: 100%; height: auto; display: block; }
svg text { font: 11px system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; fill: var(--muted); }
svg .grid { stroke: var(--line); stroke-width: 1; }
svg .axis { stroke: #9aa5b1; stroke-width: 1; }
svg .line { fill: none; stroke: var(--accent); stroke-width: 2; }
svg .area { fill: var(--accent); fill-opacity: 0.12; stroke: none; }
svg .target { stroke: var(--ok); stroke-dasharray: 4 3; stroke-width: 1; }
svg .hbar { fill: var(--accent); }
svg .fbar { fill: var(--fail); }
svg text.val { fill: var(--ink); }
.warn { background: #fff8e1; border: 1px solid var(--run); border-radius: 6px; padding: 8px 12px; margin: 12px 0 0; }
.settle { background: #e8f5e9; border: 1px solid var(--ok); border-radius: 6px; padding: 8px 12px; margin: 12px 0 0; }
table.outcomes, table.phases { margin-top: 8px; }
.sub { color: var(--muted); font-size: 12px; }
.sub.note { color: var(--fail); }
td.num.fail { color: var(--fail); font-weight: 600; }
.bar.thin { height: 10px; margin: 4px 0; min-width: 120px; }
.none { color: var(--muted); font-style: italic; padding: 24px 0; }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; }
</style>
</head>
<body>
<main>
<header>
<h1>{{.Report.Scenario}}</h1>
{{if .Report.Interrupted}}<span class="badge fail">INTERRUPTED</span>{{else if .Report.Passed}}<span class="badge pass">PASS</span>{{else}}<span class="badge fail">FAIL</span>{{end}}
</header>
{{if .Report.Interrupted}}<p class="warn">The run was stopped before it finished: this report judges what had happened by then.</p>{{end}}
{{with .Settle}}{{if $.Report.Settle.Settled}}<p class="settle">{{.}}</p>{{else}}<p class="warn">{{.}}</p>{{end}}{{end}}
{{range .Report.Warnings}}<p class="warn">Warning: {{.}}</p>{{end}}
{{with .Report.Description}}<p class="desc">{{.}}</p>{{end}}
<div class="meta">
<div><b>{{.Report.Devices}}</b><span>devices</span></div>
<div><b>{{.Report.Fleet.ConnectedAtEnd}}</b><span>connected at the end</span></div>
<div><b>{{dur .Report.Duration}}</b><span>duration</span></div>
<div><b>{{.Report.Seed}}</b><span>seed</span></div>
<div><b>{{.Report.Pacing}}</b><span>pacing</span></div>
{{with .Report.Shard}}<div><b>{{.}}</b><span>shard</span></div>{{end}}
<div><b>{{len .Report.Jobs}}</b><span>jobs</span></div>
</div>
<p class="desc">Started {{time .Report.Started}}, ended {{time .Report.Ended}}.</p>

<h2>Expectations ({{len .Report.Expectations}}, {{.Failed}} failed)</h2>
<table>
<thead><tr><th>Result</th><th>Expectation</th><th>Detail</th></tr></thead>
<tbody>
{{range .Report.Expectations}}<tr>{{if .Passed}}<td class="pass">PASS</td>{{else}}<td class="fail">FAIL</td>{{end}}<td>{{.Description}}</td><td>{{.Detail}}</td></tr>
{{else}}<tr><td colspan="3" class="none">The scenario has no expectations.</td></tr>
{{end}}</tbody>
</table>

{{with .Report.Comparison}}<h2>Rollout plans side by side</h2>
<p class="desc">The same scenario and seed played once per plan, each on a fresh hub.</p>
<table class="comparison">
<thead><tr><th>Plan</th><th>Rollout</th><th>Verdict</th><th class="num">Touched before the abort</th><th class="num">Time to 99 % converged</th><th class="num">Failures</th><th class="num">Stages reached</th><th>Abort rule</th></tr></thead>
<tbody>
{{range .}}<tr><td><code>{{.Plan}}</code></td><td>{{.Rollout}}</td><td><span class="badge {{.Verdict}}">{{.Verdict}}</span>{{with .StoppedAt}} at {{.}}{{end}}</td><td class="num">{{.Touched}}</td><td class="num">{{with .Converged99}}{{dur .}}{{else}}never{{end}}</td><td class="num">{{.Failures}}</td><td class="num">{{.StagesReached}} of {{.Stages}}</td><td>{{or .AbortRule "-"}}</td></tr>
{{end}}</tbody>
</table>
{{end}}
{{range .Report.Rollouts}}<h2>Rollout {{.ID}}</h2>
<div class="jobhead"><span class="badge {{.Status}}">{{.Status}}</span><span>{{.Touched}} devices touched{{with .StoppedAt}}, stopped at stage {{.}}{{end}}</span></div>
<table class="rollout" style="margin-top: 8px">
<thead><tr><th>Stage</th><th class="num">Devices</th><th>Step</th><th>Jobs</th><th>Gates</th></tr></thead>
<tbody>
{{range .Stages}}<tr><td><b>{{.Name}}</b></td><td class="num">{{.Devices}}</td><td>{{.Step}}</td>
<td><ul class="rjobs">{{range .JobFigures}}<li><code>{{.ID}}</code> {{.Kind}} <span class="sub">{{.Status}}: {{.Succeeded}} of {{.Devices}} succeeded, {{.Failed}} failed</span></li>{{end}}</ul>{{with .Retries}}<span class="sub">retries over {{ints .}} devices</span>{{end}}</td>
<td><ul class="gates">{{range .Gates}}<li>{{if .Passed}}<span class="pass">&#10003;</span>{{else}}<span class="fail">&#10007;</span>{{end}} {{.Gate}}{{if .Of}} <b>{{pct .Value}} %</b> ({{.Count}} of {{.Of}}; {{pct .Threshold}} % needed)<div class="gatebar"><div class="val{{if not .Passed}} fail{{end}}" style="width: {{pct .Value}}%"></div><div class="need" style="left: {{pct .Threshold}}%"></div></div>{{end}}<div class="sub">{{.Figures}}</div></li>{{end}}</ul></td></tr>
{{end}}</tbody>
</table>
{{with .Abort}}<p class="abort"><b>Aborted at stage {{.Stage}}</b> by rule {{.Kind}}: {{.Rule}}; {{.Touched}} devices touched before the abort.</p>{{else}}{{with .Reason}}<p class="warn">{{.}}</p>{{end}}{{end}}
{{with .Rollback}}<p class="desc">Rollback job <code>{{.ID}}</code> {{.Status}}: {{.Succeeded}} of {{.Devices}} devices succeeded, {{.Failed}} failed.</p>{{end}}
{{end}}
<h2>Fleet</h2>
<table>
<thead><tr><th class="num">Connects</th><th class="num">Disconnects</th><th class="num">Method calls</th><th class="num">Desired patches</th><th class="num">Reported updates</th><th class="num">Telemetry</th><th class="num">Dropped events</th></tr></thead>
<tbody><tr>{{with .Report.Fleet}}<td class="num">{{.Connects}}</td><td class="num">{{.Disconnects}}</td><td class="num">{{.MethodCalls}}</td><td class="num">{{.DesiredPatches}}</td><td class="num">{{.ReportedUpdates}}</td><td class="num">{{.Telemetry}}</td><td class="num">{{.DroppedEvents}}</td>{{end}}</tr></tbody>
</table>

{{with .Report.Shards}}<h2>Shards</h2>
<p class="desc">Each shard's own devices; jobs are the hub's and are counted once above.</p>
<table class="shards">
<thead><tr><th>Shard</th><th class="num">Devices</th><th class="num">Connected at the end</th><th class="num">Connects</th><th class="num">Disconnects</th><th class="num">Never connected</th><th class="num">Failed expectations</th><th>Verdict</th></tr></thead>
<tbody>
{{range .}}<tr><td>{{.Shard}}</td><td class="num">{{.Devices}}</td><td class="num">{{.ConnectedAtEnd}}</td><td class="num">{{.Connects}}</td><td class="num">{{.Disconnects}}</td><td class="num">{{.NeverConnected}}</td><td class="num">{{.FailedExpectations}}</td>{{if .Passed}}<td class="pass">PASS</td>{{else}}<td class="fail">FAIL{{if .Interrupted}} (interrupted){{end}}</td>{{end}}</tr>
{{end}}</tbody>
</table>
{{end}}
<h2>What the devices did</h2>
<p class="desc">Measured at the devices, over the whole run.</p>
{{with .DeviceSide}}{{template "deviceside" .}}{{else}}<p class="none">No device-side outcomes.</p>{{end}}

<h2>Jobs</h2>
{{if not .Jobs}}<p class="none">The scenario ran no jobs.</p>{{end}}
{{range .Jobs}}<section class="job" id="job-{{.JobID}}">
<div class="jobhead"><h3>{{.JobID}}</h3><span class="badge {{.Status}}">{{.Status}}</span><span>{{.Kind}}</span><code>{{.Condition}}</code></div>
{{with .FailureReason}}<p class="desc">Failure reason: {{.}}</p>{{end}}
<div class="bar">{{range .Segments}}<div class="{{.Class}}" style="width: {{.Pct}}%" title="{{.Count}} {{.Label}}"></div>{{end}}</div>
<div class="legend"><span><i class="ok"></i>{{.Succeeded}} succeeded</span><span><i class="fail"></i>{{.Failed}} failed</span><span><i class="run"></i>{{.Running}} running</span><span><i class="pend"></i>{{.Pending}} pending</span><span>of {{.DeviceCount}} devices</span></div>
{{with .Answers}}<p class="desc">Device answers: {{.}}</p>{{end}}
<table style="margin-top: 12px">
<thead><tr><th class="num">device-ops/s</th><th class="num">p50</th><th class="num">p95</th><th class="num">p99</th><th class="num">max</th><th>started</th><th>ended</th></tr></thead>
<tbody><tr><td class="num">{{ops .OpsPerSecond}}</td><td class="num">{{dur .Latency.P50}}</td><td class="num">{{dur .Latency.P95}}</td><td class="num">{{dur .Latency.P99}}</td><td class="num">{{dur .Latency.Max}}</td><td>{{time .Started}}</td><td>{{time .Ended}}</td></tr></tbody>
</table>
{{with .DeviceSide}}<h4>What the devices did for this job</h4>
{{template "deviceside" .}}{{end}}
<div class="charts">
<figure><figcaption>Completion over time</figcaption>{{.CompletionSVG}}</figure>
<figure><figcaption>Latency histogram</figcaption>{{.LatencySVG}}</figure>
<figure><figcaption>Failures by cause</figcaption>{{.FailuresSVG}}</figure>
</div>
</section>
{{end}}
<footer>Generated by fleetsim from report.json.</footer>
</main>
</body>
</html>
`))

// Chart geometry, in SVG user units (the SVG scales to its container).
const (
	chartW     = 360.0
	chartH     = 220.0
	padLeft    = 48.0
	padRight   = 12.0
	padTop     = 12.0
	padBottom  = 36.0
	plotW      = chartW - padLeft - padRight
	plotH      = chartH - padTop - padBottom
	noDataHTML = `<p class="none">%s</p>`
)

// svgOpen starts an SVG element with an accessible label.
func svgOpen(b *strings.Builder, class, label string) {
	fmt.Fprintf(b, `<svg xmlns="http://www.w3.org/2000/svg" class="%s" viewBox="0 0 %g %g" role="img" aria-label="%s">`,
		class, chartW, chartH, html.EscapeString(label))
	fmt.Fprintf(b, `<title>%s</title>`, html.EscapeString(label))
}

// yAxis draws horizontal grid lines with labels for 0..max and returns the
// axis maximum (max rounded up to a tick).
func yAxis(b *strings.Builder, max float64, format func(float64) string) float64 {
	step := math.Max(1, niceStep(max, 4)) // counts: whole ticks
	top := math.Ceil(max/step) * step
	if top == 0 {
		top = 1
	}
	for i := 0; float64(i)*step <= top+step/2; i++ {
		v := float64(i) * step
		y := padTop + plotH - v/top*plotH
		fmt.Fprintf(b, `<line class="grid" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, padLeft, y, padLeft+plotW, y)
		fmt.Fprintf(b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`, padLeft-6, y+4, html.EscapeString(format(v)))
	}
	fmt.Fprintf(b, `<line class="axis" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"/>`, padLeft, padTop+plotH, padLeft+plotW, padTop+plotH)
	return top
}

// niceStep returns a tick step of 1, 2 or 5 times a power of ten that splits
// 0..max in about n intervals.
func niceStep(max float64, n int) float64 {
	if max <= 0 {
		return 1
	}
	raw := max / float64(n)
	mag := math.Pow(10, math.Floor(math.Log10(raw)))
	for _, m := range []float64{1, 2, 5, 10} {
		if m*mag >= raw {
			return m * mag
		}
	}
	return 10 * mag
}

func fmtCount(v float64) string { return strconv.FormatFloat(v, 'f', -1, 64) }

// completionChart draws devices done over time since the job started, with
// the job's device count as a dashed target line.
func completionChart(j runner.JobReport) string {
	pts := j.Completion
	if len(pts) == 0 {
		return fmt.Sprintf(noDataHTML, "No completion data.")
	}
	maxT := time.Duration(pts[len(pts)-1].At).Seconds()
	maxY := float64(j.DeviceCount)
	for _, p := range pts {
		maxY = math.Max(maxY, float64(p.Done))
		maxT = math.Max(maxT, time.Duration(p.At).Seconds())
	}
	if maxT == 0 {
		maxT = 1
	}
	var b strings.Builder
	svgOpen(&b, "chart completion", fmt.Sprintf("Devices done over time for job %s", j.JobID))
	top := yAxis(&b, maxY, fmtCount)
	xstep := niceStep(maxT, 5)
	xmax := math.Ceil(maxT/xstep) * xstep
	for i := 0; float64(i)*xstep <= xmax+xstep/2; i++ {
		v := float64(i) * xstep
		x := padLeft + v/xmax*plotW
		label := fmtTick(v, xstep)
		anchor := "middle"
		if x+float64(len(label))*7.5/2 > chartW {
			anchor = "end" // the last label would run off the chart
			x = chartW - 2
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="%s">%s</text>`, x, padTop+plotH+16, anchor, label)
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">time since the job started</text>`, padLeft+plotW/2, chartH-4)
	xy := func(p runner.CompletionPoint) (float64, float64) {
		return padLeft + time.Duration(p.At).Seconds()/xmax*plotW, padTop + plotH - float64(p.Done)/top*plotH
	}
	if j.DeviceCount > 0 {
		y := padTop + plotH - float64(j.DeviceCount)/top*plotH
		fmt.Fprintf(&b, `<line class="target" x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f"><title>%d devices</title></line>`, padLeft, y, padLeft+plotW, y, j.DeviceCount)
	}
	var line strings.Builder
	for i, p := range pts {
		x, y := xy(p)
		if i == 0 {
			fmt.Fprintf(&line, "M%.1f %.1f", x, y)
		} else {
			fmt.Fprintf(&line, " L%.1f %.1f", x, y)
		}
	}
	x0, _ := xy(pts[0])
	xn, _ := xy(pts[len(pts)-1])
	fmt.Fprintf(&b, `<path class="area" d="%s L%.1f %.1f L%.1f %.1f Z"/>`, line.String(), xn, padTop+plotH, x0, padTop+plotH)
	fmt.Fprintf(&b, `<path class="line" d="%s"/>`, line.String())
	last := pts[len(pts)-1]
	x, y := xy(last)
	fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="3" fill="#1565c0"><title>%d done after %s</title></circle>`, x, y, last.Done, fmtDur(time.Duration(last.At)))
	b.WriteString(`</svg>`)
	return b.String()
}

// fmtTick labels a tick at v seconds on an axis with ticks every step
// seconds: milliseconds below a second, otherwise seconds (minutes from
// two when the step is whole half minutes), with just the decimals the step needs, so sums of steps never show
// floating-point noise.
func fmtTick(v, step float64) string {
	switch {
	case v == 0:
		return "0"
	case step < 1 && v < 1:
		return fmtFixed(v*1000, step*1000) + "ms"
	case v >= 120 && step >= 30 && math.Mod(step, 30) == 0:
		return fmtFixed(v/60, step/60) + "m"
	}
	return fmtFixed(v, step) + "s"
}

// fmtFixed prints v with as many decimals as step has.
func fmtFixed(v, step float64) string {
	dec := 0
	for d := step; d < 1 && dec < 6; d *= 10 {
		if math.Abs(d-math.Round(d)) < 1e-9 {
			break
		}
		dec++
	}
	return strconv.FormatFloat(v, 'f', dec, 64)
}

// latencyChart draws the latency histogram: one bar per bucket.
func latencyChart(j runner.JobReport) string {
	hs := j.Latency.Histogram
	if len(hs) == 0 {
		return fmt.Sprintf(noDataHTML, "No latency data.")
	}
	maxC := 0
	for _, h := range hs {
		maxC = max(maxC, h.Count)
	}
	var b strings.Builder
	svgOpen(&b, "chart latency", fmt.Sprintf("Latency histogram for job %s", j.JobID))
	top := yAxis(&b, float64(maxC), fmtCount)
	slot := plotW / float64(len(hs))
	// Label a bar with its upper bound, skipping bars so that labels keep
	// a gap between them: a wide character (m, ≤) of the 11px font takes up
	// to 9 units, a digit about 6.5; 7.5 a character on average plus a gap
	// of 10 keeps neighbours apart.
	longest := 0
	for _, h := range hs {
		longest = max(longest, len([]rune(fmtDur(time.Duration(h.UpperBound)))))
	}
	labelEvery := max(1, int(math.Ceil((float64(longest)*7.5+10)/slot)))
	for i, h := range hs {
		hgt := float64(h.Count) / top * plotH
		x := padLeft + float64(i)*slot
		bound := fmtDur(time.Duration(h.UpperBound))
		lower := "0"
		if i > 0 {
			lower = fmtDur(time.Duration(hs[i-1].UpperBound))
		}
		fmt.Fprintf(&b, `<rect class="hbar" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s: over %s, at most %s</title></rect>`,
			x+slot*0.1, padTop+plotH-hgt, slot*0.8, hgt, html.EscapeString(plural(h.Count, "device")), html.EscapeString(lower), html.EscapeString(bound))
		if i%labelEvery == 0 {
			fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%s</text>`, x+slot/2, padTop+plotH+16, html.EscapeString(bound))
		}
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">device job latency; a bar counts up to its label</text>`, padLeft+plotW/2, chartH-4)
	b.WriteString(`</svg>`)
	return b.String()
}

// failureChart draws one horizontal bar per failure cause, largest first.
func failureChart(j runner.JobReport) string {
	fs := sortedFailures(j.Failures)
	if len(fs) == 0 {
		return fmt.Sprintf(noDataHTML, "No failures.")
	}
	maxC := 0
	for _, f := range fs {
		maxC = max(maxC, f.Count)
	}
	const labelW, rowH = 130.0, 26.0
	h := padTop + rowH*float64(len(fs)) + 8
	var b strings.Builder
	label := fmt.Sprintf("Failures by cause for job %s", j.JobID)
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" class="chart failures" viewBox="0 0 %g %g" role="img" aria-label="%s"><title>%s</title>`,
		chartW, h, html.EscapeString(label), html.EscapeString(label))
	barMax := chartW - labelW - 50
	for i, f := range fs {
		y := padTop + float64(i)*rowH
		w := math.Max(1, float64(f.Count)/float64(maxC)*barMax)
		cause := f.Cause
		if len(cause) > 22 {
			cause = cause[:21] + "…"
		}
		tip := f.Cause
		if f.Description != "" {
			tip += ": " + f.Description
		}
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%s</text>`, labelW-6, y+rowH/2+4, html.EscapeString(cause))
		fmt.Fprintf(&b, `<rect class="fbar" x="%.1f" y="%.1f" width="%.1f" height="%.1f"><title>%s (%d)</title></rect>`,
			labelW, y+4, w, rowH-8, html.EscapeString(tip), f.Count)
		fmt.Fprintf(&b, `<text class="val" x="%.1f" y="%.1f">%d</text>`, labelW+w+6, y+rowH/2+4, f.Count)
	}
	b.WriteString(`</svg>`)
	return b.String()
}
