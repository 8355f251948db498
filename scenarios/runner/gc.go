package runner

import (
	"os"
	"runtime/debug"

	"github.com/fleetsim/fleetsim/internal/sysmem"
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
	total := sysmem.Total()
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
