package devicesim

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"
)

// FleetConfig configures a fleet. Give either Devices or Count with Generate
// (which builds device i on demand, so 100k devices need no config slice).
type FleetConfig struct {
	Devices  []DeviceConfig
	Count    int
	Generate func(i int) DeviceConfig
	// ConnectRate caps connect attempts (first connects and reconnects) per
	// second across the fleet; 0 is unlimited, a connect storm.
	ConnectRate float64
	// Logger gets fleet-level lines; each device logs to its own
	// DeviceConfig.Logger (set it in Generate).
	Logger zerolog.Logger
	// Events is the default event channel for devices without one.
	Events chan<- Event
}

// Fleet runs many devices on one shared scheduler.
type Fleet struct {
	cfg     FleetConfig
	sched   *Scheduler
	lim     *connectLimiter
	devices []*Device
	started atomic.Bool

	connected   atomic.Int64
	allAt       atomic.Int64 // unix nanoseconds when every device was first connected at once
	outstanding atomic.Int64 // device-side work started and not finished, see Outstanding
	waitMu      sync.Mutex
	waiters     []readyWaiter
	hasWait     atomic.Bool
}

type readyWaiter struct {
	n  int64
	ch chan struct{}
}

// NewFleet builds the fleet's devices; nothing connects until Run.
func NewFleet(cfg FleetConfig) *Fleet {
	f := &Fleet{cfg: cfg}
	f.sched = NewScheduler()
	if cfg.ConnectRate > 0 {
		f.lim = &connectLimiter{interval: time.Duration(float64(time.Second) / cfg.ConnectRate)}
	}
	n := len(cfg.Devices)
	if n == 0 && cfg.Generate != nil {
		n = cfg.Count
	}
	f.devices = make([]*Device, n)
	for i := range n {
		var dc DeviceConfig
		if cfg.Devices != nil {
			dc = cfg.Devices[i]
		} else {
			dc = cfg.Generate(i)
		}
		if dc.Events == nil {
			dc.Events = cfg.Events
		}
		d := &Device{id: dc.Identity.DeviceID, cfg: &dc, sched: f.sched, lim: f.lim, fleet: f}
		d.init()
		f.devices[i] = d
	}
	return f
}

// Devices returns the fleet's devices in configuration order.
func (f *Fleet) Devices() []*Device { return append([]*Device(nil), f.devices...) }

// Len returns the number of devices.
func (f *Fleet) Len() int { return len(f.devices) }

// Run starts every device and the shared scheduler in one errgroup and
// returns when ctx ends and every device has disconnected and finished. It
// returns an error wrapping ErrConfig (before anything starts) or
// ErrAlreadyRunning.
func (f *Fleet) Run(ctx context.Context) error {
	if !f.started.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	var errs []error
	for _, d := range f.devices {
		if err := d.validate(); err != nil {
			errs = append(errs, err)
			if len(errs) == 10 {
				errs = append(errs, errors.New("(more devices not checked)"))
				break
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		f.sched.Run(gctx)
		return nil
	})
	for _, d := range f.devices {
		if err := d.start(ctx); err != nil {
			return fmt.Errorf("fleet: %w", err)
		}
	}
	<-ctx.Done()
	for _, d := range f.devices {
		d.stop()
	}
	for _, d := range f.devices {
		d.wait()
	}
	return g.Wait()
}

// connectedDelta is called by a device when it connects (+1) or disconnects (-1).
func (f *Fleet) connectedDelta(delta int64) {
	n := f.connected.Add(delta)
	if delta > 0 && n == int64(len(f.devices)) && f.allAt.Load() == 0 {
		f.allAt.CompareAndSwap(0, time.Now().UnixNano())
	}
	if delta <= 0 || !f.hasWait.Load() {
		return
	}
	f.waitMu.Lock()
	defer f.waitMu.Unlock()
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if n >= w.n {
			close(w.ch)
			continue
		}
		kept = append(kept, w)
	}
	f.waiters = kept
	f.hasWait.Store(len(kept) > 0)
}

// Connected returns how many devices are connected now.
func (f *Fleet) Connected() int { return int(f.connected.Load()) }

// AllConnectedAt returns when every device of the fleet was first
// connected at the same time: the end of the fleet's connect phase. It is
// zero until then.
func (f *Fleet) AllConnectedAt() time.Time {
	if ns := f.allAt.Load(); ns != 0 {
		return time.Unix(0, ns)
	}
	return time.Time{}
}

// Ready returns a channel closed once at least n devices are connected at
// the same time.
func (f *Fleet) Ready(n int) <-chan struct{} {
	ch := make(chan struct{})
	f.waitMu.Lock()
	defer f.waitMu.Unlock()
	if f.connected.Load() >= int64(n) {
		close(ch)
		return ch
	}
	f.waiters = append(f.waiters, readyWaiter{n: int64(n), ch: ch})
	f.hasWait.Store(true)
	// A device may have connected between the check and the store.
	if f.connected.Load() >= int64(n) {
		f.waiters = f.waiters[:len(f.waiters)-1]
		f.hasWait.Store(len(f.waiters) > 0)
		close(ch)
	}
	return ch
}

// WaitConnected waits until n devices are connected, or ctx ends.
func (f *Fleet) WaitConnected(ctx context.Context, n int) error {
	select {
	case <-f.Ready(n):
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for %d connected devices (%d now): %w", n, f.Connected(), ctx.Err())
	}
}

// Stats sums the devices' counters.
func (f *Fleet) Stats() FleetStats {
	s := FleetStats{Devices: len(f.devices)}
	for _, d := range f.devices {
		if d.Connected() {
			s.Connected++
		}
		s.add(d.stats.snapshot())
	}
	return s
}

// connectLimiter paces connect attempts: each reservation gets the next
// free slot, interval apart.
type connectLimiter struct {
	mu       sync.Mutex
	interval time.Duration
	next     time.Time
}

func (l *connectLimiter) reserve(now time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.next.Before(now) {
		l.next = now
	}
	slot := l.next
	l.next = l.next.Add(l.interval)
	return slot
}
