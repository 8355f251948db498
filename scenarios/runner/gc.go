package runner

import (
	"bufio"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// tuneGC prepares the runtime for a large fleet. Mochi's per-connection
// outbound queue is kept small to save memory, and PERFORMANCE.md measured
// that this halves throughput unless the GC runs less often: so raise GOGC and
// let a memory limit at 75 % of the machine's RAM keep the heap bounded
// instead. Small fleets keep the defaults. It returns a function that restores
// the previous settings.
func tuneGC(devices int) (restore func()) {
	if devices < 5000 || os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return func() {}
	}
	total := totalMemory()
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

// totalMemory reads MemTotal from /proc/meminfo; 0 when unknown.
func totalMemory() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}
