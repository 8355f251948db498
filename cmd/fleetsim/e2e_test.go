package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

// binary is the fleetsim command built by TestMain, driven as a user would.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "fleetsim-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "fleetsim")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build ./cmd/fleetsim: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goroutine leak: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// fleetsim runs the binary with args in dir and an environment without FLEETSIM_ settings.
func fleetsim(t *testing.T, dir string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	cmd := exec.CommandContext(t.Context(), binary, args...)
	cmd.Dir = dir
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, envPrefix) {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("run fleetsim: %v", err)
	}
	return code, out.String(), errb.String()
}

// oneLine checks that stderr is exactly one "fleetsim: ..." line containing want.
func oneLineError(t *testing.T, stderr, want string) {
	t.Helper()
	if strings.Count(stderr, "\n") != 1 || !strings.HasPrefix(stderr, "fleetsim: ") || !strings.Contains(stderr, want) {
		t.Errorf("stderr %q, want one line 'fleetsim: ...%s...'", stderr, want)
	}
	for _, bad := range []string{"panic", "goroutine ", ".go:"} {
		if strings.Contains(stderr, bad) {
			t.Errorf("stderr looks like a crash (%q): %s", bad, stderr)
		}
	}
}

func TestBinaryBadInput(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown command", []string{"launch"}, exitUsage, `unknown command "launch"`},
		{"wrong flag", []string{"run", "quickstart", "--sed", "1"}, exitUsage, "unknown flag -sed"},
		{"wrong flag value", []string{"serve", "--log-level", "chatty"}, exitUsage, `log level "chatty"`},
		{"bad shard", []string{"run", "quickstart", "--shard", "0/0"}, exitUsage, "--shard"},
		{"no hub", []string{"jobs", "list", "--data", dir}, exitFail, "does not exist; start 'fleetsim serve"},
		{"unreachable hub", []string{"devices", "list", "--data", dir, "--url", "https://127.0.0.1:1",
			"--connection-string", "HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=c2VjcmV0"}, exitFail, "list devices: cannot reach the hub: connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := fleetsim(t, dir, tt.args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d", code, tt.code)
			}
			oneLineError(t, stderr, tt.want)
		})
	}
}

func TestBinaryHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"serve", "--help"}, {"run", "--help"}, {"version"}} {
		code, stdout, stderr := fleetsim(t, t.TempDir(), args...)
		if code != 0 || stderr != "" || stdout == "" {
			t.Errorf("fleetsim %v: exit %d, stderr %q", args, code, stderr)
		}
	}
}
