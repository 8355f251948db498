package main

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/fleetsim/fleetsim/internal/fleetmem"
	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// sizedFake is a fake scenario with a fleet of its own.
type sizedFake struct {
	fakeScenario
	devices int
}

func (s sizedFake) fleet(shard, shards int, remote bool) fleetmem.Fleet {
	return fleetmem.Fleet{Devices: s.devices / shards, RemoteHub: remote}
}

// machine24G is the machine the model's figures come from.
func machine24G(getenv func(string) string) fleetmem.Machine {
	m := fleetmem.Machine{Memory: 24 * fleetmem.GiB, CPUs: 2}
	if v, named := shrinkSetting(getenv("GODEBUG")); named && getenv(stacksMarker) == "" {
		m.Stacks = map[bool]fleetmem.Stacks{true: fleetmem.StacksKept, false: fleetmem.StacksShrunk}[v]
	}
	return m
}

// planApp runs `fleetsim run` on a fake scenario of devices devices with env.
func planApp(t *testing.T, devices int, env map[string]string, args ...string) (code int, stdout, stderr string, got playOptions, reexec []string) {
	t.Helper()
	var out, errb bytes.Buffer
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(k string) string { return env[k] },
		open:    func(name string) (scenario, error) { return sizedFake{fakeScenario{name}, devices}, nil },
		machine: machine24G,
		reexec:  func(e []string) { reexec = e },
		play: func(ctx context.Context, sc scenario, o playOptions) (*runner.Report, error) {
			got = o
			return fixtureReport(t), nil
		}}
	code = a.main(context.Background(), append([]string{"run", "big", "--no-live"}, args...))
	return code, out.String(), errb.String(), got, reexec
}

func TestRunPlansTheFleet(t *testing.T) {
	auto := map[string]string{"GODEBUG": "gcshrinkstackoff=1", stacksMarker: "1"}
	for _, tc := range []struct {
		name    string
		devices int
		env     map[string]string
		args    []string
		code    int
		stdout  string // a line of it
		stderr  string
		shrink  bool
		reexec  string // the GODEBUG the command re-executes itself with
	}{
		{name: "a fleet that fits keeps stacks", devices: 10_000, env: auto, code: 1,
			stdout: "memory: 10000 devices need about 953 MiB (91 KiB each, stack shrinking off); this machine holds 215914 devices like these (memory limit 18.0 GiB of 24.0 GiB)\n"},
		{name: "a fleet over the limit with stacks kept gets shrinking", devices: 200_000, env: auto, code: 1, shrink: true,
			stdout: "memory: 200000 devices need about 14.2 GiB (74 KiB each, stack shrinking on)", reexec: "gcshrinkstackoff=0"},
		{name: "the re-executed process does not loop", devices: 200_000, env: map[string]string{"GODEBUG": "gcshrinkstackoff=0", stacksMarker: "1"},
			code: 1, shrink: true, stdout: "stack shrinking on"},
		{name: "a fleet that cannot fit is refused", devices: 300_000, env: auto, code: exitUsage,
			stderr: "fleetsim: run big: fleet too large for this machine's memory: 300000 devices need about 21.2 GiB, the memory limit is 18.0 GiB (75 % of 24.0 GiB); this machine holds at most 215914 devices like these"},
		{name: "the user's GODEBUG wins", devices: 200_000, env: map[string]string{"GODEBUG": "gcshrinkstackoff=1"}, code: exitUsage,
			stderr: "this machine holds at most 175578 devices like these"},
		{name: "a shard is sized on its own", devices: 300_000, env: map[string]string{"FLEETSIM_HUB": testHubCS}, args: []string{"--shard", "1/2"},
			code: 1, stdout: "memory: 150000 devices need about 12.4 GiB (86 KiB each, stack shrinking off)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr, o, reexec := planApp(t, tc.devices, tc.env, tc.args...)
			if code != tc.code || !strings.Contains(stdout, tc.stdout) || !strings.Contains(stderr, tc.stderr) {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nwant a line %q\nstderr: %s\nwant %q", code, tc.code, stdout, tc.stdout, stderr, tc.stderr)
			}
			if tc.code == exitUsage {
				if strings.Contains(stdout, "Scenario big") {
					t.Errorf("a refused fleet ran:\n%s", stdout)
				}
				return
			}
			if o.Plan.Devices == 0 || o.Plan.ShrinkStacks != tc.shrink {
				t.Errorf("plan handed to the runner: %+v", o.Plan)
			}
			var godebug []string
			for _, kv := range reexec {
				if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
					godebug = append(godebug, v)
				}
			}
			if tc.reexec == "" && reexec != nil || tc.reexec != "" && !slices.Equal(godebug, []string{tc.reexec}) {
				t.Errorf("re-executed with GODEBUG %q (env %d entries), want %q", godebug, len(reexec), tc.reexec)
			}
		})
	}
}

func TestServePlansTheScenarioFleet(t *testing.T) {
	var out, errb bytes.Buffer
	var got serveOptions
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" },
		machine: machine24G,
		hub: func(ctx context.Context, o serveOptions) error {
			got = o
			return nil
		}}
	if code := a.main(context.Background(), []string{"serve", "--scenario", "quickstart"}); code != 0 {
		t.Fatalf("exit %d, stderr %s", code, errb.String())
	}
	if got.Plan.Devices == 0 || !strings.HasPrefix(out.String(), "memory: ") || !strings.Contains(out.String(), "memory: 200 devices need about 82 MiB") {
		t.Errorf("plan %+v, output:\n%s", got.Plan, out.String())
	}
}

func TestShrinkSetting(t *testing.T) {
	for _, tc := range []struct {
		godebug    string
		off, named bool
	}{
		{"", false, false},
		{"madvdontneed=1", false, false},
		{"gcshrinkstackoff=1", true, true},
		{"gcshrinkstackoff=0", false, true},
		{"gcshrinkstackoff=1,madvdontneed=1,gcshrinkstackoff=0", false, true},
	} {
		if off, named := shrinkSetting(tc.godebug); off != tc.off || named != tc.named {
			t.Errorf("shrinkSetting(%q) = %v, %v; want %v, %v", tc.godebug, off, named, tc.off, tc.named)
		}
	}
}

func TestStacksEnv(t *testing.T) {
	for _, tc := range []struct {
		env    []string
		shrink bool
		want   []string
	}{
		{[]string{"HOME=/h"}, false, []string{"HOME=/h", "GODEBUG=gcshrinkstackoff=1", stacksMarker + "=1"}},
		{[]string{"GODEBUG=madvdontneed=1,gcshrinkstackoff=1", "HOME=/h", stacksMarker + "=1"}, true,
			[]string{"HOME=/h", "GODEBUG=madvdontneed=1,gcshrinkstackoff=0", stacksMarker + "=1"}},
	} {
		if got := stacksEnv(tc.env, tc.shrink); !slices.Equal(got, tc.want) {
			t.Errorf("stacksEnv(%q, %v) = %q, want %q", tc.env, tc.shrink, got, tc.want)
		}
	}
}

func TestScenarioFleet(t *testing.T) {
	sc, err := openScenario("load-100k")
	if err != nil {
		t.Fatal(err)
	}
	f := fleetOf(sc, playOptions{})
	if f.Devices != 100_000 || f.RemoteHub || f.TwinBytes == 0 {
		t.Errorf("load-100k: %+v", f)
	}
	if g := fleetOf(sc, playOptions{Shard: 2, Shards: 4, Hub: testHubCS}); g.Devices != 25_000 || !g.RemoteHub {
		t.Errorf("shard 2/4 of load-100k against a remote hub: %+v", g)
	}
	if g := fleetOf(fakeScenario{"x"}, playOptions{}); g.Devices != 0 {
		t.Errorf("a fake scenario: %+v", g)
	}
}

func TestRuntimeText(t *testing.T) {
	var b bytes.Buffer
	writeRuntimeText(&b, &runner.RuntimeSettings{Devices: 200_000, NeedBytes: 15 * fleetmem.GiB, MaxDevices: 215_914, StackShrinking: true,
		GCPercent: 400, MemoryLimitBytes: 18 * fleetmem.GiB, Procs: 3, Reason: "stack shrinking on to fit"})
	want := "Runtime: about 15.0 GiB for 200000 devices (machine holds 215914), stack shrinking on, GOGC 400, memory limit 18.0 GiB, 3 Ps: stack shrinking on to fit\n"
	if b.String() != want {
		t.Errorf("got  %q\nwant %q", b.String(), want)
	}
	b.Reset()
	writeRuntimeText(&b, nil)
	if b.Len() != 0 {
		t.Errorf("no runtime section: %q", b.String())
	}
}
