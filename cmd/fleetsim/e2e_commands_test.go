package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/internal/testkit"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
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
			"scenario firmware-rollout is valid: 1000 devices in 2 groups, 0 jobs, 1 rollout, 4 expectations",
			"rollout fw at T+3s: stages canary (tags.ring = 'canary'), broad (the rest)"}},
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

// readmeClientExamples returns the command lines of the README's client
// example block: the sh block after "these work as written".
func readmeClientExamples(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "these work as written:\n\n```sh\n")
	block, _, ok2 := strings.Cut(rest, "```")
	if !ok || !ok2 {
		t.Fatal("README: no client example block after \"these work as written:\"")
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(block), "\n") {
		lines = append(lines, strings.TrimSpace(l))
	}
	return lines
}

// TestBinaryServeREADMEClientExamples runs `fleetsim serve --scenario
// quickstart` as the README says, then each client example of the README
// as written, through a shell, in the same directory; checks GET /healthz;
// and checks that a second serve on the same data directory is refused.
func TestBinaryServeREADMEClientExamples(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "fleetsim-data")
	s := startServe(t, data, "--scenario", "quickstart")
	testkit.Eventually(t, time.Minute, func() bool {
		var rows []struct{ N int }
		code, stdout, _ := fleetsim(t, dir, "query", "SELECT COUNT() AS n FROM devices WHERE connectionState = 'Connected'", "-o", "json")
		return code == 0 && json.Unmarshal([]byte(stdout), &rows) == nil && len(rows) == 1 && rows[0].N == 200
	}, "the quickstart fleet connected")

	// The examples run as a user types them: fleetsim on the PATH, the
	// default data directory in the working directory.
	env := []string{"PATH=" + filepath.Dir(binary) + string(os.PathListSeparator) + os.Getenv("PATH"), "HOME=" + dir}
	for _, line := range readmeClientExamples(t) {
		cmd := exec.CommandContext(t.Context(), sh, "-c", line)
		cmd.Dir, cmd.Env = dir, env
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Errorf("README example %q: %v\n%s", line, err, out)
		}
	}

	var conn struct {
		HTTPSAddr string `json:"httpsAddr"`
		CAFile    string `json:"caFile"`
	}
	b, _ := os.ReadFile(filepath.Join(data, "connection.json"))
	if err := json.Unmarshal(b, &conn); err != nil || conn.HTTPSAddr == "" {
		t.Fatalf("connection.json: %v: %s", err, b)
	}
	tlsConf, err := tlsutil.ClientConfig(tlsutil.Files{CAFile: conn.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get("https://" + conn.HTTPSAddr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "{\"status\":\"ok\"}\n" {
		t.Errorf("GET /healthz: %d %q", resp.StatusCode, body)
	}

	code, _, stderr := fleetsim(t, dir, "serve", "--https-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--log-level", "warn")
	if code != exitFail {
		t.Errorf("second serve: exit %d, want %d", code, exitFail)
	}
	oneLineError(t, stderr, "data directory ./fleetsim-data is in use: another fleetsim (process "+strconv.Itoa(s.cmd.Process.Pid)+") holds it")
	if s.cmd.ProcessState != nil {
		t.Errorf("the first serve ended: %s", s.out)
	}
}
