package runner

import (
	"context"
	"os"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/internal/fleetmem"
	"github.com/fleetsim/fleetsim/internal/sysmem"
)

// TuneRuntime gives the benchmarks, which build hubs and fleets themselves,
// the runtime settings fleetsim run chooses for a fleet of that size (the
// memory plan of internal/fleetmem; stack shrinking is the GODEBUG the
// benchmark runs with).
func TuneRuntime(devices int) (restore func()) {
	return fleetmem.Decide(fleetmem.Fleet{Devices: devices}, fleetmem.FromEnv(sysmem.Available(), os.Getenv)).Apply()
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
