// Package c2d holds the hub's cloud-to-device message queues: one per
// device, with IoT Hub's limits (docs/iothub.md §1.6). A message waits while its device is offline, is sent at QoS 1
// once the device holds its devicebound subscription, and is completed by
// the device's PUBACK; one not acknowledged is sent again when the device
// next connects, up to the maximum delivery count; one whose time to live
// has passed is dropped and counted, never delivered.
//
// With a Store (the hub's data directory) the queues are durable: Send
// returns once the message is stored, and a restart loads what waits. Without
// one they live in memory and a restart loses them. The REST answers say
// which (Status.Durable, Sent.Durable).
//
// Removals (completion, expiry, purge, dead-lettering) and delivery counts
// reach the store shortly after they happen, written by Run, so that no
// device's connection waits for a disk: a crash in between may deliver a
// completed message once more (at least once, as IoT Hub promises), or count
// deliveries from an older figure.
package c2d

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// Link is what the queues need from the broker: QoS 1 delivery to one
// device's live connection and whether that connection holds a filter.
// Both must not block; DeliverQoS1 fails when the device is not connected
// or its write queue is full.
type Link interface {
	DeliverQoS1(deviceID, topic string, payload []byte, dup bool) (uint16, error)
}

// Devices says which devices are registered.
type Devices interface {
	// DeviceExists reports whether id is a registered device (not a module).
	DeviceExists(id string) bool
}

// Stored is a waiting message as a Store holds it: its device, its place in
// the queues (Seq, increasing in the order messages were sent), and the
// message with its times and delivery count.
type Stored struct {
	DeviceID   string    `json:"deviceId"`
	Seq        uint64    `json:"seq"`
	Message    Message   `json:"message"`
	Enqueued   time.Time `json:"enqueued"`
	Expiry     time.Time `json:"expiry"`
	Deliveries int       `json:"deliveries"`
}

// Op is one change to a Store: a put of Msg, or, with Delete, the removal
// of the message with Msg's DeviceID and Seq.
type Op struct {
	Delete bool
	Msg    Stored
}

// Store keeps the waiting messages across restarts.
type Store interface {
	// Load calls fn with every stored message, each device's in Seq order.
	Load(fn func(Stored) error) error
	// Write applies ops, in order, in one transaction that is durable when
	// it returns nil.
	Write(ops []Op) error
}

// Config configures a Queues.
type Config struct {
	// Store makes the queues durable; nil keeps them in memory only.
	Store Store
	// Devices says which devices may be sent messages; required.
	Devices Devices
	// Now is the clock (default time.Now).
	Now func() time.Time
	// MaxDepth is the most messages waiting per device (default IoT Hub's 50).
	MaxDepth int
	// MaxDeliveryCount is how often a message is sent before it is dead-lettered
	// (default IoT Hub's 10).
	MaxDeliveryCount int
	// DefaultTTL is a message's time to live when the sender gives none
	// (default IoT Hub's one hour); MaxTTL caps any (default two days).
	DefaultTTL, MaxTTL time.Duration
	// SweepEvery is how often Run drops expired messages (default 10 s).
	SweepEvery time.Duration
	// Logger receives the queues' logs (default none).
	Logger zerolog.Logger
}

// Message is a cloud-to-device message as a sender gives it.
type Message struct {
	// MessageID is $.mid; empty gets a generated one.
	MessageID     string
	CorrelationID string
	UserID        string
	ContentType   string
	// ContentEncoding is $.ce, e.g. "utf-8".
	ContentEncoding string
	// Ack is the feedback asked for (iothub-ack); fleetsim sends no feedback.
	Ack string
	// Properties are the application properties, in order.
	Properties []iothub.Property
	Body       []byte
	// TTL is the time to live; 0 means DefaultTTL. It is capped at MaxTTL.
	TTL time.Duration
}

// State is where a message is in its life.
type State string

// A waiting message is enqueued, or delivered and not yet acknowledged.
const (
	StateEnqueued  State = "enqueued"
	StateDelivered State = "delivered"
)

// Info describes a waiting message.
type Info struct {
	MessageID       string            `json:"messageId"`
	CorrelationID   string            `json:"correlationId,omitempty"`
	UserID          string            `json:"userId,omitempty"`
	ContentType     string            `json:"contentType,omitempty"`
	ContentEncoding string            `json:"contentEncoding,omitempty"`
	Properties      map[string]string `json:"properties,omitempty"`
	Size            int               `json:"size"`
	EnqueuedTime    time.Time         `json:"enqueuedTimeUtc"`
	ExpiryTime      time.Time         `json:"expiryTimeUtc"`
	State           State             `json:"state"`
	DeliveryCount   int               `json:"deliveryCount"`
}

// Counts are one device's figures since the hub started.
type Counts struct {
	// Queued is how many messages wait now (enqueued or delivered, not completed).
	Queued int `json:"queued"`
	// Sent is how many messages were accepted.
	Sent int64 `json:"sent"`
	// Delivered counts deliveries over MQTT, redeliveries included.
	Delivered int64 `json:"delivered"`
	// Completed is how many the device acknowledged.
	Completed int64 `json:"completed"`
	// Expired is how many were dropped when their time to live ran out.
	Expired int64 `json:"expired"`
	// DeadLettered is how many were dropped after MaxDeliveryCount deliveries.
	DeadLettered int64 `json:"deadLettered"`
	// Purged is how many were removed by Purge.
	Purged int64 `json:"purged"`
}

// Status is one device's queue: what waits, in delivery order, and its counts.
type Status struct {
	DeviceID string `json:"deviceId"`
	// Durable says whether the queues survive a hub restart (they are
	// stored in the hub's data directory).
	Durable  bool   `json:"durable"`
	Messages []Info `json:"messages"`
	Counts   Counts `json:"counts"`
}

// entry is a waiting message.
type entry struct {
	seq        uint64
	m          Message
	enqueued   time.Time
	expiry     time.Time
	topic      string
	deliveries int
	// pid is the packet id of its delivery on the device's current
	// connection; 0 when it has not been sent on it.
	pid uint16
}

// device is one device's queue.
type device struct {
	waiting []*entry // in the order they were sent
	online  bool     // the current connection holds the devicebound filter
	counts  Counts
	// storing is how many Sends are writing to the store, outside the lock;
	// they count against MaxDepth.
	storing int
}

// Queues are every device's cloud-to-device queue. Their methods are safe for
// concurrent use; the broker calls the Device* methods on a device's own
// connection goroutine, and they do no I/O.
//
// Lock order: mu, then the broker's own per-device lock (inside DeliverQoS1).
type Queues struct {
	cfg  Config
	log  zerolog.Logger
	link Link

	mu      sync.Mutex
	devices map[string]*device
	nextSeq uint64

	// pending are the store changes Run writes next; kick tells Run there
	// are some. pmu is taken inside mu, never the other way round.
	pmu     sync.Mutex
	pending []Op
	kick    chan struct{}
}

// New builds empty queues; SetLink connects them to the broker.
func New(cfg Config) (*Queues, error) {
	if cfg.Devices == nil {
		return nil, errors.New("c2d: Devices is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.MaxDepth <= 0 {
		cfg.MaxDepth = iothub.MaxC2DQueueDepth
	}
	if cfg.MaxDeliveryCount <= 0 {
		cfg.MaxDeliveryCount = iothub.DefaultC2DMaxDelivery
	}
	if cfg.DefaultTTL <= 0 {
		cfg.DefaultTTL = iothub.DefaultC2DTTL
	}
	if cfg.MaxTTL <= 0 {
		cfg.MaxTTL = iothub.MaxC2DTTL
	}
	if cfg.SweepEvery <= 0 {
		cfg.SweepEvery = 10 * time.Second
	}
	q := &Queues{cfg: cfg, log: cfg.Logger, devices: map[string]*device{}, nextSeq: 1, kick: make(chan struct{}, 1)}
	if cfg.Store != nil {
		if err := q.load(); err != nil {
			return nil, err
		}
	}
	return q, nil
}

// load fills the queues from the store, dropping (and deleting) the
// messages whose time to live has passed.
func (q *Queues) load() error {
	now := q.cfg.Now()
	var expired []Op
	err := q.cfg.Store.Load(func(s Stored) error {
		q.nextSeq = max(q.nextSeq, s.Seq+1)
		if !now.Before(s.Expiry) {
			expired = append(expired, Op{Delete: true, Msg: Stored{DeviceID: s.DeviceID, Seq: s.Seq}})
			return nil
		}
		d := q.deviceLocked(s.DeviceID)
		e := &entry{seq: s.Seq, m: s.Message, enqueued: s.Enqueued, expiry: s.Expiry, deliveries: s.Deliveries}
		e.topic = topic(s.DeviceID, e)
		d.waiting = append(d.waiting, e)
		return nil
	})
	if err != nil {
		return fmt.Errorf("c2d: load the stored messages: %w", err)
	}
	if len(expired) > 0 {
		if err := q.cfg.Store.Write(expired); err != nil {
			return fmt.Errorf("c2d: delete the expired messages: %w", err)
		}
	}
	return nil
}

// topic is e's devicebound topic with its property bag.
func topic(deviceID string, e *entry) string {
	m := e.m
	return iothub.C2DTopic(deviceID, iothub.C2DProperties{
		MessageID: m.MessageID, Expiry: e.expiry, To: iothub.C2DTo(deviceID),
		CorrelationID: m.CorrelationID, UserID: m.UserID, ContentType: m.ContentType,
		ContentEncoding: m.ContentEncoding, Ack: m.Ack, Properties: m.Properties,
	})
}

// SetLink connects the queues to the broker; call it before Run.
func (q *Queues) SetLink(l Link) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.link = l
}

// Run drops expired messages every SweepEvery and writes the removals and
// delivery counts to the store until ctx ends, then writes what is left.
func (q *Queues) Run(ctx context.Context) error {
	t := time.NewTicker(q.cfg.SweepEvery)
	defer t.Stop()
	defer q.Flush()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			q.Sweep()
			q.Flush()
		case <-q.kick:
			q.Flush()
		}
	}
}

// Flush writes the pending store changes now. A failed write is logged and
// dropped: the messages stay in the store, to be delivered again (or
// expired) after a restart.
func (q *Queues) Flush() {
	q.pmu.Lock()
	ops := q.pending
	q.pending = nil
	q.pmu.Unlock()
	if len(ops) == 0 {
		return
	}
	if err := q.cfg.Store.Write(ops); err != nil {
		q.log.Error().Err(err).Int("changes", len(ops)).Msg("cloud-to-device store write failed")
	}
}

// storeLocked queues a change for Run to write; nothing without a store.
func (q *Queues) storeLocked(id string, e *entry, del bool) {
	if q.cfg.Store == nil {
		return
	}
	op := Op{Delete: del, Msg: Stored{DeviceID: id, Seq: e.seq}}
	if !del {
		op.Msg = e.stored(id)
	}
	q.pmu.Lock()
	q.pending = append(q.pending, op)
	q.pmu.Unlock()
	select {
	case q.kick <- struct{}{}:
	default:
	}
}

func (e *entry) stored(id string) Stored {
	return Stored{DeviceID: id, Seq: e.seq, Message: e.m, Enqueued: e.enqueued, Expiry: e.expiry, Deliveries: e.deliveries}
}

// Sent is Send's answer.
type Sent struct {
	MessageID  string    `json:"messageId"`
	ExpiryTime time.Time `json:"expiryTimeUtc"`
	// Queued is how many messages wait for the device, this one included.
	Queued int `json:"queued"`
	// Durable says whether the message was stored before the answer and
	// survives a hub restart.
	Durable bool `json:"durable"`
}

// Send queues m for deviceID and delivers it at once when the device is
// online. Errors are *iothub.Error: DeviceNotFound, MessageTooLarge
// (body and properties over 64 KB), ArgumentInvalid (a reserved property
// name, a negative TTL), DeviceMaximumQueueDepthExceeded (MaxDepth
// messages already wait), ServerError (the store failed; the message is
// not queued).
func (q *Queues) Send(deviceID string, m Message) (Sent, error) {
	if !q.cfg.Devices.DeviceExists(deviceID) {
		return Sent{}, iothub.Errorf(iothub.CodeDeviceNotFound, "Device %s not registered", deviceID)
	}
	if err := check(m); err != nil {
		return Sent{}, err
	}
	if m.MessageID == "" {
		m.MessageID = newID()
	}
	ttl := m.TTL
	if ttl == 0 {
		ttl = q.cfg.DefaultTTL
	}
	ttl = min(ttl, q.cfg.MaxTTL)
	now := q.cfg.Now()
	e := &entry{m: m, enqueued: now, expiry: now.Add(ttl)}
	e.topic = topic(deviceID, e)
	if len(e.topic) > iothub.MaxTopicBytes {
		return Sent{}, iothub.Errorf(iothub.CodeMessageTooLarge, "the message's properties do not fit an MQTT topic")
	}

	q.mu.Lock()
	d := q.deviceLocked(deviceID)
	q.expireLocked(deviceID, d, now)
	if len(d.waiting)+d.storing >= q.cfg.MaxDepth {
		q.mu.Unlock()
		return Sent{}, iothub.Errorf(iothub.CodeDeviceMaximumQueueDepthExceeded,
			"Device %s already has %d cloud-to-device messages waiting, the most IoT Hub allows", deviceID, q.cfg.MaxDepth)
	}
	e.seq = q.nextSeq
	q.nextSeq++
	if q.cfg.Store != nil {
		// The fsync runs without the lock, so other devices' deliveries
		// and acknowledgements do not wait for it; the slot is reserved.
		d.storing++
		q.mu.Unlock()
		err := q.cfg.Store.Write([]Op{{Msg: e.stored(deviceID)}})
		q.mu.Lock()
		d.storing--
		if err != nil {
			q.mu.Unlock()
			q.log.Error().Err(err).Str("device", deviceID).Msg("cloud-to-device store write failed")
			return Sent{}, &iothub.Error{Code: iothub.CodeServerError, Message: "The cloud-to-device message could not be stored", Err: err}
		}
	}
	defer q.mu.Unlock()
	// Concurrent Sends may finish their writes out of order: keep the
	// queue in Seq order.
	i := len(d.waiting)
	for i > 0 && d.waiting[i-1].seq > e.seq {
		i--
	}
	d.waiting = slices.Insert(d.waiting, i, e)
	d.counts.Sent++
	if d.online {
		q.deliverLocked(deviceID, d)
	}
	return Sent{MessageID: m.MessageID, ExpiryTime: e.expiry, Queued: len(d.waiting), Durable: q.cfg.Store != nil}, nil
}

// newID is a random (version 4) UUID, the shape of the ids IoT Hub's
// service SDKs give messages.
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}

// check applies IoT Hub's limits to a message.
func check(m Message) error {
	if m.TTL < 0 {
		return iothub.Errorf(iothub.CodeArgumentInvalid, "the time to live %s is negative", m.TTL)
	}
	size := len(m.Body) + len(m.MessageID) + len(m.CorrelationID) + len(m.UserID) + len(m.ContentType) + len(m.ContentEncoding)
	for _, p := range m.Properties {
		if err := iothub.CheckC2DPropertyName(p.Key); err != nil {
			return iothub.Errorf(iothub.CodeArgumentInvalid, "%v", err)
		}
		size += len(p.Key) + len(p.Value)
	}
	if size > iothub.MaxC2DBytes {
		return iothub.Errorf(iothub.CodeMessageTooLarge, "the message is %d bytes with its properties; IoT Hub allows %d", size, iothub.MaxC2DBytes)
	}
	if len(m.MessageID) > 128 || len(m.CorrelationID) > 128 {
		return iothub.Errorf(iothub.CodeArgumentInvalid, "message and correlation ids are at most 128 characters")
	}
	return nil
}

// Status returns deviceID's queue. Errors: DeviceNotFound for a device
// that is not registered and has no queue.
func (q *Queues) Status(deviceID string) (Status, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	d, ok := q.devices[deviceID]
	if !ok {
		if !q.cfg.Devices.DeviceExists(deviceID) {
			return Status{}, iothub.Errorf(iothub.CodeDeviceNotFound, "Device %s not registered", deviceID)
		}
		return Status{DeviceID: deviceID, Durable: q.cfg.Store != nil, Messages: []Info{}}, nil
	}
	q.expireLocked(deviceID, d, q.cfg.Now())
	st := Status{DeviceID: deviceID, Durable: q.cfg.Store != nil, Messages: make([]Info, 0, len(d.waiting)), Counts: d.counts}
	st.Counts.Queued = len(d.waiting)
	for _, e := range d.waiting {
		in := Info{
			MessageID: e.m.MessageID, CorrelationID: e.m.CorrelationID, UserID: e.m.UserID,
			ContentType: e.m.ContentType, ContentEncoding: e.m.ContentEncoding, Size: len(e.m.Body),
			EnqueuedTime: e.enqueued.UTC(), ExpiryTime: e.expiry.UTC(), State: StateEnqueued, DeliveryCount: e.deliveries,
		}
		if e.pid != 0 {
			in.State = StateDelivered
		}
		if len(e.m.Properties) > 0 {
			in.Properties = make(map[string]string, len(e.m.Properties))
			for _, p := range e.m.Properties {
				in.Properties[p.Key] = p.Value
			}
		}
		st.Messages = append(st.Messages, in)
	}
	return st, nil
}

// Purge removes every message waiting for deviceID and returns how many
// there were (IoT Hub's purge of a device's queue). Errors as Status.
func (q *Queues) Purge(deviceID string) (int, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	d, ok := q.devices[deviceID]
	if !ok {
		if !q.cfg.Devices.DeviceExists(deviceID) {
			return 0, iothub.Errorf(iothub.CodeDeviceNotFound, "Device %s not registered", deviceID)
		}
		return 0, nil
	}
	n := len(d.waiting)
	for _, e := range d.waiting {
		q.storeLocked(deviceID, e, true)
	}
	d.waiting = nil
	d.counts.Purged += int64(n)
	return n, nil
}

// Sweep drops every expired message now.
func (q *Queues) Sweep() {
	now := q.cfg.Now()
	q.mu.Lock()
	defer q.mu.Unlock()
	for id, d := range q.devices {
		q.expireLocked(id, d, now)
	}
}

// DeviceConnected delivers what waits when the new connection already holds
// the devicebound subscription (a persistent session kept it; IoT Hub
// delivers on reconnect without a new SUBSCRIBE). filters are the ones the
// session holds, as the broker reports them.
func (q *Queues) DeviceConnected(deviceID string, filters []string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	d, ok := q.devices[deviceID]
	if !ok {
		return
	}
	q.resetLocked(d)
	if slices.Contains(filters, iothub.C2DFilter(deviceID)) {
		d.online = true
		q.deliverLocked(deviceID, d)
	}
}

// DeviceDisconnected marks what was delivered and not acknowledged on the
// connection that ended to be sent again.
func (q *Queues) DeviceDisconnected(deviceID string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if d, ok := q.devices[deviceID]; ok {
		q.resetLocked(d)
	}
}

// DeviceSubscriptions follows the filters the device's live session holds:
// what waits is delivered once it holds its devicebound filter, and nothing
// more is sent after it unsubscribes from it.
func (q *Queues) DeviceSubscriptions(deviceID string, filters []string) {
	if !slices.Contains(filters, iothub.C2DFilter(deviceID)) {
		q.mu.Lock()
		if d, ok := q.devices[deviceID]; ok {
			d.online = false
		}
		q.mu.Unlock()
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	d := q.deviceLocked(deviceID)
	if d.online {
		return // already delivering; a SUBSCRIBE to another filter changes nothing
	}
	d.online = true
	q.deliverLocked(deviceID, d)
}

// DeviceAcked completes the message that packetID carried on the device's
// live connection.
func (q *Queues) DeviceAcked(deviceID string, packetID uint16) {
	q.mu.Lock()
	defer q.mu.Unlock()
	d, ok := q.devices[deviceID]
	if !ok {
		return
	}
	i := slices.IndexFunc(d.waiting, func(e *entry) bool { return e.pid == packetID })
	if i < 0 {
		return // expired, purged, or not ours
	}
	q.storeLocked(deviceID, d.waiting[i], true)
	d.waiting = slices.Delete(d.waiting, i, i+1)
	d.counts.Completed++
	if d.online {
		q.deliverLocked(deviceID, d) // any that found the write queue full
	}
}

func (q *Queues) deviceLocked(id string) *device {
	d, ok := q.devices[id]
	if !ok {
		d = &device{}
		q.devices[id] = d
	}
	return d
}

// resetLocked forgets the deliveries of a connection that has ended.
func (q *Queues) resetLocked(d *device) {
	d.online = false
	for _, e := range d.waiting {
		e.pid = 0
	}
}

// deliverLocked sends, in order, every waiting message that has not been
// sent on the current connection. A message delivered MaxDeliveryCount
// times already is dead-lettered instead. It stops at the first refusal
// (not connected, or the connection's write queue is full); what is left
// goes on the next event.
func (q *Queues) deliverLocked(id string, d *device) {
	if q.link == nil {
		return
	}
	now := q.cfg.Now()
	q.expireLocked(id, d, now)
	kept := d.waiting[:0]
	stopped := false
	for _, e := range d.waiting {
		if stopped || e.pid != 0 {
			kept = append(kept, e)
			continue
		}
		if e.deliveries >= q.cfg.MaxDeliveryCount {
			d.counts.DeadLettered++
			q.storeLocked(id, e, true)
			q.log.Debug().Str("device", id).Str("messageId", e.m.MessageID).Msg("cloud-to-device message dead-lettered")
			continue
		}
		pid, err := q.link.DeliverQoS1(id, e.topic, e.m.Body, e.deliveries > 0)
		if err != nil {
			q.log.Debug().Err(err).Str("device", id).Msg("cloud-to-device delivery deferred")
			stopped = true
			kept = append(kept, e)
			continue
		}
		e.pid = pid
		e.deliveries++
		q.storeLocked(id, e, false)
		d.counts.Delivered++
		kept = append(kept, e)
	}
	clear(d.waiting[len(kept):])
	d.waiting = kept
}

// expireLocked drops d's messages whose time to live has passed.
func (q *Queues) expireLocked(id string, d *device, now time.Time) {
	kept := d.waiting[:0]
	for _, e := range d.waiting {
		if !now.Before(e.expiry) {
			d.counts.Expired++
			q.storeLocked(id, e, true)
			q.log.Debug().Str("device", id).Str("messageId", e.m.MessageID).Msg("cloud-to-device message expired")
			continue
		}
		kept = append(kept, e)
	}
	clear(d.waiting[len(kept):])
	d.waiting = kept
}
