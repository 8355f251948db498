// Package sysmem reads the machine's and the process's memory from /proc,
// and sets the Go runtime up for a large fleet: its garbage collection,
// sized with that memory, and its number of Ps.
package sysmem

import (
	"bufio"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
)

// Total returns the machine's memory in bytes (MemTotal), or 0 where that
// is not known (not Linux, or unreadable).
func Total() int64 { return kBField("/proc/meminfo", "MemTotal") }

// RSS returns the process's resident memory in bytes (VmRSS), or 0.
func RSS() int64 { return kBField("/proc/self/status", "VmRSS") }

// PeakRSS returns the process's peak resident memory in bytes (VmHWM), or 0.
func PeakRSS() int64 { return kBField("/proc/self/status", "VmHWM") }

// kBField reads a "Name:   123 kB" line of a /proc file, in bytes; 0 when
// the file or the field is missing or malformed.
func kBField(path, name string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}

// TuneGC sets the runtime up for a large fleet (see docs/performance.md):
// mochi's small per-connection queues cost throughput unless the GC runs
// less often, so GOGC goes to 400 and a memory limit at three quarters of
// the machine keeps the heap bounded instead. It leaves the runtime alone when GOGC or
// GOMEMLIMIT is set in the environment or the machine's memory is unknown.
// It returns a function that restores the previous settings.
func TuneGC() (restore func()) {
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	total := Total()
	if total == 0 {
		return func() {}
	}
	prevLimit := debug.SetMemoryLimit(total * 3 / 4)
	prevPercent := debug.SetGCPercent(400)
	return func() {
		debug.SetGCPercent(prevPercent)
		debug.SetMemoryLimit(prevLimit)
	}
}

// TuneProcs gives the scheduler one P more than it has (by default, one per
// CPU the process may use). fleetsim's stores fsync on the goroutines that
// commit, and a P whose thread waits in fsync runs nothing else until the
// call returns or the runtime's monitor takes the P back, which can take up
// to 10 ms: on two CPUs, a core idle for much of every commit. Jobs run
// faster and connecting a little slower (more threads to schedule; see
// docs/performance.md). It leaves the runtime alone when GOMAXPROCS is set in the environment, and
// returns a function that restores the previous setting.
func TuneProcs() (restore func()) {
	if os.Getenv("GOMAXPROCS") != "" {
		return func() {}
	}
	prev := runtime.GOMAXPROCS(runtime.GOMAXPROCS(0) + 1)
	return func() { runtime.GOMAXPROCS(prev) }
}
