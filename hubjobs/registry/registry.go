// Package registry is the hub's domain for devices: identities and keys,
// device twins (versions, etags, $metadata, the content rules and limits of
// docs/iothub.md §3.5), the device side of twins over MQTT, direct-method
// bookkeeping, and the twin collection that queries run over.
//
// Everything lives in memory for fast reads and queries. Every change is
// written through to a Persistence and becomes visible (to reads, queries,
// job selection, the device's desired pushes and acknowledgements) only once
// it is durable: a committer goroutine groups the writes that arrive while
// the previous batch is being made durable into one transaction, so many
// concurrent writers share one fsync, and applies each change to the
// in-memory view after its batch commits. Until then readers see the old
// value, while writers of the same device build on the queued one. A failed
// write leaves nothing visible; it fails the request with ServerError and
// stops the registry, and Run returns the store's error. Without a
// Persistence the registry is memory only and changes are visible at once.
//
// Every error returned to API callers is an *iothub.Error carrying IoT Hub's
// code; DeviceNotFound errors match ErrDeviceNotFound with errors.Is.
//
// The registry does not import the broker: it declares DeviceLink, what it
// needs from the broker (delivery and disconnection only), and implements the
// broker's Hub interface (DevicePublished, DeviceConnected,
// DeviceDisconnected, DeviceSubscriptions), whose events tell it which
// filters each device holds, plus Credentials, which the wiring adapts to the
// broker's Identities.
//
// Lock order: Registry.mu, then entry.mu (a device's before its modules'), then the committer's, the method
// shards' and the query index's own locks. The committer's callbacks take
// Registry.mu and entry.mu, so nothing waits for a write to be durable while
// holding either. No registry lock is held while calling DeviceLink.Disconnect
// or DeviceLink.Deliver for a method request; Deliver of twin answers and
// desired patches may run under entry.mu, so Deliver must not call back into
// the registry (the broker only queues).
package registry

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"

	"github.com/fleetsim/fleetsim/hubjobs/query"
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
	// Disconnect closes the device's live connection, if any.
	Disconnect(deviceID string)
}

// Options configures a Registry.
type Options struct {
	// Hostname is the hub host name.
	Hostname string
	// Store makes changes durable; nil keeps everything in memory only.
	Store Persistence
	// Link is the broker side, given at construction (the hub's root closes
	// the loop with the broker before anything runs); nil sends nothing.
	Link DeviceLink
	// Logger receives store failures and per-device debug lines; default zerolog.Nop.
	Logger zerolog.Logger
	// MaxPendingWrites bounds the writes waiting for the store; beyond it
	// writes fail with 429 ThrottlingException. Default 65536.
	MaxPendingWrites int
}

// Registry is the device registry. Its methods are safe for concurrent use.
type Registry struct {
	opts Options
	log  zerolog.Logger
	com  *committer // nil in memory-only mode

	mu      sync.RWMutex
	devices map[string]*entry
	ids     idList
	// modules holds module identities by "deviceId/moduleId", and modsOf
	// each device's module ids in order (modules.go).
	modules map[string]*entry
	modsOf  map[string][]string
	index   *query.Index

	total, enabled, connected atomic.Int64
	telemetry                 atomic.Int64
	etags                     atomic.Int64 // device etag counter
	gens                      atomic.Int64 // generation ids

	methods methodTable
	twins   twinWorkers

	started   atomic.Bool
	closing   chan struct{}
	closeOnce sync.Once
}

// entry is one device: its durable record and the newest change queued
// for the store, its connection state, the cached query document, and a
// channel closed (and replaced) on every connection or subscription event,
// which wakes method calls waiting for the device, and the filters it holds.
type entry struct {
	mu sync.Mutex
	// rec is the durable record that reads, queries and the broker see; nil
	// while the device's creation is not durable yet.
	rec *record
	// next is the newest record queued for the store, nil when none is:
	// writes build on it (latest), so queued changes of a device stack up
	// in order before any is visible.
	next *record
	// deleting: a deletion is queued; writes see the device as gone.
	deleting bool
	live     live
	doc      map[string]any // query document; nil: rebuild on next read
	online   chan struct{}
	gone     bool // deleted; a new entry replaces it if the id is registered again
	// subs holds the subMethods and subDesired bits of the filters the live
	// connection holds, as the broker's events reported them. Written under
	// mu; read without it, since desired pushes run under mu or not.
	subs atomic.Uint32
}

// latest is the record writes build on: the queued one, else the durable one.
func (e *entry) latest() *record {
	if e.next != nil {
		return e.next
	}
	return e.rec
}

// New builds a registry and loads every record from opts.Store. Run starts
// its goroutines; with a Store, writes become durable (and their callers
// return) only while Run runs, or at Close.
func New(opts Options) (*Registry, error) {
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	if opts.MaxPendingWrites <= 0 {
		opts.MaxPendingWrites = 1 << 16
	}
	r := &Registry{
		opts:    opts,
		log:     opts.Logger,
		devices: map[string]*entry{},
		modules: map[string]*entry{},
		modsOf:  map[string][]string{},
		index:   query.NewIndex(),
		closing: make(chan struct{}),
	}
	r.methods.init()
	r.gens.Store(ticks(time.Now()))
	if opts.Store != nil {
		if err := r.load(opts.Store); err != nil {
			return nil, err
		}
		r.com = newCommitter(opts.Store, opts.MaxPendingWrites, r.log)
	}
	return r, nil
}

func (r *Registry) load(st Persistence) error {
	var maxEtag int64
	err := st.Load(func(id string, data []byte) error {
		rec, err := decodeRecord(data)
		if err != nil {
			return fmt.Errorf("device %q: %w", id, err)
		}
		maxEtag = max(maxEtag, rec.Etag)
		if rec.Module != "" {
			r.modules[rec.key()] = &entry{rec: rec, online: make(chan struct{})}
			return nil
		}
		r.devices[rec.ID] = &entry{rec: rec, online: make(chan struct{})}
		r.ids.add(rec.ID)
		r.index.Update(rec.ID, nil, indexDoc(rec))
		r.total.Add(1)
		if rec.Status == StatusEnabled {
			r.enabled.Add(1)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("load registry: %w", err)
	}
	r.loadModules()
	r.etags.Store(maxEtag)
	return nil
}

// linked returns the broker side, or nil.
func (r *Registry) linked() DeviceLink { return r.opts.Link }

// Run runs the registry's goroutines, the committer and the twin workers,
// until ctx ends, Close is called or the store fails; then it closes the
// registry (see Close) and returns. It returns the store's error if a write
// failed, which is the hub's cue to stop: nothing after a failed write is
// acknowledged. Run can be called once.
func (r *Registry) Run(ctx context.Context) error {
	if !r.started.CompareAndSwap(false, true) {
		return errors.New("registry: Run called twice")
	}
	var failed <-chan struct{}
	if r.com != nil {
		r.com.start()
		failed = r.com.failed
	}
	r.twins.start(r.handleTwin)
	select {
	case <-ctx.Done():
	case <-failed:
	case <-r.closing:
	}
	_ = r.Close()
	if r.com != nil {
		if err := r.com.failure(); err != nil {
			return fmt.Errorf("registry store: %w", err)
		}
	}
	return nil
}

// Close stops the registry: pending method calls fail with
// ServiceUnavailable, writes already queued are made durable and
// acknowledged (or fail, after a store failure), later writes fail, and the
// twin workers and the committer goroutine are waited for (twin requests
// queued by then are handled first). It does not close the Persistence.
// Close is idempotent.
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

// notFound is DeviceNotFound for a device id, ModuleNotFound for a
// module's "deviceId/moduleId".
func notFound(id string) error {
	if dev, mod, ok := strings.Cut(id, "/"); ok {
		return moduleNotFound(dev, mod)
	}
	return iothub.Errorf(iothub.CodeDeviceNotFound, "Device %s not found.", id)
}

func unavailable() error {
	return &iothub.Error{Code: iothub.CodeServiceUnavailable, Message: "The registry is shutting down.", Err: ErrClosed}
}

// lookup returns the entry of a device id, or of a module's
// "deviceId/moduleId", which may not be visible yet (its creation is not
// durable) or any more (gone).
func (r *Registry) lookup(id string) (*entry, error) {
	r.mu.RLock()
	var e *entry
	if strings.IndexByte(id, '/') < 0 {
		e = r.devices[id]
	} else {
		e = r.modules[id]
	}
	r.mu.RUnlock()
	if e == nil {
		return nil, notFound(id)
	}
	return e, nil
}

// lockEntry returns the entry of a device whose record is durable, locked,
// or DeviceNotFound: what readers see.
func (r *Registry) lockEntry(id string) (*entry, error) {
	e, err := r.lookup(id)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	if e.gone || e.rec == nil {
		e.mu.Unlock()
		return nil, notFound(id)
	}
	return e, nil
}

// lockWritable returns the entry of a device that is registered or being
// registered and not being deleted, locked, or DeviceNotFound: what writers
// see. They build on e.latest().
func (r *Registry) lockWritable(id string) (*entry, error) {
	e, err := r.lookup(id)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	if e.gone || e.deleting {
		e.mu.Unlock()
		return nil, notFound(id)
	}
	return e, nil
}

// queue encodes rec (nil: the deletion of id) and queues it for the store;
// after runs on the committer goroutine, in queue order, once the write is
// durable or has failed, with no registry lock held. An error (the queue is
// full, the registry is closed or the store failed) means nothing was
// queued. The caller holds the entry's lock (or Registry.mu for creation),
// which keeps the writes of one device in order. Only with a Store.
func (r *Registry) queue(id string, rec *record, after func(error)) error {
	select {
	case <-r.closing:
		if r.com.failure() == nil {
			return unavailable()
		}
		// The store failed: add answers ServerError, as it did before the
		// failure closed the registry.
	default:
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

// commitLocked writes a change of an existing device: rec becomes its next
// record at once and, once durable, its visible record (applyLocked), and
// then done runs, on the committer goroutine without registry locks. In
// memory-only mode both happen at once, under the caller's lock. An error
// means nothing was queued and done does not run. The caller holds e.mu.
func (r *Registry) commitLocked(e *entry, rec *record, tagsChanged bool, done func(error)) error {
	if r.com == nil {
		select {
		case <-r.closing:
			return unavailable()
		default:
		}
		r.applyLocked(e, rec, tagsChanged)
		done(nil)
		return nil
	}
	err := r.queue(rec.key(), rec, func(err error) {
		e.mu.Lock()
		if err == nil && !e.gone {
			r.applyLocked(e, rec, tagsChanged)
		}
		if e.next == rec {
			e.next = nil
		}
		e.mu.Unlock()
		done(err)
	})
	if err != nil {
		return err
	}
	e.next = rec
	return nil
}

// applyLocked makes rec the device's visible record: the status counters,
// the query index (when the status or, as tagsChanged says, the tags
// changed) and the cached document follow. The caller holds e.mu.
func (r *Registry) applyLocked(e *entry, rec *record, tagsChanged bool) {
	old := e.rec
	e.rec = rec
	e.doc = nil
	if rec.Module != "" {
		return // modules have no status and are not in the device index
	}
	if old.Status != rec.Status {
		if rec.Status == StatusEnabled {
			r.enabled.Add(1)
		} else {
			r.enabled.Add(-1)
		}
	}
	if old.Status != rec.Status || tagsChanged {
		r.index.Update(rec.ID, nil, indexDoc(rec))
	}
}

// durable is a callback for commitLocked and queue whose result a caller waits for.
type durable chan error

func newDurable() durable { return make(durable, 1) }

func (d durable) done(err error) { d <- err }

// wait returns nil once the write is durable, or an IoT Hub ServerError.
func (d durable) wait(id string) error { return persistErr(id, <-d) }

// persistErr is the IoT Hub error of a write that the store failed: ServerError.
func persistErr(id string, err error) error {
	if err == nil {
		return nil
	}
	return &iothub.Error{Code: iothub.CodeServerError, Message: "Could not persist device " + id + ".", Err: err}
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
