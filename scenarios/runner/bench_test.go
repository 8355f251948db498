package runner_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/devicesim"
	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/internal/iothub"
	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// BenchmarkFleetJobs is the fleet-scale benchmark (make bench): a whole hub
// and N paho devices on the in-process transport, then a method job and a
// twin job over every device. It reports device-ops/s and completion time
// per job, connects/s, and the heap per connected device (broker, registry
// and client side together).
func BenchmarkFleetJobs(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			if testing.Short() && n > 10_000 {
				b.Skip("short mode")
			}
			for b.Loop() {
				benchFleet(b, n)
			}
		})
	}
}

func heap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func benchFleet(b *testing.B, n int) {
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	st, err := runner.NewStack(runner.StackOptions{})
	if err != nil {
		b.Fatal(err)
	}
	hubDone := make(chan error, 1)
	go func() { hubDone <- st.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-hubDone; err != nil {
			b.Errorf("hub: %v", err)
		}
	}()
	<-st.Ready()
	base := heap()

	key := func(id string) []byte { s := sha256.Sum256([]byte(id)); return s[:] }
	id := func(i int) string { return fmt.Sprintf("bench-%06d", i) }
	var ops []registry.ExportImportDevice
	for i := range n {
		k := base64.StdEncoding.EncodeToString(key(id(i)))
		ops = append(ops, registry.ExportImportDevice{ID: id(i), ImportMode: "create", Tags: map[string]any{"i": float64(i)},
			Authentication: &registry.Authentication{Type: "sas", SymmetricKey: registry.SymmetricKey{PrimaryKey: k, SecondaryKey: k}}})
		if len(ops) == 1000 || i == n-1 {
			if _, err := st.Registry.BulkUpdate(ctx, ops); err != nil {
				b.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	behavior := devicesim.Behavior{
		Methods:      map[string]devicesim.MethodBehavior{"ping": {Payload: json.RawMessage(`{"ok":true}`)}},
		Connectivity: devicesim.Connectivity{KeepAlive: -1},
	}
	fleet := devicesim.NewFleet(devicesim.FleetConfig{
		Count: n,
		Generate: func(i int) devicesim.DeviceConfig {
			return devicesim.DeviceConfig{
				Identity:  devicesim.Identity{DeviceID: id(i), Key: key(id(i)), Hostname: "localhost"},
				Transport: devicesim.Transport{Dial: st.Broker.DialMemory},
				Behavior:  behavior,
				Seed:      1,
			}
		},
	})
	fctx, stopFleet := context.WithCancel(ctx)
	fleetDone := make(chan error, 1)
	t0 := time.Now()
	go func() { fleetDone <- fleet.Run(fctx) }()
	defer func() {
		stopFleet()
		<-fleetDone
	}()
	if err := fleet.WaitConnected(ctx, n); err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(n)/time.Since(t0).Seconds(), "connects/s")
	b.ReportMetric(float64(heap()-base)/float64(n), "B/device")
	b.ReportMetric(float64(runtime.NumGoroutine())/float64(n), "goroutines/device")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.StackInuse)/float64(n), "stack-B/device")

	rt := 60
	for _, req := range []hubjobs.JobRequest{
		{JobID: "ping", Type: hubjobs.TypeDeviceMethod, QueryCondition: "*",
			CloudToDeviceMethod: &iothub.MethodRequest{MethodName: "ping", ResponseTimeoutInSeconds: &rt}},
		{JobID: "twin", Type: hubjobs.TypeUpdateTwin, QueryCondition: "*",
			UpdateTwin: json.RawMessage(`{"etag":"*","properties":{"desired":{"interval":30}}}`)},
	} {
		start := time.Now()
		if _, err := st.Jobs.Create(ctx, req); err != nil {
			b.Fatal(err)
		}
		var j hubjobs.Job
		for {
			if j, err = st.Jobs.Get(req.JobID); err != nil {
				b.Fatal(err)
			}
			if j.Status.Terminal() {
				break
			}
			time.Sleep(time.Millisecond)
		}
		took := time.Since(start)
		if s := j.DeviceJobStatistics; j.Status != hubjobs.StatusCompleted || s.SucceededCount != n {
			src, _ := st.Jobs.DeviceJobs()
			causes := map[string]int{}
			src.Scan("", func(_ string, doc map[string]any) bool {
				if e, ok := doc["error"].(map[string]any); ok {
					causes[fmt.Sprint(e["code"], ": ", e["description"])]++
				}
				return true
			})
			b.Fatalf("job %s: %s %+v; failures: %v\nbroker: %+v\nfleet: %+v", req.JobID, j.Status, s, causes, st.Broker.Stats(), fleet.Stats())
		}
		b.ReportMetric(float64(n)/took.Seconds(), req.JobID+"-device-ops/s")
		b.ReportMetric(float64(took.Milliseconds()), req.JobID+"-ms/job")
	}
}
