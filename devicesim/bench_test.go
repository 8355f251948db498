package devicesim

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/internal/ceiling"
	"github.com/fleetsim/fleetsim/internal/fleetmem"
	"github.com/fleetsim/fleetsim/internal/iothub"
	"github.com/fleetsim/fleetsim/internal/sysmem"
)

// benchFleet starts n devices on a fresh hub with a shared key and waits
// until all are connected; it returns the fleet, the hub and a stop func.
func benchFleet(b *testing.B, n int, behavior Behavior) (*Fleet, *testHub, time.Duration, func()) {
	b.Helper()
	hub, _ := newTestHub(b, false)
	hub.sharedKey = []byte("bench-shared-key-0123456789abcdef")
	f := NewFleet(FleetConfig{
		Count: n,
		Generate: func(i int) DeviceConfig {
			return DeviceConfig{
				Identity:  Identity{DeviceID: "bench-" + strconv.Itoa(i), Key: hub.sharedKey, Hostname: hub.host},
				Transport: Transport{Dial: hub.mem.Dial},
				Behavior:  behavior,
			}
		},
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- f.Run(ctx) }()
	if p := os.Getenv("DEVICESIM_GOROUTINES"); p != "" {
		time.AfterFunc(2*time.Second, func() {
			f, _ := os.Create(p)
			defer f.Close()
			_ = pprof.Lookup("goroutine").WriteTo(f, 1)
		})
	}
	wctx, wcancel := context.WithTimeout(ctx, 5*time.Minute)
	defer wcancel()
	if err := f.WaitConnected(wctx, n); err != nil {
		cancel()
		<-done
		b.Fatal(err)
	}
	took := time.Since(start)
	return f, hub, took, func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}
}

// benchBehavior is a device that answers every method at once.
var benchBehavior = Behavior{
	Methods:      map[string]MethodBehavior{"*": {}},
	Connectivity: Connectivity{KeepAlive: -1},
}

var benchSizes = []int{1000, 10000, 100000}

// tuneGC gives the benchmark the GC settings a scenario run of n devices
// gets (its memory plan, without the extra P).
func tuneGC(b *testing.B, n int) {
	p := fleetmem.Decide(fleetmem.Fleet{Devices: n}, fleetmem.FromEnv(sysmem.Available(), os.Getenv))
	p.Procs = 0
	b.Cleanup(p.Apply())
}

// BenchmarkConnect connects a fleet in process to a tuned mochi
// (MaximumClientWritesPending 64) and reports connect rate, memory and
// goroutines per device, broker included.
func BenchmarkConnect(b *testing.B) {
	for _, n := range benchSizes {
		for _, keepAlive := range []bool{false, true} {
			if keepAlive && n != 10000 {
				continue
			}
			name := fmt.Sprintf("devices=%d", n)
			if keepAlive {
				name += "/keepalive=180s"
			}
			b.Run(name, func(b *testing.B) {
				if testing.Short() && n > 10000 {
					b.Skip("short")
				}
				tuneGC(b, n)
				beh := benchBehavior
				if keepAlive {
					beh.Connectivity.KeepAlive = 0
				}
				for range b.N {
					runtime.GC()
					debug.FreeOSMemory()
					g0, heap0, rss0, st0 := runtime.NumGoroutine(), heapInuse(), sysmem.RSS(), stackInuse()
					f, _, took, stop := benchFleet(b, n, beh)
					// Each GC halves stacks that use under a quarter of
					// their size; settle before measuring.
					for range 4 {
						runtime.GC()
					}
					debug.FreeOSMemory()
					g1, heap1, rss1, st1 := runtime.NumGoroutine(), heapInuse(), sysmem.RSS(), stackInuse()
					if p := os.Getenv("DEVICESIM_HEAPPROFILE"); p != "" {
						writeHeapProfile(b, p)
					}
					stop()
					b.ReportMetric(float64(n)/took.Seconds(), "connects/s")
					b.ReportMetric(took.Seconds(), "s-to-connect")
					b.ReportMetric(float64(heap1-heap0)/float64(n), "heap-B/device")
					b.ReportMetric(float64(rss1-rss0)/float64(n), "rss-B/device")
					b.ReportMetric(float64(st1-st0)/float64(n), "stack-B/device")
					b.ReportMetric(float64(g1-g0)/float64(n), "goroutines/device")
					b.ReportMetric(float64(sysmem.PeakRSS())/(1<<20), "peak-rss-MiB")
					b.ReportMetric(float64(f.Stats().ConnectFailures), "connect-failures")
					if !keepAlive {
						reportCeiling(b, "ceiling-B/conn", float64(heap1-heap0)/float64(n), func(ctx context.Context) (float64, error) {
							m, err := ceiling.IdleConnections(ctx, n)
							return m.HeapBytes + m.StackBytes, err
						})
					}
				}
			})
		}
	}
}

// BenchmarkMethodRoundTrip sends one method call to every device of a
// connected fleet per round, at most 1,000 outstanding, and reports
// device-ops/s (answered calls per second).
func BenchmarkMethodRoundTrip(b *testing.B) {
	for _, n := range benchSizes[:2] {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			tuneGC(b, n)
			f, hub, _, stopFleet := benchFleet(b, n, benchBehavior)
			stop := sync.OnceFunc(stopFleet)
			defer stop()
			devs := f.Devices()
			const window = 1000
			sem := make(chan struct{}, window)
			var wg sync.WaitGroup
			var statusMu sync.Mutex
			bad := 0
			hub.onAnswer = func(_, _ string, status int) {
				if status != 200 {
					statusMu.Lock()
					bad++
					statusMu.Unlock()
				}
				<-sem
				wg.Done()
			}
			rid := 0
			b.ResetTimer()
			start := time.Now()
			for range b.N {
				for _, d := range devs {
					sem <- struct{}{}
					wg.Add(1)
					rid++
					if err := hub.send(d.ID(), iothub.FilterMethods, iothub.MethodRequestTopic("op", strconv.Itoa(rid)), []byte("null")); err != nil {
						b.Fatal(err)
					}
				}
				wg.Wait()
			}
			elapsed := time.Since(start)
			b.StopTimer()
			if bad > 0 {
				b.Errorf("%d answers were not 200", bad)
			}
			b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "device-ops/s")
			stop()
			reportCeiling(b, "ceiling-ops/s", float64(n*b.N)/elapsed.Seconds(), func(ctx context.Context) (float64, error) {
				r, err := ceiling.MethodRoundTrips(ctx, n)
				return r.PerSecond(), err
			})
		})
	}
}

func heapInuse() int64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapInuse + m.StackInuse)
}

func stackInuse() int64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.StackInuse)
}

func writeHeapProfile(b *testing.B, path string) {
	f, err := os.Create(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		b.Fatal(err)
	}
}

// reportCeiling measures, in the same process and runtime settings, what
// paho and mochi alone reach (internal/ceiling), reports it as unit and
// figure divided by it as ceiling-ratio.
func reportCeiling(b *testing.B, unit string, figure float64, measure func(context.Context) (float64, error)) {
	ctx, cancel := context.WithTimeout(b.Context(), 10*time.Minute)
	defer cancel()
	c, err := measure(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(c, unit)
	b.ReportMetric(figure/c, "ceiling-ratio")
}
