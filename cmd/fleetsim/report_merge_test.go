package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetsim/fleetsim/scenarios/runner"
)

const mergeFixtures = "../../scenarios/runner/testdata/merge/"

func TestReportMerge(t *testing.T) {
	out := t.TempDir()
	code, stdout, stderr := testApp(t, nil, "report", "merge", mergeFixtures+"shard-1.json", mergeFixtures+"shard-2.json", "--out", out)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"Shards", "1/2", "Never connected: 3 devices", "198 of 200 connected (99.0%)", "stopped heartbeating"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	var m runner.Report
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.Devices != 200 || len(m.Jobs) != 1 || len(m.Shards) != 2 || !m.Passed {
		t.Errorf("merged report.json: %d devices, %d jobs, %d shards, passed %v", m.Devices, len(m.Jobs), len(m.Shards), m.Passed)
	}
	if _, err := os.Stat(filepath.Join(out, "junit.xml")); err != nil {
		t.Error(err)
	}
	// report.html has a row per shard with the fixtures' own figures.
	page, err := os.ReadFile(filepath.Join(out, "report.html"))
	if err != nil {
		t.Fatal(err)
	}
	for _, row := range []string{
		`<tr><td>1/2</td><td class="num">100</td><td class="num">98</td><td class="num">110</td><td class="num">12</td><td class="num">2</td><td class="num">1</td><td class="fail">FAIL</td></tr>`,
		`<tr><td>2/2</td><td class="num">100</td><td class="num">100</td><td class="num">100</td><td class="num">0</td><td class="num">1</td><td class="num">0</td><td class="pass">PASS</td></tr>`,
	} {
		if !strings.Contains(string(page), row) {
			t.Errorf("report.html lacks the shard row %s", row)
		}
	}

	// One shard alone fails the verdict; the same shard twice is refused.
	if code, _, _ := testApp(t, nil, "report", "merge", mergeFixtures+"shard-2.json"); code != 1 {
		t.Errorf("one shard of two: exit %d, want 1", code)
	}
	if code, _, stderr := testApp(t, nil, "report", "merge", mergeFixtures+"shard-2.json", mergeFixtures+"shard-2.json"); code != 2 || !strings.Contains(stderr, "two reports of shard 2/2") {
		t.Errorf("the same shard twice: exit %d, %s", code, stderr)
	}
}
