package console_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/devicesim"
	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/hubjobs/jobs"
	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/internal/iothub"
	"github.com/fleetsim/fleetsim/internal/testkit"
)

// benchDevices is the fleet of BenchmarkConsoleFigures.
var (
	benchDevices = flag.Int("console.devices", 1000, "devices connected in BenchmarkConsoleFigures")
	benchRounds  = flag.Int("console.rounds", 3, "jobs with and without a console in BenchmarkConsoleFigures")
)

// BenchmarkConsoleFigures measures the console's figures the README gives,
// with -console.devices devices connected over the in-process transport:
//
//   - first-load: the bytes and time of a signed-in browser's first
//     requests (the page, its session, the grid's cells), and the bytes of
//     the page's scripts and style (served once, uncompressed);
//   - live-bytes and cells-bytes: one live update of the event stream, and
//     the grid's message when it changed;
//   - cpu-ms: the process's CPU time (getrusage) over the same method job on
//     every device, without and then with one console's event stream open
//     (after a warm-up job, -console.rounds each, alternating), and their
//     ratio. The fleet runs in the same process, so the ratio is of the hub
//     and fleet together; the difference is the console's;
//   - idle-cpu-ms/s: the process's CPU time a second with no job running,
//     without and with a console open: the console's own steady cost.
//
// Run it once: go test -run '^$' -bench ConsoleFigures -benchtime 1x ./hubjobs/console/ -console.devices 10000
func BenchmarkConsoleFigures(b *testing.B) {
	n := *benchDevices
	h := testkit.StartHub(b, testkit.HubOptions{})
	benchFleet(b, h, n)
	ep := h.Endpoints()
	base := strings.TrimSuffix(ep.ConsoleURL, "/")
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer hc.CloseIdleConnections()
	get := func(path string) (int, time.Duration) {
		start := time.Now()
		resp, err := hc.Get(base + path)
		if err != nil {
			b.Fatal(err)
		}
		defer resp.Body.Close()
		nb, _ := io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("GET %s: %d", path, resp.StatusCode)
		}
		return int(nb), time.Since(start)
	}
	get(strings.TrimPrefix(ep.ConsoleLoginURL, base))

	for b.Loop() {
		var bytes int
		var took time.Duration
		for _, p := range []string{"/", "/console/api/session", "/console/api/fleet/cells"} {
			nb, d := get(p)
			bytes, took = bytes+nb, took+d
			if p == "/console/api/fleet/cells" {
				b.ReportMetric(float64(nb), "cells-load-bytes")
				b.ReportMetric(float64(d.Microseconds())/1000, "cells-load-ms")
			}
		}
		b.ReportMetric(float64(bytes), "first-load-bytes")
		assets := 0
		for _, p := range []string{"/console/assets/app.js", "/console/assets/scenario.js", "/console/assets/app.css"} {
			nb, _ := get(p)
			assets += nb
		}
		b.ReportMetric(float64(assets), "assets-bytes")
		b.ReportMetric(float64(took.Microseconds())/1000, "first-load-ms")
	}

	// One live update, and the grid's message, from an open stream.
	ctx, cancel := context.WithCancel(b.Context())
	defer cancel()
	sizes := openStream(ctx, b, hc, base)
	live, cells := 0, 0
	for live == 0 || cells == 0 {
		ev := <-sizes
		switch ev.name {
		case "live":
			live = ev.bytes
		case "cells":
			cells = ev.bytes
		}
	}
	b.ReportMetric(float64(live), "live-bytes")
	b.ReportMetric(float64(cells), "cells-bytes")
	cancel()
	for range sizes {
	}

	// The same job without and with a console open: a warm-up job, then
	// rounds alternating, so that warming up and drift fall on both sides.
	jobCPU(b, h, "warm-up", n)
	var without, with time.Duration
	var streamed int
	for r := range *benchRounds {
		without += jobCPU(b, h, fmt.Sprintf("cpu-without-%d", r), n)
		ctx, cancel := context.WithCancel(b.Context())
		sizes := openStream(ctx, b, hc, base)
		var wg sync.WaitGroup
		wg.Go(func() {
			for ev := range sizes {
				streamed += ev.bytes
			}
		})
		with += jobCPU(b, h, fmt.Sprintf("cpu-with-%d", r), n)
		cancel()
		wg.Wait()
	}
	// A quiet hub: the console's own cost a second, with no job running.
	idle := func(watch bool) time.Duration {
		ctx, cancel := context.WithCancel(b.Context())
		defer cancel()
		if watch {
			sizes := openStream(ctx, b, hc, base)
			defer func() {
				cancel()
				for range sizes {
				}
			}()
			<-sizes
		}
		runtime.GC()
		start := cpuTime(b)
		time.Sleep(3 * time.Second)
		return (cpuTime(b) - start) / 3
	}
	idleWithout, idleWith := idle(false), idle(true)
	b.ReportMetric(float64(idleWithout.Microseconds())/1000, "idle-cpu-ms/s-without")
	b.ReportMetric(float64(idleWith.Microseconds())/1000, "idle-cpu-ms/s-with")
	b.ReportMetric(float64(without.Milliseconds()), "cpu-ms-without")
	b.ReportMetric(float64(with.Milliseconds()), "cpu-ms-with")
	b.ReportMetric(float64(with)/float64(without), "cpu-ratio")
	b.Logf("%d devices: job CPU %v without a console, %v with one (%d bytes streamed)", n, without, with, streamed)
}

type eventSize struct {
	name  string
	bytes int // the event's data
}

// openStream opens the console's event stream and sends the size of each
// event until ctx ends; the channel closes when the stream does.
func openStream(ctx context.Context, b *testing.B, hc *http.Client, base string) <-chan eventSize {
	req, _ := http.NewRequestWithContext(ctx, "GET", base+"/console/api/events", nil)
	resp, err := hc.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	out := make(chan eventSize, 64)
	go func() {
		defer close(out)
		defer resp.Body.Close()
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 4<<20), 4<<20)
		name := ""
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				name = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				select {
				case out <- eventSize{name, len(line) - len("data: ")}:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out
}

// jobCPU runs a ping job over the fleet and returns the process's CPU time
// (user and system) from its creation to its end.
func jobCPU(b *testing.B, h *hubjobs.Hub, id string, n int) time.Duration {
	runtime.GC() // the last job's garbage is not this one's
	start, began := cpuTime(b), time.Now()
	tmo := 30
	if _, err := h.CreateJob(b.Context(), jobs.JobRequest{JobID: id, Type: jobs.TypeDeviceMethod, QueryCondition: "*",
		CloudToDeviceMethod: &iothub.MethodRequest{MethodName: "ping", Payload: json.RawMessage(`{}`), ResponseTimeoutInSeconds: &tmo}}); err != nil {
		b.Fatal(err)
	}
	testkit.Eventually(b, 10*time.Minute, func() bool {
		j, err := h.Job(id)
		return err == nil && j.Status.Terminal()
	}, "job %s ends", id)
	j, _ := h.Job(id)
	if j.DeviceJobStatistics.SucceededCount != n {
		b.Fatalf("job %s: %+v", id, j.DeviceJobStatistics)
	}
	cpu := cpuTime(b) - start
	b.Logf("job %s: %d devices in %v, %v CPU", id, n, time.Since(began).Round(time.Millisecond), cpu.Round(time.Millisecond))
	return cpu
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchFleet registers n devices and connects them in process.
func benchFleet(b *testing.B, h *hubjobs.Hub, n int) {
	id := func(i int) string { return fmt.Sprintf("bench-%06d", i) }
	key := func(i int) []byte { return []byte(fmt.Sprintf("key-of-bench-device-%06d-0123456789", i)) }
	var ops []registry.ExportImportDevice
	for i := range n {
		k := base64.StdEncoding.EncodeToString(key(i))
		ops = append(ops, registry.ExportImportDevice{ID: id(i), ImportMode: "create",
			Authentication: &registry.Authentication{Type: "sas", SymmetricKey: registry.SymmetricKey{PrimaryKey: k, SecondaryKey: k}}})
		if len(ops) == 100 || i == n-1 {
			if _, err := h.BulkUpdate(b.Context(), ops); err != nil {
				b.Fatal(err)
			}
			ops = ops[:0]
		}
	}
	behavior := devicesim.Behavior{Methods: map[string]devicesim.MethodBehavior{"ping": {Payload: json.RawMessage(`{"pong":1}`)}}}
	fleet := devicesim.NewFleet(devicesim.FleetConfig{Count: n, Generate: func(i int) devicesim.DeviceConfig {
		return devicesim.DeviceConfig{
			Identity:  devicesim.Identity{DeviceID: id(i), Key: key(i), Hostname: h.Hostname()},
			Transport: devicesim.Transport{Dial: h.DialDevice},
			Behavior:  behavior,
		}
	}})
	fctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fleet.Run(fctx) }()
	b.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			b.Errorf("fleet: %v", err)
		}
	})
	wctx, cancel := context.WithTimeout(b.Context(), 10*time.Minute)
	defer cancel()
	if err := fleet.WaitConnected(wctx, n); err != nil {
		b.Fatal(err)
	}
}
