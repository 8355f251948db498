package runner

import (
	"context"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs"
)

// TuneRuntime is tuneRuntime for the benchmarks, which build stacks and
// fleets themselves and must run under the runtime settings a scenario run
// gets.
func TuneRuntime(devices int) (restore func()) { return tuneRuntime(devices) }

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
