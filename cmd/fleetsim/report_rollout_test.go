package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// rolloutFixture is testdata/rollout-report.json, the report of a run of
// rollout-abort-rollback: the canary ring passes its success gate, the
// first wave of wave1 reaches maxFailures, the rollout aborts there and
// rolls wave1 back.
func rolloutFixture(t *testing.T) *runner.Report {
	t.Helper()
	b, err := os.ReadFile("testdata/rollout-report.json")
	if err != nil {
		t.Fatal(err)
	}
	var r runner.Report
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("testdata/rollout-report.json: %v", err)
	}
	return &r
}

// TestRolloutReportText checks that the text report of a rollout shows
// each stage, each job's and gate's figures, the abort reason and the
// rollback, with the fixture's figures.
func TestRolloutReportText(t *testing.T) {
	txt := string(renderText(rolloutFixture(t)))
	for _, want := range []string{
		"Rollout cfg-2: aborted, 37 devices touched, stopped at stage wave1",
		"  stage canary: 20 devices, done; jobs cfg-2-s1-a1",
		"    action job cfg-2-s1-a1 completed: 20 devices, 20 succeeded, 0 failed",
		"    gate successRate passed: 20 of 20 devices succeeded (100.0 %, at least 90.0 % needed)",
		"    action job cfg-2-s2-a1 completed: 17 devices, 9 succeeded, 8 failed",
		"  abort at stage wave1: maxFailures: 8 failed devices reached the limit of 5; 37 devices touched before the abort",
		"  rollback job cfg-2-s2-rollback completed: 68 devices, 60 succeeded, 8 failed",
	} {
		if !strings.Contains(txt, want+"\n") {
			t.Errorf("text report lacks %q:\n%s", want, txt)
		}
	}
}

// TestRolloutReportInChromium opens the HTML report of a rollout in
// headless Chromium and checks in the DOM it built that every stage has a
// row, the gate its bar at its figure, and the abort and rollback their
// lines; then it takes the README's picture of a rollout report
// (docs/img/rollout-report.png, rewritten with -update).
func TestRolloutReportInChromium(t *testing.T) {
	chromium := findChromium()
	if chromium == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed; CI installs it with apt-get install -y chromium")
		}
		t.Skip("chromium not installed (apt-get install -y chromium); skipping the browser check")
	}
	b, err := renderHTML(rolloutFixture(t))
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
	for _, c := range []struct {
		what, re string
		n        int
	}{
		{"stage rows", `<tr><td><b>(canary|wave1|rest)</b></td>`, 3},
		{"stage jobs", `<li><code>cfg-2-s[12]-a1</code> action`, 2},
		{"gate bar at 100 % against 90 %", `<div class="val" style="width: 100.0%"></div><div class="need" style="left: 90.0%"></div>`, 1},
		{"abort", `<p class="abort"><b>Aborted at stage wave1</b> by rule maxFailures: maxFailures: 8 failed devices reached the limit of 5; 37 devices touched before the abort.</p>`, 1},
		{"rollback", `Rollback job <code>cfg-2-s2-rollback</code> completed: 60 of 68 devices succeeded, 8 failed.`, 1},
	} {
		if n := len(regexp.MustCompile(c.re).FindAllString(dom, -1)); n != c.n {
			t.Errorf("%s: %d in the DOM, want %d", c.what, n, c.n)
		}
	}
	shot := filepath.Join(dir, "rollout-report.png")
	cmd := exec.CommandContext(t.Context(), chromium, append(base, "--screenshot="+shot, "--window-size=1100,1000", "file://"+page)...)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chromium --screenshot: %v\n%s", err, out)
	}
	png, err := os.ReadFile(shot)
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) || len(png) < 10000 {
		t.Fatalf("no screenshot: %v (%d bytes)", err, len(png))
	}
	if *update {
		if err := os.WriteFile("../../docs/img/rollout-report.png", png, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
