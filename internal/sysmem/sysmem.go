// Package sysmem reads the machine's and the process's memory from /proc,
// and sizes the Go runtime's garbage collection to a large fleet with it.
package sysmem

import (
	"bufio"
	"os"
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

// TuneGC sets the runtime up for a large fleet: PERFORMANCE.md measured that
// mochi's small per-connection queues halve throughput unless the GC runs
// less often, so GOGC goes to 400 and a memory limit at 75 % of the machine
// keeps the heap bounded instead. It leaves the runtime alone when GOGC or
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
