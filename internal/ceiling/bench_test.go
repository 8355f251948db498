package ceiling

import (
	"fmt"
	"os"
	"testing"

	"github.com/fleetsim/fleetsim/internal/fleetmem"
	"github.com/fleetsim/fleetsim/internal/sysmem"
)

var sizes = []int{1_000, 10_000, 100_000}

// sized runs f once per fleet size under the runtime settings a scenario
// run of that size gets.
func sized(b *testing.B, f func(b *testing.B, n int)) {
	for _, n := range sizes {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			if testing.Short() && n > 10_000 {
				b.Skip("short mode")
			}
			b.Cleanup(fleetmem.Decide(fleetmem.Fleet{Devices: n}, fleetmem.FromEnv(sysmem.Available(), os.Getenv)).Apply())
			for b.Loop() {
				f(b, n)
			}
		})
	}
}

// BenchmarkMethodRoundTrips is the ceiling of a method job: one round
// trip per device, paho and mochi alone.
func BenchmarkMethodRoundTrips(b *testing.B) {
	sized(b, func(b *testing.B, n int) {
		r, err := MethodRoundTrips(b.Context(), n)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.PerSecond(), "device-ops/s")
	})
}

// BenchmarkTwinUpdates is the ceiling of a twin job: one acknowledged
// desired update (three messages) per device, paho and mochi alone.
func BenchmarkTwinUpdates(b *testing.B) {
	sized(b, func(b *testing.B, n int) {
		r, err := TwinUpdates(b.Context(), n)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(r.PerSecond(), "device-ops/s")
	})
}

// BenchmarkIdleConnection is the ceiling of a device's memory: an idle
// paho client connected to mochi, both ends.
func BenchmarkIdleConnection(b *testing.B) {
	sized(b, func(b *testing.B, n int) {
		m, err := IdleConnections(b.Context(), n)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(m.HeapBytes, "heap-B/conn")
		b.ReportMetric(m.StackBytes, "stack-B/conn")
		b.ReportMetric(m.Goroutines, "goroutines/conn")
	})
}
