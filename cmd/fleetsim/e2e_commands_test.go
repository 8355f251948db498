package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
)

func TestBinaryScenariosValidate(t *testing.T) {
	dir := t.TempDir()
	tiny, _ := filepath.Abs("testdata/tiny.yaml")
	bad, _ := filepath.Abs("testdata/bad.yaml")
	none := filepath.Join(dir, "none.yaml")
	src, _ := os.ReadFile(tiny)
	os.WriteFile(none, []byte(strings.Replace(string(src), `condition: "*"`, `condition: "tags.floor = 99"`, 1)), 0o644)
	tests := []struct {
		name string
		args []string
		code int
		want []string
	}{
		{"embedded", []string{"scenarios", "validate", "firmware-rollout"}, 0, []string{
			"scenario firmware-rollout is valid: 1000 devices in 2 groups, 2 jobs",
			"fw-canary  T+3s   58       tags.ring = 'canary'", "fw-broad   T+25s  942      tags.ring = 'broad'"}},
		{"file", []string{"scenarios", "validate", tiny}, 0, []string{"scenario tiny is valid: 5 devices in 1 group, 1 job, 1 expectation", "reboot-tiny  T+1s  5        *"}},
		{"selects none", []string{"scenarios", "validate", none}, 0, []string{"warning: job reboot-tiny selects no devices"}},
		{"invalid", []string{"scenarios", "validate", bad}, exitUsage, nil},
		{"missing", []string{"scenarios", "validate", "./missing.yaml"}, exitUsage, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := fleetsim(t, dir, tt.args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d\n%s%s", code, tt.code, stdout, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, stdout)
				}
			}
		})
	}
}

func TestBinaryScenarioNames(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"run", "quikstart"}, `unknown scenario "quikstart": did you mean "quickstart"?`},
		{[]string{"run", "Firmware-Rolout"}, `did you mean "firmware-rollout"?`},
		{[]string{"run", "./missing.yaml"}, "scenario file ./missing.yaml does not exist"},
		{[]string{"scenarios", "show", "sub/dir/x.yaml"}, "scenario file sub/dir/x.yaml does not exist"},
		{[]string{"run", "zzz"}, `unknown scenario "zzz": not a file, and the embedded ones are`},
	}
	for _, tt := range tests {
		code, _, stderr := fleetsim(t, dir, tt.args...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d", tt.args, code, exitUsage)
		}
		oneLineError(t, stderr, tt.want)
	}
}

func TestBinaryScenariosSchema(t *testing.T) {
	code, stdout, _ := fleetsim(t, t.TempDir(), "scenarios", "schema")
	want, err := os.ReadFile("../../scenarios/scenario.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if code != 0 || stdout != string(want) {
		t.Errorf("exit %d; the printed schema is not scenarios/scenario.schema.json", code)
	}
}

func TestBinaryCompletion(t *testing.T) {
	dir := t.TempDir()
	for _, sh := range []string{"bash", "zsh", "fish"} {
		code, stdout, stderr := fleetsim(t, dir, "completion", sh)
		if code != 0 || !strings.Contains(stdout, "quickstart") || !strings.Contains(stdout, "report") || !strings.Contains(stdout, "validate") {
			t.Errorf("completion %s: exit %d, %s", sh, code, stderr)
		}
	}
	if code, _, _ := fleetsim(t, dir, "completion", "tcsh"); code != exitUsage {
		t.Errorf("completion tcsh: exit %d, want %d", code, exitUsage)
	}
	bash, err := exec.LookPath("bash")
	if err != nil {
		t.Skip("no bash")
	}
	_, script, _ := fleetsim(t, dir, "completion", "bash")
	path := filepath.Join(dir, "fleetsim.bash")
	os.WriteFile(path, []byte(script), 0o644)
	tests := []struct {
		words string
		want  string
	}{
		{"fleetsim run qu", "quickstart"},
		{"fleetsim jobs c", "create cancel"},
		{"fleetsim jobs create --wa", "--wait"},
		{"fleetsim --log-level debug scen", "scenarios"},
		{"fleetsim scenarios va", "validate"},
		{"fleetsim completion f", "fish"},
	}
	for _, tt := range tests {
		words := strings.Fields(tt.words)
		sh := "source " + path + "; COMP_WORDS=(" + tt.words + "); COMP_CWORD=" + itoa(len(words)-1) + `; _fleetsim; echo "${COMPREPLY[*]}"`
		cmd := exec.CommandContext(t.Context(), bash, "-c", sh)
		cmd.Dir = dir // no files that start like a scenario name
		out, err := cmd.Output()
		if err != nil || strings.TrimSpace(string(out)) != tt.want {
			t.Errorf("%q completes to %q (%v), want %q", tt.words, strings.TrimSpace(string(out)), err, tt.want)
		}
	}
}

func TestVersionLine(t *testing.T) {
	bi := &debug.BuildInfo{Settings: []debug.BuildSetting{
		{Key: "vcs.revision", Value: "7af4127455951b9059c770a752818ca113c8067a"},
		{Key: "vcs.time", Value: "2026-12-06T19:35:44Z"},
		{Key: "vcs.modified", Value: "true"},
	}}
	got := versionLine("v1.2.3", bi)
	if !strings.HasPrefix(got, "fleetsim v1.2.3 (revision 7af412745595 (modified) of 2026-12-06T19:35:44Z, go") {
		t.Errorf("versionLine = %q", got)
	}
	if got := versionLine("(devel)", nil); !strings.HasPrefix(got, "fleetsim (devel) (go") {
		t.Errorf("versionLine without build info = %q", got)
	}
}
