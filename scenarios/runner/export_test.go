package runner

import (
	"context"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/internal/sysmem"
)

// TuneRuntime gives the benchmarks, which build hubs and fleets themselves,
// the runtime settings fleetsim run chooses for a fleet of that size (see
// tuneRuntime in cmd/fleetsim).
func TuneRuntime(devices int) (restore func()) {
	if devices < 5000 {
		return func() {}
	}
	gc, procs := sysmem.TuneGC(), sysmem.TuneProcs()
	return func() {
		procs()
		gc()
	}
}

// JobRows is a job's devices.jobs rows on st, read as a run's report reads
// them.
func JobRows(st *hubjobs.Hub, jobID string) []deviceOutcome {
	rows, _ := stackTarget{st: st}.rows(context.Background(), jobID)
	return rows
}

// JobLatency is the latency summary a report gives for rows.
func JobLatency(rows []deviceOutcome) LatencySummary {
	lat, _, _, _, _ := jobFigures(time.Time{}, rows)
	return lat
}
