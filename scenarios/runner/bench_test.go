package runner_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/devicesim"
	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/hubjobs/jobs"
	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/internal/iothub"
	"github.com/fleetsim/fleetsim/internal/sysmem"
	"github.com/fleetsim/fleetsim/scenarios/runner"
)

var (
	jobProfile     = flag.String("jobprofile", "", "write a CPU profile of each of BenchmarkFleetJobs' jobs (not the connects) to `FILE`.JOB")
	benchMemStores = flag.Bool("memstores", false, "keep the hub's stores in memory in BenchmarkFleetJobs (no fsync), to see what persistence costs")
	benchInFlight  = flag.Int("inflight", 0, "the jobs engine's `limit` on device operations at once in BenchmarkFleetJobs (0: its default)")
	benchJobs      = flag.String("jobs", "ping,twin", "the `jobs` BenchmarkFleetJobs runs, in order: ping (a method job), twin (a twin job)")
	benchNoAck     = flag.Bool("noack", false, "BenchmarkFleetJobs' devices apply desired changes without reporting an acknowledgement")
)

// BenchmarkFleetJobs is the fleet-scale benchmark (make bench): a whole hub
// with its stores on disk (every result persisted) and N paho devices on
// the in-process transport, under the runtime settings a scenario run gets; then
// a method job and a twin job over every device. It reports device-ops/s,
// completion time and p50/p99 device latency per job, connects/s, and the
// heap per connected device (broker, registry and client side together).
func BenchmarkFleetJobs(b *testing.B) {
	for _, n := range fleetSizes() {
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

// BenchmarkPacingS1 runs a method job over 150 devices on a hub paced as
// S1 (10 device operations per second) and reports the pace measured from
// the device jobs' start times, and its error against 10 ops/s.
func BenchmarkPacingS1(b *testing.B) {
	const n = 150
	for b.Loop() {
		st, stop := benchStack(b, n, hubjobs.Config{Pacing: "S1"})
		rt := 30
		runJob(b, st, n, jobs.JobRequest{JobID: "paced", Type: jobs.TypeDeviceMethod, QueryCondition: "*",
			CloudToDeviceMethod: &iothub.MethodRequest{MethodName: "ping", ResponseTimeoutInSeconds: &rt}})
		var starts []time.Time
		for _, r := range runner.JobRows(st.Hub, "paced") {
			if !r.Start.IsZero() {
				starts = append(starts, r.Start)
			}
		}
		stop()
		if len(starts) != n {
			b.Fatalf("%d device jobs started, want %d", len(starts), n)
		}
		slices.SortFunc(starts, time.Time.Compare)
		pace := float64(n-1) / starts[n-1].Sub(starts[0]).Seconds()
		b.ReportMetric(pace, "ops/s")
		b.ReportMetric(100*(pace-10)/10, "pace-error-%")
	}
}

func heap() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// benchFleetStack is a running hub with n connected paho devices that
// answer "ping"; stop ends both.
type benchFleetStack struct {
	*hubjobs.Hub
	fleet *devicesim.Fleet
}

// benchStack starts a hub with opts (stores in a temporary directory) and
// n paho devices on the in-process transport, waits until all are
// connected, and reports connects/s. stop ends the fleet, then the hub.
func benchStack(b *testing.B, n int, opts hubjobs.Config) (st benchFleetStack, stop func()) {
	ctx, cancel := context.WithCancel(b.Context())
	if !*benchMemStores {
		opts.DataDir = b.TempDir()
	}
	s, err := hubjobs.New(opts)
	if err != nil {
		b.Fatal(err)
	}
	hubDone := make(chan error, 1)
	go func() { hubDone <- s.Run(ctx) }()
	stopHub := func() {
		cancel()
		if err := <-hubDone; err != nil {
			b.Errorf("hub: %v", err)
		}
	}
	<-s.Ready()

	key := func(id string) []byte { s := sha256.Sum256([]byte(id)); return s[:] }
	id := func(i int) string { return fmt.Sprintf("bench-%06d", i) }
	var ops []registry.ExportImportDevice
	for i := range n {
		k := base64.StdEncoding.EncodeToString(key(id(i)))
		ops = append(ops, registry.ExportImportDevice{ID: id(i), ImportMode: "create", Tags: map[string]any{"i": float64(i)},
			Authentication: &registry.Authentication{Type: "sas", SymmetricKey: registry.SymmetricKey{PrimaryKey: k, SecondaryKey: k}}})
		if len(ops) == 1000 || i == n-1 {
			if _, err := s.Registry.BulkUpdate(ctx, ops); err != nil {
				stopHub()
				b.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	behavior := devicesim.Behavior{
		Methods:      map[string]devicesim.MethodBehavior{"ping": {Payload: json.RawMessage(`{"ok":true}`)}},
		Connectivity: devicesim.Connectivity{KeepAlive: -1},
	}
	if *benchNoAck {
		behavior.Desired.Format = devicesim.AckNone
	}
	fleet := devicesim.NewFleet(devicesim.FleetConfig{
		Count: n,
		Generate: func(i int) devicesim.DeviceConfig {
			return devicesim.DeviceConfig{
				Identity:  devicesim.Identity{DeviceID: id(i), Key: key(id(i)), Hostname: "localhost"},
				Transport: devicesim.Transport{Dial: s.Broker.DialMemory},
				Behavior:  behavior,
				Seed:      1,
			}
		},
	})
	fctx, stopFleet := context.WithCancel(ctx)
	fleetDone := make(chan error, 1)
	t0 := time.Now()
	go func() { fleetDone <- fleet.Run(fctx) }()
	stop = func() {
		stopFleet()
		<-fleetDone
		stopHub()
	}
	if err := fleet.WaitConnected(ctx, n); err != nil {
		stop()
		b.Fatal(err)
	}
	b.ReportMetric(float64(n)/time.Since(t0).Seconds(), "connects/s")
	return benchFleetStack{s, fleet}, stop
}

// runJob creates a job over all n devices, waits for it to end, and fails
// the benchmark, with the failure causes and the broker's and fleet's
// counters, unless every device job succeeded. It returns when the job was
// created and the time from then to its end.
func runJob(b *testing.B, st benchFleetStack, n int, req jobs.JobRequest) (created time.Time, took time.Duration) {
	start := time.Now()
	if _, err := st.Jobs.Create(b.Context(), req); err != nil {
		b.Fatal(err)
	}
	var j jobs.Job
	for {
		var err error
		if j, err = st.Jobs.Get(req.JobID); err != nil {
			b.Fatal(err)
		}
		if j.Status.Terminal() {
			break
		}
		time.Sleep(time.Millisecond)
	}
	took = time.Since(start)
	if s := j.DeviceJobStatistics; j.Status != jobs.StatusCompleted || s.SucceededCount != n {
		causes := map[string]int{}
		st.Jobs.Rows(req.JobID, func(doc map[string]any) bool {
			if e, ok := doc["error"].(map[string]any); ok {
				causes[fmt.Sprint(e["code"], ": ", e["description"])]++
			}
			return true
		})
		b.Fatalf("job %s: %s %+v; failures: %v\nbroker: %+v\nfleet: %+v", req.JobID, j.Status, s, causes, st.Broker.Stats(), st.fleet.Stats())
	}
	return start, took
}

func benchFleet(b *testing.B, n int) {
	defer runner.TuneRuntime(n)()
	base := heap()
	st, stopStack := benchStack(b, n, hubjobs.Config{MaxInFlight: *benchInFlight})
	stop := sync.OnceFunc(stopStack)
	defer stop()
	var fig fleetFigures
	fig.heap = float64(heap()-base) / float64(n)
	b.ReportMetric(fig.heap, "B/device")
	b.ReportMetric(float64(runtime.NumGoroutine())/float64(n), "goroutines/device")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	fig.stack = float64(ms.StackInuse) / float64(n)
	b.ReportMetric(fig.stack, "stack-B/device")
	// The whole process's resident memory (issue 6 sets its budget per
	// device), after the GC above.
	b.ReportMetric(float64(sysmem.RSS())/float64(n), "rss-B/device")

	rt := 60
	for _, req := range []jobs.JobRequest{
		{JobID: "ping", Type: jobs.TypeDeviceMethod, QueryCondition: "*",
			CloudToDeviceMethod: &iothub.MethodRequest{MethodName: "ping", ResponseTimeoutInSeconds: &rt}},
		{JobID: "twin", Type: jobs.TypeUpdateTwin, QueryCondition: "*",
			UpdateTwin: json.RawMessage(`{"etag":"*","properties":{"desired":{"interval":30}}}`)},
	} {
		if !slices.Contains(strings.Split(*benchJobs, ","), req.JobID) {
			continue
		}
		stopProfile := profileJob(b, req.JobID)
		created, took := runJob(b, st, n, req)
		stopProfile()
		fig.ops(req.JobID, float64(n)/took.Seconds())
		b.ReportMetric(float64(n)/took.Seconds(), req.JobID+"-device-ops/s")
		b.ReportMetric(float64(took.Milliseconds()), req.JobID+"-ms/job")
		rows := runner.JobRows(st.Hub, req.JobID)
		lat := runner.JobLatency(rows)
		if lat.Max == 0 {
			b.Fatalf("job %s: no device job latencies", req.JobID)
		}
		ms := func(d runner.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		b.ReportMetric(ms(lat.P50), req.JobID+"-p50-ms")
		b.ReportMetric(ms(lat.P99), req.JobID+"-p99-ms")
		first := rows[0].Start
		for _, r := range rows {
			if r.Start.Before(first) {
				first = r.Start
			}
		}
		b.ReportMetric(ms(runner.Duration(first.Sub(created))), req.JobID+"-first-start-ms")
	}
	// Stacks only grow with shrinking off: what the jobs left behind.
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.StackInuse)/float64(n), "after-jobs-stack-B/device")
	stop()
	reportCeilings(b, n, fig)
}

// profileJob starts a CPU profile of job into -jobprofile's FILE.job, if
// the flag is set, and writes heap profiles to FILE.job.heap0 now and
// FILE.job.heap1 when the returned function stops the CPU profile (their
// difference, with pprof's -base, is what the job allocated). Each heap
// profile runs a GC first, as the runtime publishes allocations at GCs, so
// a profiled run's jobs start on a collected heap.
func profileJob(b *testing.B, job string) (stop func()) {
	if *jobProfile == "" {
		return func() {}
	}
	writeHeap := func(name string) {
		runtime.GC()
		f, err := os.Create(name)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		if err := pprof.Lookup("allocs").WriteTo(f, 0); err != nil {
			b.Fatal(err)
		}
	}
	writeHeap(*jobProfile + "." + job + ".heap0")
	f, err := os.Create(*jobProfile + "." + job)
	if err != nil {
		b.Fatal(err)
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		b.Fatal(err)
	}
	return func() {
		pprof.StopCPUProfile()
		if err := f.Close(); err != nil {
			b.Error(err)
		}
		writeHeap(*jobProfile + "." + job + ".heap1")
	}
}
