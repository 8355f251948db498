package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

func TestBinaryScenarioErrors(t *testing.T) {
	dir := t.TempDir()
	t.Run("unknown scenario", func(t *testing.T) {
		code, _, stderr := fleetsim(t, dir, "run", "no-such-scenario")
		if code != exitUsage {
			t.Errorf("exit %d, want %d", code, exitUsage)
		}
		oneLineError(t, stderr, `unknown scenario "no-such-scenario"`)
	})
	t.Run("malformed scenario file", func(t *testing.T) {
		bad, _ := filepath.Abs("testdata/bad.yaml")
		code, _, stderr := fleetsim(t, dir, "run", bad)
		if code != exitUsage {
			t.Errorf("exit %d, want %d", code, exitUsage)
		}
		lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
		last := lines[len(lines)-1]
		if !strings.HasPrefix(last, "fleetsim: run: scenario ") || !strings.Contains(last, "is invalid") {
			t.Errorf("last line %q", last)
		}
		if len(lines) < 2 {
			t.Fatalf("want the problems listed before the last line, got %q", stderr)
		}
		for _, l := range lines[:len(lines)-1] {
			if !strings.Contains(l, "bad.yaml:") {
				t.Errorf("problem line %q is not file:line:col: message", l)
			}
		}
	})
}

func TestBinaryRunTinyScenario(t *testing.T) {
	dir := t.TempDir()
	tiny, _ := filepath.Abs("testdata/tiny.yaml")
	out := filepath.Join(dir, "out")
	logFile := filepath.Join(dir, "run.log")
	code, stdout, stderr := fleetsim(t, dir, "run", tiny, "--seed", "1", "--report", out, "--log-level", "debug", "--log-file", logFile)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "PASS: ") || !strings.Contains(stdout, "Expectations") {
		t.Errorf("no report on stdout:\n%s", stdout)
	}
	if lb, err := os.ReadFile(logFile); err != nil || !bytes.Contains(lb, []byte(`"message":"job completed"`)) || strings.Contains(stderr, `"level"`) {
		t.Errorf("--log-file: the logs are not in the file (%v) or also on stderr %q", err, stderr)
	}
	for _, f := range []string{"report.json", "junit.xml", "report.html"} {
		if st, err := os.Stat(filepath.Join(out, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s: %v", f, err)
		}
	}
	var rep struct {
		Passed bool
		Jobs   []json.RawMessage
	}
	b, _ := os.ReadFile(filepath.Join(out, "report.json"))
	validateReportJSON(t, b)
	if err := json.Unmarshal(b, &rep); err != nil || !rep.Passed || len(rep.Jobs) == 0 {
		t.Errorf("report.json: %v, passed %v, %d jobs", err, rep.Passed, len(rep.Jobs))
	}
}

// TestBinaryRunConsole runs a scenario with --console: the console's
// one-time login URL is printed on stderr, on the address asked for.
func TestBinaryRunConsole(t *testing.T) {
	dir := t.TempDir()
	tiny, _ := filepath.Abs("testdata/tiny.yaml")
	logFile := filepath.Join(dir, "run.log")
	code, stdout, stderr := fleetsim(t, dir, "run", tiny, "--seed", "1", "--no-live", "--console", "127.0.0.1:0", "--log-file", logFile)
	if code != 0 {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !regexp.MustCompile(`web console: https://localhost:\d+/console/login\?token=[\w-]{20,} `).MatchString(stderr) {
		t.Errorf("no console login URL on stderr:\n%s", stderr)
	}
	if lb, _ := os.ReadFile(logFile); bytes.Contains(lb, []byte("token=")) {
		t.Errorf("the login URL is in the log")
	}
}

// TestBinaryInterrupt sends SIGINT to a run in progress: the fleet stops,
// the partial report is printed and written with what was judged, and the
// exit code is 130.
func TestBinaryInterrupt(t *testing.T) {
	dir := t.TempDir()
	long, _ := filepath.Abs("testdata/long.yaml")
	out := filepath.Join(dir, "out")
	cmd := exec.CommandContext(t.Context(), binary, "run", long, "--seed", "1", "--report", out, "--log-level", "warn")
	cmd.Dir = dir
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = pw, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pw.Close()
	// Wait for the first job's completion in the progress lines, then interrupt.
	lines := make(chan string)
	var stdout strings.Builder
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	timeout := time.After(60 * time.Second)
	sent := false
	for !sent {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("fleetsim ended before it was interrupted:\n%s\n%s", stdout.String(), stderr.String())
			}
			stdout.WriteString(l + "\n")
			if strings.Contains(l, "ping-now completed") {
				if err := cmd.Process.Signal(os.Interrupt); err != nil {
					t.Fatal(err)
				}
				sent = true
			}
		case <-timeout:
			cmd.Process.Kill()
			t.Fatalf("no completed job after 60s:\n%s", stdout.String())
		}
	}
	for l := range lines {
		stdout.WriteString(l + "\n")
	}
	err = cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != exitInterrupted {
		t.Fatalf("exit %v, want %d\nstdout:\n%s\nstderr:\n%s", err, exitInterrupted, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "INTERRUPTED") || !strings.Contains(stdout.String(), "PASS  job ping-now ends completed") {
		t.Errorf("no partial report on stdout:\n%s", stdout.String())
	}
	if !strings.Contains(stderr.String(), "interrupted") {
		t.Errorf("stderr %q does not say the run was interrupted", stderr.String())
	}
	b, err := os.ReadFile(filepath.Join(out, "report.json"))
	if err != nil {
		t.Fatal(err)
	}
	validateReportJSON(t, b)
	var rep struct {
		Interrupted, Passed bool
		Jobs                []struct{ JobID, Status string }
	}
	if err := json.Unmarshal(b, &rep); err != nil || !rep.Interrupted || rep.Passed || len(rep.Jobs) != 1 || rep.Jobs[0].Status != "completed" {
		t.Errorf("report.json: %v %+v", err, rep)
	}
	for _, f := range []string{"report.json", "junit.xml", "report.html"} {
		if !strings.Contains(stdout.String(), filepath.Join(out, f)) {
			t.Errorf("the output does not name %s", f)
		}
	}
}

func TestBinaryRunFailingExpectations(t *testing.T) {
	dir := t.TempDir()
	failing, _ := filepath.Abs("testdata/failing.yaml")
	code, stdout, stderr := fleetsim(t, dir, "run", failing, "--seed", "1", "--log-level", "warn")
	if code != exitFail {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "FAIL  ") {
		t.Errorf("no failed expectation in the report:\n%s", stdout)
	}
	if !strings.HasSuffix(stderr, "expectations failed\n") {
		t.Errorf("stderr %q", stderr)
	}
}

// TestBinaryLiveViewInTmux runs fleetsim in a tmux pane, a real terminal,
// and checks that the live view drew devices connected and a job's progress
// bar, and the report followed.
func TestBinaryLiveViewInTmux(t *testing.T) {
	tmux, err := exec.LookPath("tmux")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("tmux is not installed; CI installs it with apt-get install -y tmux")
		}
		t.Skip("tmux not installed (apt-get install -y tmux); skipping the terminal test")
	}
	dir := t.TempDir()
	tiny, _ := filepath.Abs("testdata/tiny.yaml")
	if code, _, stderr := fleetsim(t, dir, "scenarios", "show", tiny); code != 0 {
		t.Fatalf("scenarios show %s: exit %d: %s", tiny, code, stderr)
	}
	conf := filepath.Join(dir, "tmux.conf")
	// The pane stays after fleetsim exits, so its last screen can be read.
	os.WriteFile(conf, []byte("set-option -g remain-on-exit on\nset-option -g history-limit 5000\n"), 0o644)
	socket := fmt.Sprintf("fleetsim-test-%d-%d", os.Getpid(), time.Now().UnixNano())
	tmCtx := func(ctx context.Context, args ...string) (string, error) {
		out, err := exec.CommandContext(ctx, tmux, append([]string{"-L", socket, "-f", conf}, args...)...).CombinedOutput()
		return string(out), err
	}
	tm := func(args ...string) (string, error) { return tmCtx(t.Context(), args...) }
	cmdline := fmt.Sprintf("cd %s && env -u FLEETSIM_CONFIG %s run %s --seed 1 --log-level warn", dir, binary, tiny)
	if out, err := tm("new-session", "-d", "-x", "120", "-y", "40", "-s", "live", cmdline); err != nil {
		t.Fatalf("tmux new-session: %v: %s", err, out)
	}
	// t.Context is already cancelled when cleanups run: the server (kept alive
	// by remain-on-exit) must be killed with a context of its own.
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if out, err := tmCtx(ctx, "kill-server"); err != nil {
			t.Errorf("tmux kill-server: %v: %s", err, out)
		}
	})

	var screen string
	deadline := time.Now().Add(60 * time.Second)
	for {
		dead, _ := tm("display-message", "-p", "-t", "live", "#{pane_dead}")
		screen, _ = tm("capture-pane", "-p", "-t", "live", "-S", "-200")
		if strings.TrimSpace(dead) == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("fleetsim did not finish in the pane; screen:\n%s", screen)
		}
		time.Sleep(100 * time.Millisecond) // polling a terminal we do not own; no event to wait for
	}
	for _, want := range []string{"fleetsim · ", "connected  [", "succeeded", "pending", "Expectations", "PASS: "} {
		if !strings.Contains(screen, want) {
			t.Errorf("the pane lacks %q; screen:\n%s", want, screen)
		}
	}
	// The live latency is measured: never the 0s it once showed.
	if strings.Contains(screen, "p50 0s") || strings.Contains(screen, "p99 0s") || !strings.Contains(screen, "p99 5") {
		t.Errorf("live latency wrong (the devices answer in 50ms):\n%s", screen)
	}
	if !strings.Contains(screen, "["+strings.Repeat(string(barSucceeded), 4)) {
		t.Errorf("no job progress bar on the screen:\n%s", screen)
	}
	if strings.Contains(screen, "\x1b") {
		t.Errorf("raw escape sequences on the screen:\n%q", screen)
	}
}
