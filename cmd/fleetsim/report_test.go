package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/scenarios/runner"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// fixtureReport is testdata/report.json: two jobs, one with failures, one
// still running; one failed expectation.
func fixtureReport(t *testing.T) *runner.Report {
	t.Helper()
	b, err := os.ReadFile("testdata/report.json")
	if err != nil {
		t.Fatal(err)
	}
	var r runner.Report
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("testdata/report.json: %v", err)
	}
	return &r
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from the golden file (go test -update rewrites it); got:\n%s", name, got)
	}
}

func TestReportWritersGolden(t *testing.T) {
	r := fixtureReport(t)
	tests := []struct {
		golden string
		render func(*runner.Report) ([]byte, error)
	}{
		{"report.txt.golden", func(r *runner.Report) ([]byte, error) { return renderText(r), nil }},
		{"report.json.golden", renderJSON},
		{"junit.xml.golden", renderJUnit},
		{"report.html.golden", renderHTML},
	}
	for _, tt := range tests {
		t.Run(tt.golden, func(t *testing.T) {
			got, err := tt.render(r)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.golden, got)
		})
	}
}

func TestReportJSONRoundTrips(t *testing.T) {
	r := fixtureReport(t)
	b, err := renderJSON(r)
	if err != nil {
		t.Fatal(err)
	}
	var back runner.Report
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(*r, back) {
		t.Errorf("report.json does not decode to the same report:\n%+v\n%+v", *r, back)
	}
}

func TestJUnitCounts(t *testing.T) {
	tests := []struct {
		name          string
		edit          func(r *runner.Report)
		tests, failed int
	}{
		{"fixture", func(r *runner.Report) {}, 8, 1},
		{"all pass", func(r *runner.Report) {
			for i := range r.Expectations {
				r.Expectations[i].Passed = true
			}
			r.Passed = true
		}, 8, 0},
		{"no expectations", func(r *runner.Report) { r.Expectations = nil }, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fixtureReport(t)
			tt.edit(r)
			b, err := renderJUnit(r)
			if err != nil {
				t.Fatal(err)
			}
			var doc struct {
				Tests    int `xml:"tests,attr"`
				Failures int `xml:"failures,attr"`
				Suites   []struct {
					Name     string `xml:"name,attr"`
					Tests    int    `xml:"tests,attr"`
					Failures int    `xml:"failures,attr"`
					Cases    []struct {
						Name    string `xml:"name,attr"`
						Failure *struct {
							Message string `xml:"message,attr"`
						} `xml:"failure"`
					} `xml:"testcase"`
				} `xml:"testsuite"`
			}
			if err := xml.Unmarshal(b, &doc); err != nil {
				t.Fatalf("junit.xml does not parse: %v", err)
			}
			if len(doc.Suites) != 1 || doc.Suites[0].Name != r.Scenario {
				t.Fatalf("want one testsuite named %q, got %+v", r.Scenario, doc.Suites)
			}
			s := doc.Suites[0]
			failures := 0
			for i, c := range s.Cases {
				if c.Name != r.Expectations[i].Description {
					t.Errorf("testcase %d is %q, want %q", i, c.Name, r.Expectations[i].Description)
				}
				if c.Failure != nil {
					failures++
					if c.Failure.Message != r.Expectations[i].Detail {
						t.Errorf("failure message %q, want the detail %q", c.Failure.Message, r.Expectations[i].Detail)
					}
				}
			}
			if s.Tests != tt.tests || len(s.Cases) != tt.tests || doc.Tests != tt.tests {
				t.Errorf("tests = %d/%d cases/%d in all, want %d", s.Tests, len(s.Cases), doc.Tests, tt.tests)
			}
			if s.Failures != tt.failed || failures != tt.failed || doc.Failures != tt.failed {
				t.Errorf("failures = %d/%d marked/%d in all, want %d", s.Failures, failures, doc.Failures, tt.failed)
			}
		})
	}
}

// externalRef finds anything that would load from elsewhere.
var externalRef = regexp.MustCompile(`(?i)(<script|<link|<img|<iframe|\bsrc=|\bhref=|url\(|@import|https?://)`)

func TestHTMLReportIsSelfContained(t *testing.T) {
	tests := []struct {
		name string
		edit func(r *runner.Report)
		svgs int
	}{
		// Per job: completion and latency; failures only for the job that has some.
		{"fixture", func(r *runner.Report) {}, 7},
		{"no jobs", func(r *runner.Report) { r.Jobs = nil }, 0},
		{"empty job", func(r *runner.Report) {
			r.Jobs = []runner.JobReport{{JobID: "empty", Type: "scheduleUpdateTwin", Status: "completed"}}
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fixtureReport(t)
			tt.edit(r)
			b, err := renderHTML(r)
			if err != nil {
				t.Fatal(err)
			}
			page := string(b)
			if n := strings.Count(page, "<svg "); n != tt.svgs {
				t.Errorf("%d <svg> elements, want %d (one per chart)", n, tt.svgs)
			}
			if n := strings.Count(page, "</svg>"); n != tt.svgs {
				t.Errorf("%d </svg>, want %d", n, tt.svgs)
			}
			// The SVG namespace is a name, not a fetch; nothing else may point outside.
			if m := externalRef.FindString(strings.ReplaceAll(page, `xmlns="http://www.w3.org/2000/svg"`, "")); m != "" {
				t.Errorf("the page refers to something outside itself: %q", m)
			}
			for _, e := range r.Expectations {
				if !strings.Contains(page, htmlEscaped(e.Description)) {
					t.Errorf("expectation %q missing from the page", e.Description)
				}
			}
		})
	}
}

// htmlEscaped escapes s as html/template does in text.
func htmlEscaped(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", `"`, "&#34;", "'", "&#39;").Replace(s)
}

// TestHTMLReportInChromium opens the page in headless Chromium, offline, and
// checks in the DOM Chromium built that the charts are there, then takes a
// screenshot (testdata/report.png with -update, for people to look at).
func TestHTMLReportInChromium(t *testing.T) {
	chromium := findChromium()
	if chromium == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed; CI installs it with apt-get install -y chromium")
		}
		t.Skip("chromium not installed (apt-get install -y chromium); skipping the browser check")
	}
	b, err := renderHTML(fixtureReport(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	page := filepath.Join(dir, "report.html")
	if err := os.WriteFile(page, b, 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir=" + filepath.Join(dir, "profile")}
	out, err := exec.CommandContext(t.Context(), chromium, append(base, "--dump-dom", "file://"+page)...).Output()
	if err != nil {
		t.Fatalf("chromium --dump-dom: %v", err)
	}
	dom := string(out)
	checks := []struct {
		what string
		re   string
		n    int
	}{
		{"charts", `<svg [^>]*class="chart `, 7},
		{"completion lines", `<path class="line" d="M[0-9.]+ [0-9.]+( L[0-9.]+ [0-9.]+)+"`, 3},
		{"latency bars", `<rect class="hbar" `, 14},
		{"failure bars", `<rect class="fbar" `, 2},
		{"expectation rows", `<td class="(pass|fail)">`, 8},
		// The run's and the three jobs' device-side tables, and the
		// firmware phases of the run and of fw-broad.
		{"device-side tables", `<table class="outcomes">`, 4},
		{"firmware phase rows", `<tr><td>(downloading|verifying|applying|rebooting)</td>`, 8},
		{"settle note", `<p class="settle">Settled: `, 1},
	}
	for _, c := range checks {
		if n := len(regexp.MustCompile(c.re).FindAllString(dom, -1)); n != c.n {
			t.Errorf("%s: %d in the DOM, want %d", c.what, n, c.n)
		}
	}
	shot := filepath.Join(dir, "report.png")
	cmd := exec.CommandContext(t.Context(), chromium, append(base, "--screenshot="+shot, "--window-size=1200,3600", "file://"+page)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium --screenshot: %v\n%s", err, out)
	}
	png, err := os.ReadFile(shot)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) || len(png) < 10000 {
		t.Fatalf("no screenshot: %v (%d bytes)", err, len(png))
	}
	if *update {
		os.WriteFile("testdata/report.png", png, 0o644)
	}
}

func findChromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestEveryReportWarnsAndSaysInterrupted checks that a job that selected no
// devices and an interrupted run show in the text, JSON, JUnit and HTML
// reports alike.
func TestEveryReportWarnsAndSaysInterrupted(t *testing.T) {
	r := fixtureReport(t)
	r.Jobs = append(r.Jobs, runner.JobReport{JobID: "nobody", Type: "scheduleUpdateTwin", Status: "completed", Condition: "tags.ring = 'none'"})
	r.Warnings = []string{`job nobody selected no devices: its query condition "tags.ring = 'none'" matched none`}
	r.Interrupted, r.Passed = true, false
	writers := map[string]func(*runner.Report) ([]byte, error){
		"text":  func(r *runner.Report) ([]byte, error) { return renderText(r), nil },
		"json":  renderJSON,
		"junit": renderJUnit,
		"html":  renderHTML,
	}
	for name, render := range writers {
		b, err := render(r)
		if err != nil {
			t.Fatal(err)
		}
		page := strings.ToLower(string(b))
		if !strings.Contains(page, "job nobody selected no devices") {
			t.Errorf("%s: no warning for the job that selected no devices", name)
		}
		if !strings.Contains(page, "interrupted") {
			t.Errorf("%s: does not say the run was interrupted", name)
		}
	}
	b, _ := renderJUnit(r)
	if !strings.Contains(string(b), `errors="1"`) || !strings.Contains(string(b), `<error message="the run was interrupted`) {
		t.Errorf("junit: the interruption is not an error:\n%s", b)
	}
}

func TestDeviceAnswers(t *testing.T) {
	tests := []struct {
		in   map[int]int
		want string
	}{
		{map[int]int{200: 197, 500: 3}, "197 answered 200, 3 answered 500"},
		{map[int]int{404: 5, 200: 1, 500: 5}, "5 answered 404, 5 answered 500, 1 answered 200"},
		{map[int]int{200: 1}, "1 answered 200"},
		{nil, ""},
	}
	for _, tt := range tests {
		if got := deviceAnswers(tt.in); got != tt.want {
			t.Errorf("deviceAnswers(%v) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestChartAxisLabels feeds axes whose steps do not add up exactly in
// floating point, and histograms with many buckets, through the charts.
func TestChartAxisLabels(t *testing.T) {
	ticks := []struct {
		v, step float64
		want    string
	}{
		{0, 0.05, "0"}, {0.15000000000000002, 0.05, "150ms"}, {0.3, 0.1, "300ms"}, {0.0025, 0.0005, "2.5ms"},
		{1.5, 0.5, "1.5s"}, {2.5, 0.5, "2.5s"}, {20, 5, "20s"}, {120, 60, "2m"}, {150, 30, "2.5m"}, {600, 100, "600s"}, {200, 100, "200s"},
	}
	for _, tt := range ticks {
		if got := fmtTick(tt.v, tt.step); got != tt.want {
			t.Errorf("fmtTick(%v, %v) = %q, want %q", tt.v, tt.step, got, tt.want)
		}
	}
	// A 150 ms job: the completion axis reads in whole milliseconds.
	j := runner.JobReport{JobID: "j", DeviceCount: 3, Completion: []runner.CompletionPoint{
		{At: 0, Done: 0}, {At: runner.Duration(50 * time.Millisecond), Done: 1}, {At: runner.Duration(150 * time.Millisecond), Done: 3}}}
	svg := completionChart(j)
	if regexp.MustCompile(`>[0-9.]*0000000[0-9]*m?s<`).MatchString(svg) {
		t.Errorf("floating-point noise on the axis: %s", svg)
	}
	for _, want := range []string{">50ms<", ">150ms<", ">3<"} {
		if !strings.Contains(svg, want) {
			t.Errorf("completion chart lacks the label %s: %s", want, svg)
		}
	}
	// Histogram labels never overlap: centres at least a label's width apart.
	var hs []runner.Bucket
	for _, ms := range []int{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000} {
		hs = append(hs, runner.Bucket{UpperBound: runner.Duration(time.Duration(ms) * time.Millisecond), Count: ms % 7})
	}
	svg = latencyChart(runner.JobReport{JobID: "j", Latency: runner.LatencySummary{Histogram: hs}})
	labels := regexp.MustCompile(`<text x="([0-9.]+)" y="200.0" text-anchor="middle">([^<]+)</text>`).FindAllStringSubmatch(svg, -1)
	if len(labels) < 3 {
		t.Fatalf("only %d histogram labels: %s", len(labels), svg)
	}
	for i := 1; i < len(labels); i++ {
		var x0, x1 float64
		fmt.Sscan(labels[i-1][1], &x0)
		fmt.Sscan(labels[i][1], &x1)
		// 9 units is the widest character of the 11px font.
		need := 9 * float64(len([]rune(labels[i-1][2]))+len([]rune(labels[i][2]))) / 2
		if x1-x0 < need {
			t.Errorf("labels %q and %q are %.1f apart, want at least %.1f", labels[i-1][2], labels[i][2], x1-x0, need)
		}
	}
	if strings.Contains(svg, "≤") {
		t.Error("histogram labels still carry ≤")
	}
}

// TestDeviceSideInEveryReport feeds known device-side figures through the
// text, JSON and HTML writers and checks each shows the same numbers, for
// the run and per job, with the settle outcome.
func TestDeviceSideInEveryReport(t *testing.T) {
	tests := []struct {
		name string
		edit func(r *runner.Report)
		text []string
		html []string
	}{
		{"settled", func(r *runner.Report) {}, []string{
			"Run settled: the devices finished the work the jobs started 11.25s after the jobs ended",
			"  acknowledgements: 248 accepted by the hub (3 report the change was not applied), 2 failed; latency p50 310 ms, p99 1.45 s, max 2.10 s",
			"  firmware: 90 updated, 10 failed, 4 rolled back; time to the new version p50 14.20 s, p99 26.50 s",
			"    phases: downloading 94 ok / 6 failed; verifying 94 ok / 0 failed; applying 91 ok / 3 failed; rebooting 90 ok / 1 failed",
			"  reboots: 1086 back online; offline p50 4.00 s, p99 9.40 s, max 12.00 s",
			"  reboots: 91 back online; offline p50 3.50 s, p99 4.95 s, max 5.00 s",
			"8000 telemetry messages",
		}, []string{
			`<p class="settle">Settled: the devices finished the work the jobs started 11.25s after the jobs ended (every job terminal at T&#43;1m0.3s, devices done at T&#43;1m11.5s).</p>`,
			`<td>Acknowledgements<br><span class="sub">latency: desired change received → hub answered the reported acknowledgement</span><br><span class="sub note">of the accepted, 3 report that the device could not apply the change</span></td><td class="num">248</td><td class="num">2</td><td class="num">-</td><td class="num">310 ms</td><td class="num">1.45 s</td><td class="num">2.10 s</td>`,
			`<td>Firmware updates<br><span class="sub">time to the new version: update accepted → new version reported</span></td><td class="num">90</td><td class="num">10</td><td class="num">4</td><td class="num">14.20 s</td><td class="num">26.50 s</td><td class="num">1.2 min</td>`,
			`<td>Reboots<br><span class="sub">offline time: went down → connected again</span></td><td class="num">1086</td><td class="num">-</td><td class="num">-</td><td class="num">4.00 s</td><td class="num">9.40 s</td><td class="num">12.00 s</td>`,
			`<td>Reboots<br><span class="sub">offline time: went down → connected again</span></td><td class="num">995</td>`,
			`<td>Reboots<br><span class="sub">offline time: went down → connected again</span></td><td class="num">91</td>`,
			`<td>Telemetry messages sent</td><td class="num">8000</td>`,
			`<tr><td>downloading</td><td class="num">94</td><td class="num fail">6</td>`,
			`<tr><td>verifying</td><td class="num">94</td><td class="num">0</td>`,
			`<div class="ok" style="width: 96.81%" title="91 passed"></div><div class="fail" style="width: 3.19%" title="3 failed"></div>`,
		}},
		{"not settled", func(r *runner.Report) {
			r.Settle = runner.Settle{JobsDoneMs: 60250, Outstanding: 37, Note: "not settled: the scenario's duration (1m0s) ended with 37 device-side operations unfinished"}
			r.DeviceSide = runner.DeviceSide{}
		}, []string{
			"Run not settled: the scenario's duration (1m0s) ended with 37 device-side operations unfinished",
		}, []string{
			`<p class="warn">Not settled: the scenario&#39;s duration (1m0s) ended with 37 device-side operations unfinished (every job terminal at T&#43;1m0.3s).</p>`,
			`<td>Telemetry messages sent</td><td class="num">0</td>`,
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := fixtureReport(t)
			tt.edit(r)
			text := string(renderText(r))
			for _, want := range tt.text {
				if !strings.Contains(text, want) {
					t.Errorf("text lacks %q:\n%s", want, text)
				}
			}
			page, err := renderHTML(r)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range tt.html {
				if !strings.Contains(string(page), want) {
					t.Errorf("HTML lacks %s", want)
				}
			}
			js, err := renderJSON(r)
			if err != nil {
				t.Fatal(err)
			}
			var back runner.Report
			if err := json.Unmarshal(js, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(back.DeviceSide, r.DeviceSide) || !reflect.DeepEqual(back.Settle, r.Settle) {
				t.Errorf("report.json's device side or settle differ: %+v %+v", back.DeviceSide, back.Settle)
			}
		})
	}
}
