package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"runtime"
	"runtime/metrics"
	"strings"

	"github.com/rs/zerolog"

	"github.com/fleetsim/fleetsim/internal/fleetmem"
	"github.com/fleetsim/fleetsim/internal/sysmem"
	"github.com/fleetsim/fleetsim/scenarios"
	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// stacksMarker is set in the environment of the process fleetsim
// re-executes with its own gcshrinkstackoff: the setting is fleetsim's
// choice, not the user's, and the memory plan may revise it.
const stacksMarker = "FLEETSIM_STACKS_CHOSEN"

// sizedScenario is a scenario that can say what its fleet is (test fakes
// that are not a loaded scenario).
type sizedScenario interface {
	fleet(shard, shards int, remote bool) fleetmem.Fleet
}

// fleetOf describes the fleet sc brings into this process (its shard) for
// the memory model; a zero fleet for a scenario it cannot read.
func fleetOf(sc scenario, o playOptions) fleetmem.Fleet {
	shard, shards := 0, 1
	if o.Shards > 1 && o.Shard >= 1 && o.Shard <= o.Shards {
		shard, shards = o.Shard-1, o.Shards
	}
	remote := o.Hub != ""
	switch s := sc.(type) {
	case sizedScenario:
		return s.fleet(shard, shards, remote)
	case *scenarios.Scenario:
		return scenarioFleet(s, shard, shards, remote)
	}
	return fleetmem.Fleet{}
}

// scenarioFleet averages the twin and telemetry sizes over the groups of
// s, weighted by their device counts; a group's twin is its first
// device's tags and the group's reported properties.
func scenarioFleet(s *scenarios.Scenario, shard, shards int, remote bool) fleetmem.Fleet {
	f := fleetmem.Fleet{Devices: len(s.ShardIndexes(shard, shards)), RemoteHub: remote}
	total, twin, tele := 0, 0, 0
	for _, g := range s.Groups {
		if g.Count == 0 {
			continue
		}
		tags, _ := json.Marshal(s.Device(g.First).Tags)
		reported, _ := json.Marshal(g.Behavior.Reported)
		twin += g.Count * (len(tags) + len(reported))
		if t := g.Behavior.Telemetry; t != nil {
			tele += g.Count * t.PayloadSize
		}
		total += g.Count
	}
	if total > 0 {
		f.TwinBytes, f.TelemetryBytes = twin/total, tele/total
	}
	return f
}

// machineNow describes this process's machine and environment for the
// memory model.
func machineNow(getenv func(string) string) fleetmem.Machine {
	m := fleetmem.FromEnv(sysmem.Available(), getenv)
	if v, named := shrinkSetting(getenv("GODEBUG")); named && getenv(stacksMarker) == "" {
		m.Stacks = fleetmem.StacksShrunk
		if v {
			m.Stacks = fleetmem.StacksKept
		}
	}
	return m
}

// shrinkSetting returns whether godebug turns stack shrinking off
// (gcshrinkstackoff set to non-zero, the last setting winning) and whether
// it names the setting at all.
func shrinkSetting(godebug string) (off, named bool) {
	for kv := range strings.SplitSeq(godebug, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(kv), "gcshrinkstackoff="); ok {
			off, named = v != "0" && v != "", true
		}
	}
	return off, named
}

// stacksEnv returns environ with GODEBUG's gcshrinkstackoff set for
// shrink (any other GODEBUG settings kept) and the marker that says the
// choice is fleetsim's.
func stacksEnv(environ []string, shrink bool) []string {
	var godebug []string
	env := make([]string, 0, len(environ)+2)
	for _, kv := range environ {
		switch {
		case strings.HasPrefix(kv, "GODEBUG="):
			for s := range strings.SplitSeq(strings.TrimPrefix(kv, "GODEBUG="), ",") {
				if s != "" && !strings.HasPrefix(s, "gcshrinkstackoff=") {
					godebug = append(godebug, s)
				}
			}
		case strings.HasPrefix(kv, stacksMarker+"="):
		default:
			env = append(env, kv)
		}
	}
	v := "gcshrinkstackoff=1"
	if shrink {
		v = "gcshrinkstackoff=0"
	}
	return append(env, "GODEBUG="+strings.Join(append(godebug, v), ","), stacksMarker+"=1")
}

// planFleet sizes sc's fleet on this machine: it says in one line what the
// fleet will take and how many such devices the machine holds, logs the
// plan's reason, refuses (exit 2) a fleet that cannot fit, and, when the
// plan wants stack shrinking other than fleetsim started this process with,
// re-executes it with the plan's setting (a.reexec; it returns only on
// failure, and the run goes on with the stacks as they are).
func (a *app) planFleet(cmd string, sc scenario, o playOptions) (fleetmem.Plan, error) {
	f := fleetOf(sc, o)
	if f.Devices == 0 {
		return fleetmem.Plan{}, nil
	}
	machine := a.machine
	if machine == nil {
		machine = machineNow
	}
	m := machine(a.getenv)
	p := fleetmem.Decide(f, m)
	if err := p.Err(); err != nil {
		return p, &silentError{code: exitUsage, msg: fmt.Sprintf("%s %s: %v", cmd, sc.Name(), err)}
	}
	off, _ := shrinkSetting(a.getenv("GODEBUG"))
	if a.getenv(stacksMarker) != "" && off == p.ShrinkStacks && a.reexec != nil {
		a.reexec(stacksEnv(os.Environ(), p.ShrinkStacks))
	}
	fmt.Fprintln(a.stdout, p.Summary())
	return p, nil
}

// runtimeSettings is the report's record of plan p as the process applied
// it: the stacks as the process runs them, the GC and Ps as they are now.
func runtimeSettings(p fleetmem.Plan, getenv func(string) string) *runner.RuntimeSettings {
	if p.Devices == 0 {
		return nil
	}
	off, _ := shrinkSetting(getenv("GODEBUG"))
	reason := p.Reason
	if off == p.ShrinkStacks && !p.StacksFixed {
		want := "1"
		if p.ShrinkStacks {
			want = "0"
		}
		reason += " (not applied: the process could not re-execute itself; set GODEBUG=gcshrinkstackoff=" + want + ")"
	}
	s := []metrics.Sample{{Name: "/gc/gogc:percent"}, {Name: "/gc/gomemlimit:bytes"}}
	metrics.Read(s)
	gc, limit := -1, int64(0)
	if s[0].Value.Kind() == metrics.KindUint64 {
		if v := s[0].Value.Uint64(); v <= math.MaxInt32 {
			gc = int(v)
		}
	}
	if s[1].Value.Kind() == metrics.KindUint64 {
		if v := s[1].Value.Uint64(); v < math.MaxInt64 {
			limit = int64(v)
		}
	}
	return &runner.RuntimeSettings{Devices: p.Devices, PerDeviceBytes: p.PerDevice, NeedBytes: p.Need,
		MemoryBytes: p.Memory, MemoryLimitBytes: limit, MaxDevices: p.MaxDevices,
		StackShrinking: !off, GCPercent: gc, Procs: runtime.GOMAXPROCS(0), Reason: reason}
}

// logPlan logs the runtime settings chosen for the fleet and why.
func logPlan(log zerolog.Logger, p fleetmem.Plan) {
	if p.Devices == 0 {
		return
	}
	log.Info().Int("devices", p.Devices).Int64("needBytes", p.Need).Int64("perDeviceBytes", p.PerDevice).
		Int64("memoryLimitBytes", p.MemoryLimit).Int("maxDevices", p.MaxDevices).Bool("stackShrinking", p.ShrinkStacks).
		Int("gcPercent", p.GCPercent).Int("procs", p.Procs).Str("reason", p.Reason).Msg("runtime settings")
}

// writeRuntimeText is the report's line on the runtime settings.
func writeRuntimeText(b *bytes.Buffer, rt *runner.RuntimeSettings) {
	if rt == nil {
		return
	}
	limit := "no memory limit"
	if rt.MemoryLimitBytes > 0 {
		limit = "memory limit " + fleetmem.Size(rt.MemoryLimitBytes)
	}
	shrink := "off"
	if rt.StackShrinking {
		shrink = "on"
	}
	fmt.Fprintf(b, "Runtime: about %s for %d devices (machine holds %d), stack shrinking %s, GOGC %d, %s, %d Ps: %s\n",
		fleetmem.Size(rt.NeedBytes), rt.Devices, rt.MaxDevices, shrink, rt.GCPercent, limit, rt.Procs, rt.Reason)
}
