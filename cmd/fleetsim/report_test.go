package main

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

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
		{"fixture", func(r *runner.Report) {}, 4, 1},
		{"all pass", func(r *runner.Report) {
			for i := range r.Expectations {
				r.Expectations[i].Passed = true
			}
			r.Passed = true
		}, 4, 0},
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
		{"fixture", func(r *runner.Report) {}, 5},
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
		{"charts", `<svg [^>]*class="chart `, 5},
		{"completion lines", `<path class="line" d="M[0-9.]+ [0-9.]+( L[0-9.]+ [0-9.]+)+"`, 2},
		{"latency bars", `<rect class="hbar" `, 11},
		{"failure bars", `<rect class="fbar" `, 2},
		{"expectation rows", `<td class="(pass|fail)">`, 4},
	}
	for _, c := range checks {
		if n := len(regexp.MustCompile(c.re).FindAllString(dom, -1)); n != c.n {
			t.Errorf("%s: %d in the DOM, want %d", c.what, n, c.n)
		}
	}
	shot := filepath.Join(dir, "report.png")
	cmd := exec.CommandContext(t.Context(), chromium, append(base, "--screenshot="+shot, "--window-size=1200,2000", "file://"+page)...)
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
