package events

import (
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Defaults of Options.
const (
	DefaultCapacity   = 4096
	DefaultPerDevice  = 16
	DefaultMaxDevices = 10000
	DefaultMaxBody    = 4096
	DefaultBuffer     = 256
)

// Options bound a Stream.
type Options struct {
	// Capacity is how many events the stream keeps overall (default 4096).
	Capacity int
	// PerDevice is how many events it keeps for each device (default 16),
	// so a quiet device's history survives a busy fleet.
	PerDevice int
	// MaxDevices bounds the devices that get their own history (default
	// 10000); events of devices beyond it are kept in the overall ring only.
	MaxDevices int
	// MaxBody is how many bytes of a message body an event keeps (default 4096).
	MaxBody int
}

// Event is one device event.
type Event struct {
	// Seq numbers the stream's events from 1, in the order recorded.
	Seq uint64
	// Time is when the hub saw the event (a message's enqueued time).
	Time     time.Time
	Type     Type
	DeviceID string
	// ModuleID is set for a module's events.
	ModuleID string
	// Method is a direct method's name (MethodCall).
	Method string
	// RequestID is a method call's or answer's $rid, or a reported patch's.
	RequestID string
	// Status is a method answer's status.
	Status int
	// Version is a desired patch's $version.
	Version string
	// Bag is a message's property bag as the device wrote it; DecodeBag reads it.
	Bag string
	// Retained is set on a message the device published with RETAIN.
	Retained bool
	// Body is the message or payload, at most Options.MaxBody bytes of it.
	Body []byte
	// Size is the whole body's size in bytes.
	Size int
}

// Truncated reports whether Body is shorter than the message.
func (e *Event) Truncated() bool { return len(e.Body) < e.Size }

// ring is a fixed array of events; next counts every event put in.
type ring struct {
	ev   []Event
	next uint64
}

func (r *ring) put(e *Event) {
	r.ev[r.next%uint64(len(r.ev))] = *e
	r.next++
}

// last appends the ring's events, oldest first, that keep returns true for.
func (r *ring) last(out []Event, keep func(*Event) bool) []Event {
	n := uint64(len(r.ev))
	start := uint64(0)
	if r.next > n {
		start = r.next - n
	}
	for i := start; i < r.next; i++ {
		if e := &r.ev[i%n]; keep(e) {
			out = append(out, *e)
		}
	}
	return out
}

// Stream is a hub's bounded store of recent device events and its watchers.
// It is safe for concurrent use; it runs no goroutine of its own.
type Stream struct {
	opts Options

	mu      sync.Mutex
	all     ring
	devices map[string]*ring
	subs    []*Subscription

	dropped atomic.Uint64
}

// New makes a Stream.
func New(opts Options) *Stream {
	if opts.Capacity <= 0 {
		opts.Capacity = DefaultCapacity
	}
	if opts.PerDevice <= 0 {
		opts.PerDevice = DefaultPerDevice
	}
	if opts.MaxDevices <= 0 {
		opts.MaxDevices = DefaultMaxDevices
	}
	if opts.MaxBody <= 0 {
		opts.MaxBody = DefaultMaxBody
	}
	return &Stream{opts: opts, all: ring{ev: make([]Event, opts.Capacity)}, devices: map[string]*ring{}}
}

// Record stores e (its Seq is assigned, Time set when zero, Body cut to
// MaxBody) and offers it to every watcher that wants it, without waiting.
// Record keeps e.Body without copying it when it fits: the caller must not
// change it afterwards.
func (s *Stream) Record(e Event) {
	if e.Time.IsZero() {
		e.Time = time.Now()
	}
	e.Size = max(e.Size, len(e.Body))
	if len(e.Body) > s.opts.MaxBody {
		e.Body = slices.Clone(e.Body[:s.opts.MaxBody])
	}
	if e.ModuleID == "" {
		// A module's connection is named "deviceId/moduleId"; device ids
		// have no '/'.
		if d, m, ok := strings.Cut(e.DeviceID, "/"); ok {
			e.DeviceID, e.ModuleID = d, m
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	e.Seq = s.all.next + 1
	s.all.put(&e)
	r := s.devices[e.DeviceID]
	if r == nil && len(s.devices) < s.opts.MaxDevices {
		r = &ring{ev: make([]Event, s.opts.PerDevice)}
		s.devices[e.DeviceID] = r
	}
	if r != nil {
		r.put(&e)
	}
	for _, sub := range s.subs {
		if sub.wants(&e) {
			select {
			case sub.ch <- e:
			default:
				sub.dropped.Add(1)
				s.dropped.Add(1)
			}
		}
	}
}

// Total is the number of events recorded.
func (s *Stream) Total() uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.all.next
}

// Dropped is the number of events that some watcher missed because its
// channel was full.
func (s *Stream) Dropped() uint64 { return s.dropped.Load() }

// Recent returns at most n of the kept events of deviceID ("" for every
// device) with a type in types, oldest first.
func (s *Stream) Recent(deviceID string, types TypeSet, n int) []Event {
	keep := func(e *Event) bool { return types.Has(e.Type) && (deviceID == "" || e.DeviceID == deviceID) }
	s.mu.Lock()
	var out []Event
	if r := s.devices[deviceID]; deviceID != "" && r != nil {
		out = r.last(nil, keep)
	} else {
		out = s.all.last(nil, keep)
	}
	s.mu.Unlock()
	if n >= 0 && len(out) > n {
		out = out[len(out)-n:]
	}
	return out
}

// Filter selects the events a watcher gets.
type Filter struct {
	// Types are the types it wants; the zero set is every type.
	Types TypeSet
	// Devices, when not nil, are the only devices it wants (SetDevices
	// changes them later).
	Devices []string
	// Buffer is its channel's capacity (default 256).
	Buffer int
}

// Subscription is one watcher of a Stream. Its events arrive on C in the
// order recorded; those that do not fit are dropped and counted.
type Subscription struct {
	// C carries the events; it is closed by Close.
	C <-chan Event

	s       *Stream
	ch      chan Event
	types   TypeSet
	devices atomic.Pointer[map[string]struct{}] // nil: every device
	dropped atomic.Uint64
	closed  bool // under s.mu
}

// Subscribe starts a watcher. The caller must Close it.
func (s *Stream) Subscribe(f Filter) *Subscription {
	if f.Buffer <= 0 {
		f.Buffer = DefaultBuffer
	}
	ch := make(chan Event, f.Buffer)
	sub := &Subscription{C: ch, s: s, ch: ch, types: f.Types}
	if f.Devices != nil {
		sub.SetDevices(f.Devices)
	}
	s.mu.Lock()
	s.subs = append(s.subs, sub)
	s.mu.Unlock()
	return sub
}

// SetDevices replaces the devices the watcher wants (nil: every device).
func (sub *Subscription) SetDevices(ids []string) {
	if ids == nil {
		sub.devices.Store(nil)
		return
	}
	m := make(map[string]struct{}, len(ids))
	for _, id := range ids {
		m[id] = struct{}{}
	}
	sub.devices.Store(&m)
}

func (sub *Subscription) wants(e *Event) bool {
	if !sub.types.Has(e.Type) {
		return false
	}
	if m := sub.devices.Load(); m != nil {
		_, ok := (*m)[e.DeviceID]
		return ok
	}
	return true
}

// Dropped is the number of events this watcher missed.
func (sub *Subscription) Dropped() uint64 { return sub.dropped.Load() }

// Close stops the watcher and closes C. It may be called more than once.
func (sub *Subscription) Close() {
	s := sub.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if sub.closed {
		return
	}
	sub.closed = true
	s.subs = slices.DeleteFunc(s.subs, func(x *Subscription) bool { return x == sub })
	close(sub.ch)
}
