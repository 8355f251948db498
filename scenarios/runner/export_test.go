package runner

import (
	"context"
	"time"
)

// TuneGC is tuneGC for the benchmarks, which build stacks and fleets
// themselves and must run under the GC settings a scenario run gets.
func TuneGC(devices int) (restore func()) { return tuneGC(devices) }

// JobRows is a job's devices.jobs rows on st, read as a run's report reads
// them.
func JobRows(st *Stack, jobID string) []deviceOutcome {
	rows, _ := stackTarget{st: st}.rows(context.Background(), jobID)
	return rows
}

// JobLatency is the latency summary a report gives for rows.
func JobLatency(rows []deviceOutcome) LatencySummary {
	lat, _, _, _, _ := jobFigures(time.Time{}, rows)
	return lat
}
