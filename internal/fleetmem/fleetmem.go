// Package fleetmem is fleetsim's memory model: what a fleet of simulated
// devices needs on this hub, from per-device figures measured with
// fleetsim's own benchmarks, and the runtime settings that follow from it
// and the machine's memory: stack shrinking, the GC target and memory limit,
// the number of Ps, or a refusal with the largest fleet that would fit.
//
// Stack shrinking is a GODEBUG setting the runtime reads once, at start:
// the command applies it by re-executing itself; Plan.Apply sets the rest.
package fleetmem

import (
	"errors"
	"fmt"
	"runtime"
	"runtime/debug"
)

// KiB and MiB are byte counts.
const (
	KiB = 1 << 10
	MiB = 1 << 20
	GiB = 1 << 30
)

// Cost is what one device of the fleet costs: Go heap and goroutine stacks,
// in bytes, with stack shrinking off (StacksKept) and on (StacksShrunk), and
// its goroutines.
type Cost struct {
	Heap         int64
	StacksKept   int64
	StacksShrunk int64
	Goroutines   int
}

// Add returns the sum of c and d.
func (c Cost) Add(d Cost) Cost {
	return Cost{Heap: c.Heap + d.Heap, StacksKept: c.StacksKept + d.StacksKept,
		StacksShrunk: c.StacksShrunk + d.StacksShrunk, Goroutines: c.Goroutines + d.Goroutines}
}

// Bytes returns the device's memory with stack shrinking on or off.
func (c Cost) Bytes(shrink bool) int64 {
	if shrink {
		return c.Heap + c.StacksShrunk
	}
	return c.Heap + c.StacksKept
}

// The measured figures (make bench, BenchmarkFleetJobs at 10k and 100k
// devices after a method and a twin job): a paho device and its mochi
// connection with the hub's per-device state, on the in-process transport.
// HubShare is the part that stays with the hub when the devices play
// against a remote one: mochi's two goroutines per connection (its
// connection goroutine keeps the stack it grew answering the SUBSCRIBEs)
// and the registry's and broker's records.
var (
	Device   = Cost{Heap: 22 * KiB, StacksKept: 69 * KiB, StacksShrunk: 52 * KiB, Goroutines: 11}
	HubShare = Cost{Heap: 9 * KiB, StacksKept: 36 * KiB, StacksShrunk: 24 * KiB, Goroutines: 2}
)

// Behaviour costs the figures above do not include, per device.
const (
	// Base is the process without devices: runtime, hub, stores' caches.
	Base = 64 * MiB
	// TwinCopies is how many copies of a device's twin JSON the process
	// holds: the registry's record, its query index, the device's own.
	TwinCopies = 3
	// TelemetryCopies is how many copies of a telemetry message are alive
	// at once: paho's outgoing packet and mochi's buffer.
	TelemetryCopies = 2
	// TLSConn is a TLS connection's buffers and state on the device side,
	// when devices dial a remote hub.
	TLSConn = 40 * KiB
	// Headroom is the share of the memory limit the fleet may take: above
	// it the GC runs without pause (the live heap leaves it no room to
	// collect ahead of the limit).
	Headroom = 0.85
	// LimitShare is the memory limit fleetsim sets, as a share of the
	// machine's memory (or of the container's limit).
	LimitShare = 0.75
	// TuneFrom is the fleet size from which fleetsim changes the GC target,
	// the memory limit and the number of Ps; smaller fleets keep the
	// runtime's defaults.
	TuneFrom = 5000
	// GCPercent is the GC target of a tuned fleet: mochi's small
	// per-connection queues cost throughput unless the GC runs rarely, and
	// the memory limit bounds the heap instead.
	GCPercent = 400
)

// Fleet is what runs in this process.
type Fleet struct {
	// Devices is the number of simulated devices in this process (its shard).
	Devices int
	// RemoteHub says the hub runs elsewhere and only the devices (their
	// paho clients, over TLS) are in this process.
	RemoteHub bool
	// TwinBytes is a device's twin JSON (tags, reported and desired
	// properties) beyond the few bytes of an empty one.
	TwinBytes int
	// TelemetryBytes is the size of a telemetry message when the devices
	// send any, else 0.
	TelemetryBytes int
}

// PerDevice returns the cost of one device of f.
func (f Fleet) PerDevice() Cost {
	c := Device
	if f.RemoteHub {
		c = Cost{Heap: Device.Heap - HubShare.Heap + TLSConn, StacksKept: Device.StacksKept - HubShare.StacksKept,
			StacksShrunk: Device.StacksShrunk - HubShare.StacksShrunk, Goroutines: Device.Goroutines - HubShare.Goroutines}
	}
	copies := TwinCopies
	if f.RemoteHub {
		copies = 1
	}
	c.Heap += int64(copies*f.TwinBytes + TelemetryCopies*f.TelemetryBytes)
	return c
}

// Machine is what the process may use and what its environment fixes.
type Machine struct {
	// Memory is the memory the process may use, in bytes: the machine's, or
	// its container's limit when lower; 0 when unknown.
	Memory int64
	// CPUs is the number of CPUs the process may use.
	CPUs int
	// MemoryLimit is GOMEMLIMIT when the environment sets it, else 0.
	MemoryLimit int64
	// GCSet and ProcsSet say GOGC and GOMAXPROCS are set in the environment.
	GCSet, ProcsSet bool
	// Stacks is stack shrinking as GODEBUG fixes it (the user named
	// gcshrinkstackoff), else StacksAuto.
	Stacks Stacks
}

// FromEnv returns the Machine of a process that may use memory bytes and
// has getenv as its environment: its CPUs as GOMAXPROCS says now, and what
// GOGC, GOMEMLIMIT and GOMAXPROCS fix. Stacks stay StacksAuto: whether
// GODEBUG's setting is the user's is the command's to say.
func FromEnv(memory int64, getenv func(string) string) Machine {
	m := Machine{Memory: memory, CPUs: runtime.GOMAXPROCS(0), GCSet: getenv("GOGC") != "", ProcsSet: getenv("GOMAXPROCS") != ""}
	if getenv("GOMEMLIMIT") != "" {
		m.MemoryLimit = debug.SetMemoryLimit(-1) // as the runtime parsed it
	}
	return m
}

// Stacks is a stack-shrinking setting.
type Stacks int

// Stack-shrinking settings.
const (
	StacksAuto   Stacks = iota // fleetsim decides
	StacksKept                 // gcshrinkstackoff=1
	StacksShrunk               // gcshrinkstackoff=0, the Go default
)

// Plan is the runtime settings for a fleet on a machine, and why.
type Plan struct {
	// Devices is the fleet size planned for.
	Devices int
	// PerDevice is a device's cost under the chosen stack setting.
	PerDevice int64
	// Need is the fleet's estimated memory, the process's base included.
	Need int64
	// Memory is the machine's (or container's) memory; 0 when unknown.
	Memory int64
	// MemoryLimit is the soft memory limit the GC keeps to (0: none set by
	// fleetsim nor the environment).
	MemoryLimit int64
	// SetMemoryLimit, GCPercent (0: leave) and Procs (0: leave) are what
	// fleetsim changes in the runtime.
	SetMemoryLimit bool
	GCPercent      int
	Procs          int
	// ShrinkStacks is the stack-shrinking choice; StacksFixed says the
	// environment made it.
	ShrinkStacks bool
	StacksFixed  bool
	// Fits says the fleet fits the memory; when it does not, the run must
	// be refused.
	Fits bool
	// MaxDevices is the largest fleet of the same behaviours this machine
	// holds (with stack shrinking on unless the environment keeps it off);
	// 0 when the memory is unknown.
	MaxDevices int
	// Reason says why the stacks and limits are as they are, in one sentence.
	Reason string
}

// ErrTooLarge is a fleet that cannot fit the machine's memory.
var ErrTooLarge = errors.New("fleet too large for this machine's memory")

// Err returns nil for a fleet that fits, else an error wrapping
// ErrTooLarge that says how much it needs and the largest fleet that fits.
func (p Plan) Err() error {
	if p.Fits {
		return nil
	}
	return fmt.Errorf("%w: %d devices need about %s, the memory limit is %s (%s of %s); this machine holds at most %d devices like these: run fewer, or split the fleet into shards (--shard) over several machines",
		ErrTooLarge, p.Devices, Size(p.Need), Size(p.MemoryLimit), percent(LimitShare), Size(p.Memory), p.MaxDevices)
}

// Decide plans fleet f on machine m.
func Decide(f Fleet, m Machine) Plan {
	c := f.PerDevice()
	need := func(shrink bool) int64 { return Base + int64(f.Devices)*c.Bytes(shrink) }
	p := Plan{Devices: f.Devices, Memory: m.Memory, Fits: true}
	tune := f.Devices >= TuneFrom
	if tune && !m.GCSet {
		p.GCPercent = GCPercent
	}
	if tune && !m.ProcsSet && m.CPUs > 0 {
		p.Procs = m.CPUs + 1
	}
	switch {
	case m.MemoryLimit > 0:
		p.MemoryLimit = m.MemoryLimit
	case m.Memory > 0:
		p.MemoryLimit = int64(float64(m.Memory) * LimitShare)
		p.SetMemoryLimit = tune && !m.GCSet
	}
	room := int64(float64(p.MemoryLimit) * Headroom)
	maxFor := func(shrink bool) int {
		if room <= Base {
			return 0
		}
		return int((room - Base) / c.Bytes(shrink))
	}

	switch m.Stacks {
	case StacksKept, StacksShrunk:
		p.ShrinkStacks, p.StacksFixed = m.Stacks == StacksShrunk, true
		p.Reason = "stack shrinking " + onOff(p.ShrinkStacks) + " as GODEBUG sets it"
	default:
		switch {
		case p.MemoryLimit == 0:
			p.Reason = "stack shrinking off for speed; the machine's memory is unknown, so the fleet is not sized"
		case need(false) <= room:
			p.Reason = fmt.Sprintf("stack shrinking off for speed: the fleet needs about %s, within %s of the %s memory limit", Size(need(false)), percent(Headroom), Size(p.MemoryLimit))
		default:
			p.ShrinkStacks = true
			p.Reason = fmt.Sprintf("stack shrinking on to fit: with it off the fleet would need about %s, over %s of the %s memory limit (at most %d devices)", Size(need(false)), percent(Headroom), Size(p.MemoryLimit), maxFor(false))
		}
	}
	p.PerDevice = c.Bytes(p.ShrinkStacks)
	p.Need = need(p.ShrinkStacks)
	if p.MemoryLimit > 0 {
		p.MaxDevices = maxFor(p.ShrinkStacks || !p.StacksFixed)
		p.Fits = p.Need <= room
	}
	return p
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func percent(f float64) string { return fmt.Sprintf("%.0f %%", f*100) }

// Size formats a byte count for people: "1.4 GiB", "820 MiB", "69 KiB".
func Size(n int64) string {
	switch {
	case n >= GiB:
		return fmt.Sprintf("%.1f GiB", float64(n)/GiB)
	case n >= MiB:
		return fmt.Sprintf("%.0f MiB", float64(n)/MiB)
	case n >= KiB:
		return fmt.Sprintf("%.0f KiB", float64(n)/KiB)
	}
	return fmt.Sprintf("%d B", n)
}

// Summary is the plan in one line, for the start of a run: what the fleet
// will take and how many such devices the machine holds.
func (p Plan) Summary() string {
	s := fmt.Sprintf("memory: %d devices need about %s (%s each, stack shrinking %s)",
		p.Devices, Size(p.Need), Size(p.PerDevice), onOff(p.ShrinkStacks))
	if p.MemoryLimit == 0 {
		return s + "; this machine's memory is unknown"
	}
	return s + fmt.Sprintf("; this machine holds %d devices like these (memory limit %s of %s)",
		p.MaxDevices, Size(p.MemoryLimit), Size(p.Memory))
}

// Machines returns how many machines of memory bytes each a fleet of
// devices needs, each running its share (see Decide) with fleetsim's
// default settings, and the devices each one holds.
func Machines(f Fleet, memory int64) (machines, perMachine int) {
	one := Decide(Fleet{Devices: 1, RemoteHub: f.RemoteHub, TwinBytes: f.TwinBytes, TelemetryBytes: f.TelemetryBytes}, Machine{Memory: memory})
	if one.MaxDevices <= 0 {
		return 0, 0
	}
	return (f.Devices + one.MaxDevices - 1) / one.MaxDevices, one.MaxDevices
}

// Apply sets the runtime up as p says: its memory limit, GC target and
// number of Ps, each only where p sets it (small fleets and settings the
// environment made are left alone). It returns a function that restores
// the previous settings. Only commands call it: the settings are the
// whole process's.
func (p Plan) Apply() (restore func()) {
	var undo []func()
	if p.SetMemoryLimit {
		prev := debug.SetMemoryLimit(p.MemoryLimit)
		undo = append(undo, func() { debug.SetMemoryLimit(prev) })
	}
	if p.GCPercent != 0 {
		prev := debug.SetGCPercent(p.GCPercent)
		undo = append(undo, func() { debug.SetGCPercent(prev) })
	}
	if p.Procs > 0 {
		prev := runtime.GOMAXPROCS(p.Procs)
		undo = append(undo, func() { runtime.GOMAXPROCS(prev) })
	}
	return func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
}
