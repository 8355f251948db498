package runner_test

import (
	"context"
	"flag"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/internal/ceiling"
)

var benchDevices = flag.Int("devices", 0, "run BenchmarkFleetJobs with this many `devices` only (make bench-200k); 0: 1k, 10k and 100k")

// fleetSizes are BenchmarkFleetJobs' fleets.
func fleetSizes() []int {
	if *benchDevices > 0 {
		return []int{*benchDevices}
	}
	return []int{1_000, 10_000, 100_000}
}

// fleetFigures are BenchmarkFleetJobs' figures that have a ceiling.
type fleetFigures struct {
	heap, stack float64 // per connected device
	ping, twin  float64 // device-ops/s; 0 when the job did not run
}

func (f *fleetFigures) ops(job string, perSecond float64) {
	switch job {
	case "ping":
		f.ping = perSecond
	case "twin":
		f.twin = perSecond
	}
}

// reportCeilings measures, in the same process and runtime settings and
// after the fleet has stopped, what paho and mochi alone reach with n
// devices (internal/ceiling), and reports each of fig's figures as a ratio
// to its ceiling: ops/s divided by the ceiling's (1 is as fast as the
// libraries allow), memory per device divided by an idle connection's
// (1 is a device that costs no more than its connection).
func reportCeilings(b *testing.B, n int, fig fleetFigures) {
	// Each ceiling has its own deadline, and one that cannot be measured
	// (at 200k devices the bare libraries may not connect them all in time
	// in a process that has just held the fleet) is logged, so the fleet's
	// figures and the other ceilings are still reported.
	measure := func(name string, f func(ctx context.Context) error) {
		ctx, cancel := context.WithTimeout(b.Context(), 10*time.Minute)
		defer cancel()
		if err := f(ctx); err != nil {
			b.Logf("%s ceiling not measured: %v", name, err)
		}
	}
	if fig.ping > 0 {
		measure("method", func(ctx context.Context) error {
			r, err := ceiling.MethodRoundTrips(ctx, n)
			if err != nil {
				return err
			}
			b.ReportMetric(r.PerSecond(), "ceiling-ping-ops/s")
			b.ReportMetric(fig.ping/r.PerSecond(), "ping-ceiling-ratio")
			return nil
		})
	}
	if fig.twin > 0 {
		measure("twin", func(ctx context.Context) error {
			r, err := ceiling.TwinUpdates(ctx, n)
			if err != nil {
				return err
			}
			b.ReportMetric(r.PerSecond(), "ceiling-twin-ops/s")
			b.ReportMetric(fig.twin/r.PerSecond(), "twin-ceiling-ratio")
			return nil
		})
	}
	measure("idle connection", func(ctx context.Context) error {
		m, err := ceiling.IdleConnections(ctx, n)
		if err != nil {
			return err
		}
		b.ReportMetric(m.HeapBytes+m.StackBytes, "ceiling-B/conn")
		b.ReportMetric((fig.heap+fig.stack)/(m.HeapBytes+m.StackBytes), "memory-ceiling-ratio")
		return nil
	})
}
