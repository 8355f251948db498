package devicesim

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// randomBehavior uses every source of randomness a method call has.
var randomBehavior = Behavior{
	Methods: map[string]MethodBehavior{"op": {
		Latency:             LogNormal{Median: 50 * time.Millisecond, Sigma: 0.8},
		Statuses:            []WeightedStatus{{200, 6}, {500, 3}, {404, 1}},
		NoAnswerProbability: 0.05,
	}},
	Desired:      DesiredBehavior{Delay: Uniform{Min: time.Second, Max: 5 * time.Second}, FailProbability: 0.3},
	Connectivity: Connectivity{StartSpread: 10 * time.Second},
}

// seededRun runs three devices and records, per call, the status and the
// virtual latency (or -1 for no answer), plus the connect offsets.
func seededRun(t *testing.T, seed int64) []string {
	var out []string
	synctest.Test(t, func(t *testing.T) {
		hub, _ := newTestHub(t, false)
		t0 := time.Now()
		var devs []*Device
		for i := range 3 {
			cfg := hub.config(fmt.Sprintf("dev-%d", i), randomBehavior)
			cfg.Seed = seed
			d := NewDevice(cfg)
			devs = append(devs, d)
			runDevice(t, d)
		}
		for _, d := range devs {
			waitUntil(t, "connect", d.Connected)
			out = append(out, fmt.Sprintf("%s connected at %s", d.ID(), hub.connectsOf(d.ID())[0].at.Sub(t0)))
		}
		for i := range 100 {
			id := devs[i%3].ID()
			start := time.Now()
			a, ok, err := hub.call(id, "op", nil, 10*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				out = append(out, id+" -")
				continue
			}
			out = append(out, fmt.Sprintf("%s %d %s", id, a.status, time.Since(start)))
		}
		for _, d := range devs {
			if _, err := hub.patchDesired(d.ID(), map[string]any{"k": 1}); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(10 * time.Second)
		for _, d := range devs {
			for _, p := range hub.reportedOf(d.ID()) {
				out = append(out, fmt.Sprintf("%s reported %v", d.ID(), p))
			}
		}
	})
	return out
}

func TestSameSeedSameBehaviour(t *testing.T) {
	a, b := seededRun(t, 7), seededRun(t, 7)
	if !slices.Equal(a, b) {
		for i := range min(len(a), len(b)) {
			if a[i] != b[i] {
				t.Fatalf("runs differ at %d: %q vs %q", i, a[i], b[i])
			}
		}
		t.Fatalf("runs differ in length: %d vs %d", len(a), len(b))
	}
	if c := seededRun(t, 8); slices.Equal(a, c) {
		t.Error("a different seed gave the same run")
	}
}

func TestFleetConnectRateAndStats(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, _ := newTestHub(t, false)
		const n = 20
		b := Behavior{Methods: map[string]MethodBehavior{"*": {Statuses: []WeightedStatus{{202, 1}}}}}
		f := NewFleet(FleetConfig{
			Count:       n,
			Generate:    func(i int) DeviceConfig { return hub.config(fmt.Sprintf("fleet-%02d", i), b) },
			ConnectRate: 10,
		})
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		t0 := time.Now()
		if at := f.AllConnectedAt(); !at.IsZero() {
			t.Errorf("all connected at %s before the fleet ran", at)
		}
		go func() { done <- f.Run(ctx) }()
		if err := f.WaitConnected(ctx, n); err != nil {
			t.Fatal(err)
		}
		// The last of 20 connects at 10 per second came 1.9 s after the start.
		if at := f.AllConnectedAt().Sub(t0); at != 1900*time.Millisecond {
			t.Errorf("all connected after %s, want 1.9s", at)
		}
		var times []time.Duration
		for i := range n {
			times = append(times, hub.connectsOf(fmt.Sprintf("fleet-%02d", i))[0].at.Sub(t0))
		}
		slices.Sort(times)
		for i, at := range times {
			if want := time.Duration(i) * 100 * time.Millisecond; at != want {
				t.Errorf("connect %d at %s, want %s (10 per second)", i, at, want)
			}
		}
		var wg sync.WaitGroup
		for _, d := range f.Devices() {
			wg.Go(func() {
				if a, ok, err := hub.call(d.ID(), "x", nil, time.Minute); err != nil || !ok || a.status != 202 {
					t.Errorf("%s: %d ok=%v err=%v", d.ID(), a.status, ok, err)
				}
			})
		}
		wg.Wait()
		waitUntil(t, "answers counted", func() bool { s := f.Stats(); return s.MethodAnswers == n && s.TwinGets == n })
		s := f.Stats()
		if s.Devices != n || s.Connected != n || s.Connects != n || s.MethodsByStatus[202] != n || s.TwinGets != n {
			t.Errorf("stats = %+v", s)
		}
		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if s := f.Stats(); s.Connected != 0 || s.Disconnects != n || f.Connected() != 0 {
			t.Errorf("after stop: %+v", s)
		}
		if err := f.Run(context.Background()); err == nil {
			t.Error("second Run should fail")
		}
	})
}

func TestFleetReadyAndConfigErrors(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, _ := newTestHub(t, false)
		bad := hub.config("bad", Behavior{})
		bad.Identity.Key = nil
		f := NewFleet(FleetConfig{Devices: []DeviceConfig{hub.config("ok", Behavior{}), bad}})
		if err := f.Run(context.Background()); err == nil {
			t.Fatal("Run accepted a device without a key")
		}

		f = NewFleet(FleetConfig{Devices: []DeviceConfig{hub.config("a", Behavior{}), hub.config("b", Behavior{})}})
		ready := f.Ready(2)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- f.Run(ctx) }()
		<-ready
		select {
		case <-f.Ready(1):
		default:
			t.Error("Ready(1) not closed with 2 connected")
		}
		cancel()
		<-done
	})
}

func TestDeviceRunTwiceAndBadConfig(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, _ := newTestHub(t, false)
		d := NewDevice(hub.config("dev-1", Behavior{}))
		runDevice(t, d)
		waitUntil(t, "connect", d.Connected)
		if err := d.Run(context.Background()); err == nil {
			t.Error("second Run should fail")
		}
		if err := NewDevice(DeviceConfig{}).Run(context.Background()); err == nil {
			t.Error("empty config should fail")
		}
	})
}

// TestConnectRetry: a refused CONNECT (wrong key) is retried with backoff
// and counted; a device whose broker goes away stops cleanly.
func TestConnectRetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, _ := newTestHub(t, false)
		cfg := hub.config("dev-1", Behavior{Connectivity: Connectivity{Backoff: Backoff{Initial: time.Second, Max: 4 * time.Second}}})
		cfg.Identity.Key = []byte("wrong")
		events := make(chan Event, 100)
		cfg.Events = events
		d := NewDevice(cfg)
		stop := runDevice(t, d)
		time.Sleep(time.Minute)
		stop()
		s := d.Stats()
		// Waits are uniform in [0, min(4s, 1s·2^n)]: at least 60/4 attempts.
		if s.ConnectFailures < 15 || s.Connects != 0 {
			t.Errorf("stats = %+v", s.Counters)
		}
		if ev := <-events; ev.Kind != EventConnectFailed || ev.DeviceID != "dev-1" {
			t.Errorf("first event %+v", ev)
		}
	})
}

func TestTCPLoopback(t *testing.T) {
	hub, addr := newTestHub(t, true)
	cfg := hub.config("tcp-1", Behavior{Methods: map[string]MethodBehavior{"*": {}}})
	cfg.Transport = Transport{BrokerURL: "tcp://" + addr}
	d := NewDevice(cfg)
	stop := runDevice(t, d)
	waitUntil(t, "twin GET over TCP", func() bool { return d.Stats().TwinGets == 1 })
	a, ok, err := hub.call("tcp-1", "ping", nil, 10*time.Second)
	if err != nil || !ok || a.status != 200 {
		t.Fatalf("call over TCP: %d ok=%v err=%v", a.status, ok, err)
	}
	// A crash (drop without DISCONNECT) over TCP must be noticed by paho.
	cfg2 := hub.config("tcp-2", Behavior{Methods: map[string]MethodBehavior{"crash": {DisconnectProbability: 1}}, Connectivity: Connectivity{Backoff: Backoff{Initial: time.Millisecond, Max: time.Millisecond}}})
	cfg2.Transport = Transport{BrokerURL: "tcp://" + addr}
	d2 := NewDevice(cfg2)
	stop2 := runDevice(t, d2)
	waitUntil(t, "connect", d2.Connected)
	if _, err := hub.startCall("tcp-2", "crash", nil); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "reconnect over TCP", func() bool { return d2.Stats().Connects == 2 && d2.Connected() })
	stop()
	stop2()
	if d.Connected() || d2.Connected() {
		t.Error("still connected after stop")
	}
}
