package fleetmem

import (
	"errors"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestDecide(t *testing.T) {
	const machine = 24 * GiB // the 2-core machine the figures come from
	for _, tc := range []struct {
		name        string
		fleet       Fleet
		machine     Machine
		shrink      bool
		fits        bool
		maxDevices  int
		perDevice   int64
		gcPercent   int
		procs       int
		setLimit    bool
		limit       int64
		reasonLacks string
		reason      string
	}{
		{name: "small fleet keeps the defaults", fleet: Fleet{Devices: 100}, machine: Machine{Memory: machine, CPUs: 2},
			fits: true, perDevice: 91 * KiB, maxDevices: 215_914, limit: 18 * GiB, reason: "stack shrinking off for speed"},
		{name: "100k in process runs with stacks kept", fleet: Fleet{Devices: 100_000}, machine: Machine{Memory: machine, CPUs: 2},
			fits: true, perDevice: 91 * KiB, maxDevices: 215_914, gcPercent: 400, procs: 3, setLimit: true, limit: 18 * GiB,
			reason: "stack shrinking off for speed: the fleet needs about 8.7 GiB"},
		{name: "200k shrinks stacks to fit", fleet: Fleet{Devices: 200_000}, machine: Machine{Memory: machine, CPUs: 2},
			shrink: true, fits: true, perDevice: 74 * KiB, maxDevices: 215_914, gcPercent: 400, procs: 3, setLimit: true, limit: 18 * GiB,
			reason: "stack shrinking on to fit: with it off the fleet would need about 17.4 GiB, over 85 % of the 18.0 GiB memory limit (at most 175578 devices)"},
		{name: "300k cannot fit", fleet: Fleet{Devices: 300_000}, machine: Machine{Memory: machine, CPUs: 2},
			shrink: true, fits: false, perDevice: 74 * KiB, maxDevices: 215_914, gcPercent: 400, procs: 3, setLimit: true, limit: 18 * GiB},
		{name: "big twins cost heap", fleet: Fleet{Devices: 100_000, TwinBytes: 4 * KiB, TelemetryBytes: 1 * KiB}, machine: Machine{Memory: machine, CPUs: 2},
			fits: true, perDevice: 91*KiB + 14*KiB, maxDevices: 181_564, gcPercent: 400, procs: 3, setLimit: true, limit: 18 * GiB},
		{name: "devices only against a remote hub", fleet: Fleet{Devices: 190_000, RemoteHub: true}, machine: Machine{Memory: machine, CPUs: 2},
			shrink: true, fits: true, perDevice: 81 * KiB, maxDevices: 197_255, gcPercent: 400, procs: 3, setLimit: true, limit: 18 * GiB,
			reason: "stack shrinking on to fit"},
		{name: "GODEBUG keeps stacks: refused rather than shrunk", fleet: Fleet{Devices: 200_000}, machine: Machine{Memory: machine, CPUs: 2, Stacks: StacksKept},
			fits: false, perDevice: 91 * KiB, maxDevices: 175_578, gcPercent: 400, procs: 3, setLimit: true, limit: 18 * GiB,
			reason: "stack shrinking off as GODEBUG sets it"},
		{name: "GODEBUG shrinks a small fleet", fleet: Fleet{Devices: 1000}, machine: Machine{Memory: machine, CPUs: 2, Stacks: StacksShrunk},
			shrink: true, fits: true, perDevice: 74 * KiB, maxDevices: 215_914, limit: 18 * GiB, reason: "as GODEBUG sets it"},
		{name: "GOMEMLIMIT and GOGC win", fleet: Fleet{Devices: 40_000}, machine: Machine{Memory: machine, CPUs: 2, MemoryLimit: 4 * GiB, GCSet: true, ProcsSet: true},
			shrink: true, fits: true, perDevice: 74 * KiB, maxDevices: 47_292, limit: 4 * GiB},
		{name: "a 2 GiB container", fleet: Fleet{Devices: 15_000}, machine: Machine{Memory: 2 * GiB, CPUs: 1},
			shrink: true, fits: true, perDevice: 74 * KiB, maxDevices: 17_181, gcPercent: 400, procs: 2, setLimit: true, limit: 1536 * MiB},
		{name: "unknown memory: no sizing", fleet: Fleet{Devices: 1_000_000}, machine: Machine{CPUs: 2},
			fits: true, perDevice: 91 * KiB, gcPercent: 400, procs: 3, reason: "memory is unknown"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Decide(tc.fleet, tc.machine)
			if p.ShrinkStacks != tc.shrink || p.Fits != tc.fits || p.PerDevice != tc.perDevice || p.MaxDevices != tc.maxDevices ||
				p.GCPercent != tc.gcPercent || p.Procs != tc.procs || p.SetMemoryLimit != tc.setLimit || p.MemoryLimit != tc.limit {
				t.Errorf("plan %+v\nwant shrink %v fits %v perDevice %d maxDevices %d gc %d procs %d setLimit %v limit %d",
					p, tc.shrink, tc.fits, tc.perDevice, tc.maxDevices, tc.gcPercent, tc.procs, tc.setLimit, tc.limit)
			}
			if !strings.Contains(p.Reason, tc.reason) {
				t.Errorf("reason %q lacks %q", p.Reason, tc.reason)
			}
			if err := p.Err(); (err == nil) != tc.fits || (err != nil && !errors.Is(err, ErrTooLarge)) {
				t.Errorf("Err() = %v with fits %v", err, tc.fits)
			}
			// The largest fleet fits, one more does not (with the same stacks).
			if p.MaxDevices > 0 {
				f := tc.fleet
				f.Devices = p.MaxDevices
				if q := Decide(f, tc.machine); !q.Fits {
					t.Errorf("the largest fleet %d does not fit: %+v", p.MaxDevices, q)
				}
				f.Devices++
				if q := Decide(f, tc.machine); q.Fits {
					t.Errorf("one device over the largest fleet fits: %+v", q)
				}
			}
		})
	}
}

func TestErrAndSummary(t *testing.T) {
	p := Decide(Fleet{Devices: 300_000}, Machine{Memory: 24 * GiB, CPUs: 2})
	want := "fleet too large for this machine's memory: 300000 devices need about 21.2 GiB, the memory limit is 18.0 GiB (75 % of 24.0 GiB); this machine holds at most 215914 devices like these"
	if err := p.Err(); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Err() = %v\nwant prefix %s", err, want)
	}
	for _, tc := range []struct {
		plan Plan
		want string
	}{
		{Decide(Fleet{Devices: 10_000}, Machine{Memory: 24 * GiB, CPUs: 2}),
			"memory: 10000 devices need about 953 MiB (91 KiB each, stack shrinking off); this machine holds 215914 devices like these (memory limit 18.0 GiB of 24.0 GiB)"},
		{Decide(Fleet{Devices: 10}, Machine{}), "memory: 10 devices need about 65 MiB (91 KiB each, stack shrinking off); this machine's memory is unknown"},
	} {
		if got := tc.plan.Summary(); got != tc.want {
			t.Errorf("Summary() = %q\nwant        %q", got, tc.want)
		}
	}
}

func TestMachines(t *testing.T) {
	for _, tc := range []struct {
		fleet             Fleet
		memory            int64
		machines, perEach int
	}{
		{Fleet{Devices: 1_000_000}, 24 * GiB, 5, 215_914},
		{Fleet{Devices: 1_000_000, RemoteHub: true}, 24 * GiB, 6, 197_255},
		{Fleet{Devices: 1_000_000, RemoteHub: true}, 4 * GiB, 32, 32_201},
		{Fleet{Devices: 10}, 32 * MiB, 0, 0},
	} {
		m, each := Machines(tc.fleet, tc.memory)
		if m != tc.machines || each != tc.perEach {
			t.Errorf("Machines(%+v, %s) = %d × %d, want %d × %d", tc.fleet, Size(tc.memory), m, each, tc.machines, tc.perEach)
		}
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{512: "512 B", 69 * KiB: "69 KiB", 820 * MiB: "820 MiB", 18 * GiB: "18.0 GiB", 3 * GiB / 2: "1.5 GiB"} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
}

func TestApply(t *testing.T) {
	procs := runtime.GOMAXPROCS(0)
	limit := debug.SetMemoryLimit(-1)
	gc := debug.SetGCPercent(100)
	debug.SetGCPercent(gc)

	restore := Plan{SetMemoryLimit: true, MemoryLimit: 3 * GiB, GCPercent: 400, Procs: procs + 1}.Apply()
	if got := debug.SetMemoryLimit(-1); got != 3*GiB {
		t.Errorf("memory limit %d", got)
	}
	if got := runtime.GOMAXPROCS(0); got != procs+1 {
		t.Errorf("GOMAXPROCS %d", got)
	}
	restore()
	if debug.SetMemoryLimit(-1) != limit || runtime.GOMAXPROCS(0) != procs {
		t.Errorf("not restored")
	}
	if got := debug.SetGCPercent(gc); got != gc {
		t.Errorf("GC percent %d after restore, want %d", got, gc)
	}
	Plan{}.Apply()() // a small fleet's plan changes nothing
	if debug.SetMemoryLimit(-1) != limit || runtime.GOMAXPROCS(0) != procs {
		t.Errorf("an empty plan changed the runtime")
	}
}

func TestFromEnv(t *testing.T) {
	env := map[string]string{"GOGC": "off", "GOMAXPROCS": "1"}
	m := FromEnv(8*GiB, func(k string) string { return env[k] })
	if m.Memory != 8*GiB || m.CPUs != runtime.GOMAXPROCS(0) || !m.GCSet || !m.ProcsSet || m.MemoryLimit != 0 || m.Stacks != StacksAuto {
		t.Errorf("FromEnv = %+v", m)
	}
	env = map[string]string{"GOMEMLIMIT": "1GiB"}
	if m := FromEnv(8*GiB, func(k string) string { return env[k] }); m.MemoryLimit != debug.SetMemoryLimit(-1) || m.GCSet {
		t.Errorf("FromEnv with GOMEMLIMIT = %+v", m)
	}
}
