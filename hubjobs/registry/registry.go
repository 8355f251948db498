// Package registry is the hub's domain for devices: identities and keys,
// device twins (versions, etags, $metadata, the content rules and limits of
// iothub.md §3.5), the device side of twins over MQTT, direct-method
// bookkeeping, and the twin collection that queries run over.
//
// Everything lives in memory for fast reads and queries. Every change is
// written through to a Persistence before it is acknowledged (an API call
// returns, a device gets its 204): a committer goroutine owned by the
// Registry groups the writes that arrive while the previous batch is being
// made durable into one transaction, so many concurrent writers share one
// fsync. Without a Persistence the registry is memory only.
//
// Every error returned to API callers is an *iothub.Error carrying IoT Hub's
// code; DeviceNotFound errors match ErrDeviceNotFound with errors.Is.
//
// The registry does not import the broker: it declares DeviceLink, what it
// needs from the broker, and implements the broker's Hub interface
// (DevicePublished, DeviceConnected, DeviceDisconnected, DeviceSubscribed)
// plus Credentials, which the wiring adapts to the broker's Identities.
//
// Lock order: Registry.mu, then entry.mu, then the committer's, the method
// shards' and the query index's own locks. No registry lock is held while
// calling DeviceLink.Disconnect or DeviceLink.Deliver for a method request;
// Deliver of twin answers and desired patches may run under entry.mu, so
// Deliver must not call back into the registry (the broker only queues).
package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/rs/zerolog"

	"github.com/fleetsim/fleetsim/hubjobs/query"
	"github.com/fleetsim/fleetsim/internal/clock"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// ErrDeviceNotFound matches (errors.Is) every DeviceNotFound (404001) error
// the registry returns, through iothub.Error's Is.
var ErrDeviceNotFound = &iothub.Error{Code: iothub.CodeDeviceNotFound}

// ErrClosed is the cause of the ServiceUnavailable errors returned after Close.
var ErrClosed = errors.New("registry closed")

// Persistence is what the registry needs from a durable store
// (hubjobs/regstore implements it). Records are opaque bytes under a device id.
type Persistence interface {
	// Load calls fn for every stored record, in any order; data is only
	// valid during the call. An error from fn stops Load and is returned.
	Load(fn func(id string, data []byte) error) error
	// Apply writes a batch in one transaction and returns once it is durable
	// (fsynced), or an error if none of it is. Writes to the same id apply
	// in order.
	Apply(batch []Write) error
}

// Write is one change of a batch: Data is the new record, nil deletes ID.
type Write struct {
	ID   string
	Data []byte
}

// DeviceLink is what the registry needs from the broker (broker.Server
// satisfies it; the registry does not import the broker).
type DeviceLink interface {
	// Deliver queues a publish to the device's live connection without
	// blocking; it returns an error if the device is not connected.
	Deliver(deviceID, topic string, payload []byte) error
	// Subscribed reports whether the device is connected and subscribed to filter.
	Subscribed(deviceID, filter string) bool
	// Disconnect closes the device's live connection, if any.
	Disconnect(deviceID string)
}

// Options configures a Registry.
type Options struct {
	// Hostname is the hub host name.
	Hostname string
	// Store makes changes durable; nil keeps everything in memory only.
	Store Persistence
	// Link is the broker side; it may be set later with SetLink, before devices connect.
	Link DeviceLink
	// Clock drives method timeouts and timestamps; default clock.Real.
	Clock clock.Clock
	// Logger receives store failures and per-device debug lines; default zerolog.Nop.
	Logger zerolog.Logger
	// MaxPendingWrites bounds the writes waiting for the store; beyond it
	// writes fail with 429 ThrottlingException. Default 65536.
	MaxPendingWrites int
}

// Registry is the device registry. Its methods are safe for concurrent use.
type Registry struct {
	opts Options
	clk  clock.Clock
	log  zerolog.Logger
	link atomic.Pointer[linkBox]
	// lastForced is the last ForceUpdateTwin patch, parsed.
	lastForced atomic.Pointer[parsedPatch]
	com        *committer // nil in memory-only mode

	mu      sync.RWMutex
	devices map[string]*entry
	ids     idList
	index   *query.Index

	total, enabled, connected atomic.Int64
	telemetry                 atomic.Int64
	etags                     atomic.Int64 // device etag counter
	gens                      atomic.Int64 // generation ids

	methods methodTable
	twins   twinWorkers

	closing   chan struct{}
	closeOnce sync.Once
}

type linkBox struct{ DeviceLink }

// entry is one device: its current record, its connection state, the cached
// query document, and a channel closed (and replaced) on every connection
// or subscription event, which wakes method calls waiting for the device.
type entry struct {
	mu     sync.Mutex
	rec    *record
	live   live
	doc    map[string]any // query document; nil: rebuild on next read
	online chan struct{}
	gone   bool // deleted; a new entry replaces it if the id is registered again
}

// New builds a registry and loads every record from opts.Store.
func New(opts Options) (*Registry, error) {
	if opts.Clock == nil {
		opts.Clock = clock.Real
	}
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	if opts.MaxPendingWrites <= 0 {
		opts.MaxPendingWrites = 1 << 16
	}
	r := &Registry{
		opts:    opts,
		clk:     opts.Clock,
		log:     opts.Logger,
		devices: map[string]*entry{},
		index:   query.NewIndex(),
		closing: make(chan struct{}),
	}
	r.methods.init()
	if opts.Link != nil {
		r.SetLink(opts.Link)
	}
	r.gens.Store(ticks(r.clk.Now()))
	if opts.Store != nil {
		if err := r.load(opts.Store); err != nil {
			return nil, err
		}
		r.com = newCommitter(opts.Store, opts.MaxPendingWrites, r.log)
	}
	r.twins.start(r.handleTwin)
	return r, nil
}

func (r *Registry) load(st Persistence) error {
	var maxEtag int64
	err := st.Load(func(id string, data []byte) error {
		rec, err := decodeRecord(data)
		if err != nil {
			return fmt.Errorf("device %q: %w", id, err)
		}
		r.devices[rec.ID] = &entry{rec: rec, online: make(chan struct{})}
		r.ids.add(rec.ID)
		r.index.Update(rec.ID, nil, indexDoc(rec))
		r.total.Add(1)
		if rec.Status == StatusEnabled {
			r.enabled.Add(1)
		}
		maxEtag = max(maxEtag, rec.Etag)
		return nil
	})
	if err != nil {
		return fmt.Errorf("load registry: %w", err)
	}
	r.etags.Store(maxEtag)
	return nil
}

// SetLink connects the registry to the broker.
func (r *Registry) SetLink(l DeviceLink) { r.link.Store(&linkBox{l}) }

func (r *Registry) linked() DeviceLink {
	if b := r.link.Load(); b != nil {
		return b.DeviceLink
	}
	return nil
}

// Close stops the registry: pending method calls fail with
// ServiceUnavailable, writes already queued are made durable and
// acknowledged, later writes fail, and the twin workers and the committer
// goroutine are waited for (twin requests queued by then are handled
// first). It does not close the Persistence. Close is idempotent.
func (r *Registry) Close() error {
	r.closeOnce.Do(func() {
		r.twins.close()
		close(r.closing)
		if r.com != nil {
			r.com.close()
		}
	})
	return nil
}

func notFound(id string) error {
	return iothub.Errorf(iothub.CodeDeviceNotFound, "Device %s not found.", id)
}

func unavailable() error {
	return &iothub.Error{Code: iothub.CodeServiceUnavailable, Message: "The registry is shutting down.", Err: ErrClosed}
}

// lookup returns the entry of a registered device.
func (r *Registry) lookup(id string) (*entry, error) {
	r.mu.RLock()
	e := r.devices[id]
	r.mu.RUnlock()
	if e == nil {
		return nil, notFound(id)
	}
	return e, nil
}

// lockEntry returns the device's entry locked, or DeviceNotFound.
func (r *Registry) lockEntry(id string) (*entry, error) {
	e, err := r.lookup(id)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	if e.gone {
		e.mu.Unlock()
		return nil, notFound(id)
	}
	return e, nil
}

// persistLocked queues rec (or the deletion of id when rec is nil) for the
// store and arranges for after to run once it is durable, in the order of
// the calls; in memory-only mode after runs at once. The caller holds the
// entry's lock (or Registry.mu for creation), which keeps the writes of one
// device in order. after must not take registry locks. An error (the queue
// is full, or the registry is closed) means nothing was queued.
func (r *Registry) persistLocked(id string, rec *record, after func(error)) error {
	select {
	case <-r.closing:
		return unavailable()
	default:
	}
	if r.com == nil {
		after(nil)
		return nil
	}
	w := Write{ID: id}
	if rec != nil {
		data, err := encodeRecord(rec)
		if err != nil {
			return iothub.AsError(fmt.Errorf("encode device %s: %w", id, err))
		}
		w.Data = data
	}
	return r.com.add(w, after)
}

// durable is an after callback for persistLocked whose result a caller waits for.
type durable chan error

func newDurable() durable { return make(durable, 1) }

func (d durable) done(err error) { d <- err }

// wait returns nil once the write is durable, or an IoT Hub ServerError.
func (d durable) wait(id string) error {
	if err := <-d; err != nil {
		return &iothub.Error{Code: iothub.CodeServerError, Message: "Could not persist device " + id + ".", Err: err}
	}
	return nil
}

// idList keeps the registered ids in order for Scan: an immutable sorted
// snapshot plus the ids added since, merged on the next read. Removed ids
// are dropped at the merge (and skipped by readers until then). Guarded by
// Registry.mu.
type idList struct {
	sorted  []string
	added   []string
	removed int
}

func (l *idList) add(id string) { l.added = append(l.added, id) }
func (l *idList) remove()       { l.removed++ }
func (l *idList) clean() bool   { return len(l.added) == 0 && l.removed == 0 }

// mergeLocked folds pending changes into a new snapshot; present says
// which ids are registered.
func (l *idList) mergeLocked(present func(string) bool) {
	slices.Sort(l.added)
	added := slices.Compact(l.added)
	out := make([]string, 0, len(l.sorted)+len(added))
	i, j := 0, 0
	for i < len(l.sorted) || j < len(added) {
		var id string
		switch {
		case j == len(added) || i < len(l.sorted) && l.sorted[i] < added[j]:
			id = l.sorted[i]
			i++
		case i == len(l.sorted) || added[j] < l.sorted[i]:
			id = added[j]
			j++
		default: // equal
			id = added[j]
			i++
			j++
		}
		if present(id) {
			out = append(out, id)
		}
	}
	l.sorted, l.added, l.removed = out, nil, 0
}

// sortedIDs returns the current snapshot of ids in ascending order; the
// caller must not modify it.
func (r *Registry) sortedIDs() []string {
	r.mu.RLock()
	if r.ids.clean() {
		s := r.ids.sorted
		r.mu.RUnlock()
		return s
	}
	r.mu.RUnlock()
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.ids.clean() {
		r.ids.mergeLocked(func(id string) bool { _, ok := r.devices[id]; return ok })
	}
	return r.ids.sorted
}

// checkCtx returns ctx's error as an IoT Hub error before a write starts.
func checkCtx(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return &iothub.Error{Code: iothub.CodeServiceUnavailable, Message: "The request was cancelled.", Err: err}
	}
	return nil
}
