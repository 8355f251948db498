package registry_test

import (
	"fmt"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/hubjobs/regstore"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

var key = registry.Authentication{SymmetricKey: registry.SymmetricKey{
	PrimaryKey:   "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=",
	SecondaryKey: "ZmVkY2JhOTg3NjU0MzIxMGZlZGNiYTk4NzY1NDMyMTA=",
}}

func populate(b *testing.B, r *registry.Registry, n int) {
	b.Helper()
	for i := range n {
		if _, err := r.CreateDevice(ctx, registry.Device{DeviceID: fmt.Sprintf("dev-%06d", i), Authentication: key}); err != nil {
			b.Fatal(err)
		}
	}
}

func benchRegistry(b *testing.B, persistent bool, n int, link registry.DeviceLink) *registry.Registry {
	b.Helper()
	var st registry.Persistence
	if persistent {
		s, err := regstore.Open(filepath.Join(b.TempDir(), "r.db"))
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { s.Close() })
		st = s
	}
	r, err := registry.New(registry.Options{Store: st, Link: link})
	if err != nil {
		b.Fatal(err)
	}
	run(b, r)
	if persistent {
		// Create in bulk so that setup shares commits.
		for i := 0; i < n; i += 100 {
			ops := make([]registry.ExportImportDevice, 0, 100)
			for j := i; j < min(i+100, n); j++ {
				ops = append(ops, registry.ExportImportDevice{ID: fmt.Sprintf("dev-%06d", j), ImportMode: "create", Authentication: &key})
			}
			if res, err := r.BulkUpdate(ctx, ops); err != nil || !res.IsSuccessful {
				b.Fatal(res, err)
			}
		}
	} else {
		populate(b, r, n)
	}
	return r
}

// BenchmarkTwinRead measures GET /twins/{id} in the registry.
func BenchmarkTwinRead(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			r := benchRegistry(b, false, n, nil)
			var next atomic.Int64
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1)
					if _, err := r.GetTwin(fmt.Sprintf("dev-%06d", i%int64(n))); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "reads/s")
		})
	}
}

// BenchmarkTwinPatch measures PATCH /twins/{id} (a desired change) in
// memory and written through to bbolt, one caller at a time and with 64
// concurrent callers, whose writes share commits.
func BenchmarkTwinPatch(b *testing.B) {
	const n = 10_000
	patch := []byte(`{"properties":{"desired":{"rate":5,"mode":"eco"}}}`)
	for _, mode := range []struct {
		name       string
		persistent bool
	}{{"memory", false}, {"bbolt", true}} {
		for _, callers := range []int{1, 64} {
			b.Run(fmt.Sprintf("%s/callers=%d", mode.name, callers), func(b *testing.B) {
				r := benchRegistry(b, mode.persistent, n, nil)
				var next atomic.Int64
				run := func(pb *testing.PB) {
					for pb.Next() {
						i := next.Add(1)
						if _, err := r.PatchTwin(ctx, fmt.Sprintf("dev-%06d", i%n), patch, "*"); err != nil {
							b.Error(err)
							return
						}
					}
				}
				if callers == 1 {
					for b.Loop() {
						i := next.Add(1)
						if _, err := r.PatchTwin(ctx, fmt.Sprintf("dev-%06d", i%n), patch, "*"); err != nil {
							b.Fatal(err)
						}
					}
				} else {
					b.SetParallelism(max(1, callers/runtime.GOMAXPROCS(0)))
					b.ResetTimer()
					b.RunParallel(run)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "patches/s")
			})
		}
	}
}

// BenchmarkMemoryPerDevice reports the heap one registered device costs,
// without and with its cached query document.
func BenchmarkMemoryPerDevice(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			var perDevice, withDocs float64
			for b.Loop() {
				before := heap()
				r, err := registry.New(registry.Options{})
				if err != nil {
					b.Fatal(err)
				}
				populate(b, r, n)
				after := heap()
				r.Scan("", func(string, map[string]any) bool { return true })
				docs := heap()
				perDevice = float64(after-before) / float64(n)
				withDocs = float64(docs-before) / float64(n)
				r.Close()
				runtime.KeepAlive(r)
			}
			b.ReportMetric(perDevice, "bytes/device")
			b.ReportMetric(withDocs, "bytes/device-with-query-doc")
		})
	}
}

func heap() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// countingLink counts the 204 answers devices get; round starts a count.
type countingLink struct {
	acks atomic.Int64
	want int64
	done chan struct{}
}

// round starts counting want answers and returns what closes when they came.
func (l *countingLink) round(want int64) <-chan struct{} {
	l.acks.Store(0)
	l.want, l.done = want, make(chan struct{})
	return l.done
}

func (l *countingLink) Deliver(_, topic string, _ []byte) error {
	if strings.Contains(topic, "/res/204/") && l.acks.Add(1) == l.want {
		close(l.done)
	}
	return nil
}
func (*countingLink) Disconnect(string) {}

// BenchmarkReportedPatch measures reported-properties patches from 1,000
// devices over MQTT, acknowledged once durable in bbolt: each device's
// connection goroutine only queues, and the committer groups the writes.
func BenchmarkReportedPatch(b *testing.B) {
	const devices = 1000
	l := &countingLink{}
	r := benchRegistry(b, true, devices, l)
	topic := iothub.DeviceTopic{Kind: iothub.KindTwinReported, RequestID: "1"}
	for b.Loop() {
		done := l.round(devices)
		for i := range devices {
			r.DevicePublished(fmt.Sprintf("dev-%06d", i), topic, []byte(`{"battery":80,"fw":{"version":"1.2.3"}}`))
		}
		<-done
	}
	b.ReportMetric(float64(b.N*devices)/b.Elapsed().Seconds(), "acked-patches/s")
}
