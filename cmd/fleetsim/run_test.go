package main

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/scenarios/runner"
)

type fakeScenario struct{ name string }

func (s fakeScenario) Name() string        { return s.name }
func (s fakeScenario) Description() string { return "a fake scenario" }
func (s fakeScenario) Source() []byte      { return []byte("name: " + s.name + "\n") }

// runApp runs `fleetsim run` with a fake runner that plays progressSequence
// and returns the fixture report, passed or not.
func runApp(t *testing.T, passed bool, runErr error, args ...string) (code int, stdout, stderr string, got playOptions) {
	t.Helper()
	return runAppEnv(t, nil, passed, runErr, args...)
}

// runAppEnv is runApp with env as the whole environment.
func runAppEnv(t *testing.T, env map[string]string, passed bool, runErr error, args ...string) (code int, stdout, stderr string, got playOptions) {
	t.Helper()
	rep := fixtureReport(t)
	if passed {
		for i := range rep.Expectations {
			rep.Expectations[i].Passed = true
		}
		rep.Passed = true
	}
	var out, errb bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string { return env[k] },
		open: func(name string) (scenario, error) { return fakeScenario{name}, nil },
		play: func(ctx context.Context, sc scenario, o playOptions) (*runner.Report, error) {
			got = o
			if o.Progress != nil {
				for _, p := range progressSequence() {
					o.Progress(p)
				}
			}
			if runErr != nil {
				return nil, runErr
			}
			return rep, nil
		}}
	code = a.main(context.Background(), append([]string{"run"}, args...))
	return code, out.String(), errb.String(), got
}

func TestRunCommand(t *testing.T) {
	t.Run("passing run writes reports", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "out")
		secret := filepath.Join(t.TempDir(), "connection-string")
		os.WriteFile(secret, []byte(testHubCS+"\n"), 0o600)
		code, stdout, stderr, o := runApp(t, true, nil, "quickstart", "--seed", "42", "--shard", "2/3", "--report", dir, "--hub-file", secret)
		if code != 0 || stderr != "" {
			t.Fatalf("exit %d, stderr %q", code, stderr)
		}
		if o.Seed == nil || *o.Seed != 42 || o.Shard != 2 || o.Shards != 3 || o.DataDir != "" || o.Hub != testHubCS {
			t.Errorf("runner options %+v", o)
		}
		for _, w := range []string{"T+1.2s: created job reboot-all", "devices 98/100 connected", "PASS: 8 of 8 expectations passed", "Report written to"} {
			if !strings.Contains(stdout, w) {
				t.Errorf("stdout lacks %q:\n%s", w, stdout)
			}
		}
		for _, f := range []string{"report.json", "junit.xml", "report.html"} {
			b, err := os.ReadFile(filepath.Join(dir, f))
			if err != nil || len(b) == 0 {
				t.Errorf("%s: %v", f, err)
			}
		}
		b, _ := os.ReadFile(filepath.Join(dir, "junit.xml"))
		if err := xml.Unmarshal(b, new(struct{})); err != nil {
			t.Errorf("junit.xml: %v", err)
		}
	})
	t.Run("failed expectations exit 1", func(t *testing.T) {
		code, stdout, stderr, _ := runApp(t, false, nil, "quickstart", "--no-live")
		if code != exitFail {
			t.Errorf("exit %d, want 1", code)
		}
		if stderr != "fleetsim: run quickstart: 1 of 8 expectations failed\n" {
			t.Errorf("stderr %q", stderr)
		}
		if strings.Contains(stdout, "T+") || !strings.Contains(stdout, "FAIL  job firmware-canary completes within 40s") {
			t.Errorf("--no-live output:\n%s", stdout)
		}
	})
	t.Run("runner error", func(t *testing.T) {
		code, _, stderr, _ := runApp(t, true, errors.New("broker: listen tcp: address already in use"), "quickstart")
		if code != exitFail || stderr != "fleetsim: run quickstart: broker: listen tcp: address already in use\n" {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
	t.Run("report directory not writable", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		os.WriteFile(file, nil, 0o644)
		code, _, stderr, _ := runApp(t, true, nil, "quickstart", "--report", filepath.Join(file, "out"))
		if code != exitFail || !strings.HasPrefix(stderr, "fleetsim: report directory: ") || strings.Count(stderr, "\n") != 1 {
			t.Errorf("exit %d, stderr %q", code, stderr)
		}
	})
}

// testHubCS is a service connection string for tests that never reach a hub.
const testHubCS = "HostName=hub.example;SharedAccessKeyName=iothubowner;SharedAccessKey=YQ=="

// TestRunRemoteSettings: --shard auto takes the shard from an Indexed
// Job's environment, and a connection string on the command line draws a
// warning while the environment's does not.
func TestRunRemoteSettings(t *testing.T) {
	tests := []struct {
		name          string
		env           map[string]string
		args          []string
		shard, shards int
		warns         bool
	}{
		{"auto", map[string]string{"JOB_COMPLETION_INDEX": "2", "FLEETSIM_SHARDS": "4", "FLEETSIM_HUB": testHubCS},
			[]string{"--shard", "auto"}, 3, 4, false},
		{"auto from the environment", map[string]string{"FLEETSIM_SHARD": "auto", "JOB_COMPLETION_INDEX": "0", "FLEETSIM_SHARDS": "2", "FLEETSIM_HUB": testHubCS},
			nil, 1, 2, false},
		{"explicit shard agreeing with the Job", map[string]string{"JOB_COMPLETION_INDEX": "1", "FLEETSIM_SHARDS": "2", "FLEETSIM_HUB": testHubCS},
			[]string{"--shard", "2/2"}, 2, 2, false},
		{"hub on the command line", nil, []string{"--hub", testHubCS, "--shard", "1/2"}, 1, 2, true},
		{"one shard needs no hub", nil, []string{"--shard", "1/1"}, 1, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr, o := runAppEnv(t, tt.env, true, nil, append([]string{"quickstart", "--no-live"}, tt.args...)...)
			if code != 0 {
				t.Fatalf("exit %d, stderr %q", code, stderr)
			}
			if o.Shard != tt.shard || o.Shards != tt.shards {
				t.Errorf("shard %d/%d, want %d/%d", o.Shard, o.Shards, tt.shard, tt.shards)
			}
			if warned := strings.Contains(stderr, "warning: --hub puts the service connection string on the command line"); warned != tt.warns {
				t.Errorf("stderr %q, want a warning: %v", stderr, tt.warns)
			}
		})
	}
}

func TestResolveShard(t *testing.T) {
	tests := []struct {
		spec string
		env  map[string]string
		i, n int
		err  string
	}{
		{"2/4", nil, 2, 4, ""},
		{"auto", map[string]string{"JOB_COMPLETION_INDEX": "0", "FLEETSIM_SHARDS": "3"}, 1, 3, ""},
		{"auto", map[string]string{"JOB_COMPLETION_INDEX": "2", "FLEETSIM_SHARDS": "3"}, 3, 3, ""},
		{"auto", map[string]string{"FLEETSIM_SHARDS": "3"}, 0, 0, "JOB_COMPLETION_INDEX is not set"},
		{"auto", map[string]string{"JOB_COMPLETION_INDEX": "0"}, 0, 0, "FLEETSIM_SHARDS is not set"},
		{"auto", map[string]string{"JOB_COMPLETION_INDEX": "3", "FLEETSIM_SHARDS": "3"}, 0, 0, "is not below FLEETSIM_SHARDS=3"},
		{"auto", map[string]string{"JOB_COMPLETION_INDEX": "-1", "FLEETSIM_SHARDS": "3"}, 0, 0, "want a whole number"},
		{"auto", map[string]string{"JOB_COMPLETION_INDEX": "0", "FLEETSIM_SHARDS": "0"}, 0, 0, "at least 1"},
		{"1/4", map[string]string{"JOB_COMPLETION_INDEX": "2"}, 0, 0, "every pod of its Job would run shard 1"},
		{"1/4", map[string]string{"FLEETSIM_SHARDS": "3"}, 0, 0, "disagrees with 4 shards"},
		{"Auto", nil, 0, 0, "want I/N"},
	}
	for _, tt := range tests {
		i, n, err := resolveShard(tt.spec, func(k string) string { return tt.env[k] })
		if i != tt.i || n != tt.n || (err == nil) != (tt.err == "") || (err != nil && !strings.Contains(err.Error(), tt.err)) {
			t.Errorf("resolveShard(%q, %v) = %d, %d, %v; want %d, %d, %q", tt.spec, tt.env, i, n, err, tt.i, tt.n, tt.err)
		}
	}
}

func TestParseShard(t *testing.T) {
	tests := []struct {
		in   string
		i, n int
		ok   bool
	}{
		{"1/1", 1, 1, true}, {"3/4", 3, 4, true}, {"0/4", 0, 0, false}, {"5/4", 0, 0, false},
		{"1", 0, 0, false}, {"a/b", 0, 0, false}, {"1/0", 0, 0, false},
	}
	for _, tt := range tests {
		i, n, err := parseShard(tt.in)
		if (err == nil) != tt.ok || i != tt.i || n != tt.n {
			t.Errorf("parseShard(%q) = %d, %d, %v", tt.in, i, n, err)
		}
	}
}

func TestParseStart(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		ok   bool
	}{
		{"", now, true}, {"now", now, true}, {"+30s", now.Add(30 * time.Second), true},
		{"2026-05-06T07:08:09Z", time.Date(2026, 5, 6, 7, 8, 9, 0, time.UTC), true},
		{"+soon", time.Time{}, false}, {"tomorrow", time.Time{}, false},
	}
	for _, tt := range tests {
		got, err := parseStart(tt.in, now)
		if (err == nil) != tt.ok || !got.Equal(tt.want) {
			t.Errorf("parseStart(%q) = %v, %v", tt.in, got, err)
		}
	}
}
