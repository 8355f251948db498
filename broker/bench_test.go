package broker

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// fleetIdentities knows every device: all share one key.
type fleetIdentities struct{ key []byte }

func (f fleetIdentities) DeviceCredentials(string) (Credentials, error) {
	return Credentials{PrimaryKey: f.key, Enabled: true}, nil
}

// BenchmarkConnect connects fleets of in-process devices with a minimal raw
// MQTT client (CONNECT, CONNACK, then idle) and reports connects/s and what
// each idle connection costs: heap (HeapInuse after GC), goroutine stacks
// (StackInuse) and goroutines. The client side of each connection is one
// net.Pipe end and no goroutine, so the numbers are the broker's, plus a few
// hundred bytes of pipe.
func BenchmarkConnect(b *testing.B) {
	for _, n := range []int{1_000, 10_000, 100_000} {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			ids := make([]string, n)
			users := make([]string, n)
			tokens := make([]string, n)
			exp := time.Now().Add(time.Hour)
			for i := range n {
				ids[i] = "dev-" + strconv.Itoa(i)
				users[i] = iothub.DeviceUsername(host, ids[i], "bench")
				tokens[i] = iothub.NewSAS(iothub.DeviceResource(host, ids[i]), key1, "", exp)
			}
			var elapsed time.Duration
			var heap, stack, goroutines float64
			for b.Loop() {
				b.StopTimer()
				h, st, g, d := connectFleet(b, ids, users, tokens)
				heap, stack, goroutines = h, st, g
				elapsed += d
				b.StartTimer()
			}
			b.ReportMetric(float64(n*b.N)/elapsed.Seconds(), "connects/s")
			b.ReportMetric(float64(elapsed.Nanoseconds())/float64(n*b.N), "ns/op") // per connect
			b.ReportMetric(heap, "heap-B/conn")
			b.ReportMetric(stack, "stack-B/conn")
			b.ReportMetric(goroutines, "goroutines/conn")
		})
	}
}

// connectFleet starts a broker, connects every device, measures, and stops.
func connectFleet(b *testing.B, ids, users, tokens []string) (heap, stack, goroutines float64, elapsed time.Duration) {
	s, err := New(Config{Hostname: host, Identities: fleetIdentities{key1}})
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			b.Error(err)
		}
	}()
	<-s.Ready()

	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()

	n := len(ids)
	conns := make([]net.Conn, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	var next atomic.Int64
	var failed atomic.Value
	var wg sync.WaitGroup
	start := time.Now()
	for range 2 * runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				c, err := s.DialMemory(ctx)
				if err != nil {
					failed.Store(err)
					return
				}
				conns[i] = c
				code, err := rawConnect(c, bufio.NewReaderSize(c, 16), ids[i], users[i], tokens[i], false)
				if err != nil || code != 0 {
					failed.Store(fmt.Errorf("device %s: code %d, %v", ids[i], code, err))
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed = time.Since(start)
	if err, _ := failed.Load().(error); err != nil {
		b.Fatal(err)
	}
	// CONNACK precedes OnSessionEstablished: wait until every session is live.
	for deadline := time.Now().Add(time.Minute); s.Stats().Connects < int64(n); {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d sessions established", s.Stats().Connects, n)
		}
		runtime.Gosched()
	}
	// Several collections: each may halve the stack of an idle goroutine
	// that uses less than a quarter of it, as a long-running broker's would.
	for range 4 {
		runtime.GC()
	}
	runtime.ReadMemStats(&after)
	g1 := runtime.NumGoroutine()
	heap = float64(int64(after.HeapInuse)-int64(before.HeapInuse)) / float64(n)
	stack = float64(int64(after.StackInuse)-int64(before.StackInuse)) / float64(n)
	goroutines = float64(g1-g0) / float64(n)
	return heap, stack, goroutines, elapsed
}

// deliverRounds is how many messages each device gets per op of
// BenchmarkDeliver: fewer than MaxPendingWrites.
const deliverRounds = 16

// BenchmarkDeliver sends hub messages round-robin to idle in-process devices
// whose client side only reads, and reports deliveries/s.
func BenchmarkDeliver(b *testing.B) {
	for _, n := range []int{1_000, 10_000} {
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			s, err := New(Config{Hostname: host, Identities: fleetIdentities{key1}})
			if err != nil {
				b.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan error, 1)
			go func() { done <- s.Run(ctx) }()
			<-s.Ready()
			var readers sync.WaitGroup
			var received atomic.Int64
			ids := make([]string, n)
			exp := time.Now().Add(time.Hour)
			for i := range n {
				ids[i] = "dev-" + strconv.Itoa(i)
				c, err := s.DialMemory(ctx)
				if err != nil {
					b.Fatal(err)
				}
				r := bufio.NewReader(c)
				code, err := rawConnect(c, r, ids[i], iothub.DeviceUsername(host, ids[i], ""), iothub.NewSAS(iothub.DeviceResource(host, ids[i]), key1, "", exp), true)
				if err != nil || code != 0 {
					b.Fatalf("connect: %d %v", code, err)
				}
				readers.Go(func() {
					for {
						if _, _, err := readPacket(r); err != nil {
							return
						}
						received.Add(1)
					}
				})
			}
			for deadline := time.Now().Add(time.Minute); s.Stats().Connects < int64(n); {
				if time.Now().After(deadline) {
					b.Fatal("sessions not established")
				}
				runtime.Gosched()
			}
			topic := iothub.MethodRequestTopic("m", "1")
			payload := []byte(`{"x":1}`)
			b.ResetTimer()
			start := time.Now()
			sent, tried := 0, 0
			for b.Loop() {
				// One op is a fan-out: rounds messages to every device, so
				// make bench's single iteration measures something.
				for range deliverRounds {
					for _, id := range ids {
						tried++
						if err := s.Deliver(id, topic, payload); err == nil {
							sent++
						}
					}
				}
			}
			for deadline := time.Now().Add(time.Minute); received.Load() < int64(sent); {
				if time.Now().After(deadline) {
					b.Fatalf("received %d of %d", received.Load(), sent)
				}
				runtime.Gosched()
			}
			elapsed := time.Since(start)
			b.StopTimer()
			b.ReportMetric(float64(sent)/elapsed.Seconds(), "deliveries/s")
			b.ReportMetric(float64(tried-sent), "refused")
			cancel()
			if err := <-done; err != nil {
				b.Error(err)
			}
			readers.Wait()
		})
	}
}
