package devicesim

import (
	"container/heap"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
	"github.com/rs/zerolog"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// Dialer opens the device's network connection; the in-process transport is
// the broker's DialMemory (a memnet listener's Dial).
type Dialer func(ctx context.Context) (net.Conn, error)

// Transport says how a device reaches the hub. Dial wins over BrokerURL.
type Transport struct {
	// Dial opens an in-process (or any custom) connection.
	Dial Dialer
	// BrokerURL is tcp://host:port, ssl://host:8883 (also mqtts://, tls://)
	// or wss://host:443/$iothub/websocket (also ws://).
	BrokerURL string
	// TLSConfig is used for ssl:// and wss://, and for DialTLS; nil uses the
	// system roots.
	TLSConfig *tls.Config
	// DialTLS opens an in-process connection on which the hub speaks TLS;
	// devices with a Certificate use it instead of Dial.
	DialTLS Dialer
	// ClientType is the DeviceClientType sent in the username; empty sends
	// DefaultClientType.
	ClientType string
}

// DefaultClientType is the DeviceClientType devicesim puts in usernames.
const DefaultClientType = "fleetsim-devicesim/1.0 (go; paho 1.5.1)"

// Identity is who a device is.
type Identity struct {
	DeviceID string
	// Key is the device's symmetric key, raw (already base64-decoded).
	Key []byte
	// Hostname is the hub name the SAS and username are made for
	// ({hub}.azure-devices.net), even when Transport connects elsewhere.
	Hostname string
	// Certificate, when set, makes the device an X.509 device: it presents
	// this TLS client certificate, sends no SAS token and needs no Key.
	Certificate *tls.Certificate
}

// DeviceConfig configures one device.
type DeviceConfig struct {
	Identity  Identity
	Transport Transport
	Behavior  Behavior
	// Seed is combined with hash(DeviceID) to seed the device's generator.
	Seed int64
	// Logger gets debug lines per device; the zero value logs nothing.
	Logger zerolog.Logger
	// Events, when set, receives events without blocking; a full channel
	// drops the event and counts it in Counters.EventsDropped.
	Events chan<- Event
}

// Errors returned by Run.
var (
	// ErrAlreadyRunning: Run was called twice on one Device.
	ErrAlreadyRunning = errors.New("devicesim: device already running")
	// ErrConfig: the configuration cannot work (missing identity or transport).
	ErrConfig = errors.New("devicesim: invalid device configuration")
)

// Limits that keep a device's memory bounded.
const (
	queueLimit        = 16               // inbound messages waiting for the device
	maxPendingMethods = 32               // method answers waiting for their latency
	maxPendingTwin    = 16               // twin requests waiting for their answer
	twinTimeout       = 60 * time.Second // C SDK: GET 60 s (reported 300 s)
	disconnectQuiesce = 250              // ms paho waits for DISCONNECT to be written
	stopWait          = 5 * time.Second  // bound on waiting for paho to finish at stop
	readBufferSize    = 512              // per-connection read buffer (paho reads byte-wise)
)

// Device is one simulated device. Create it with NewDevice and call Run.
// Its methods are safe for concurrent use.
type Device struct {
	id    string
	cfg   *DeviceConfig
	sched *Scheduler
	lim   *connectLimiter
	fleet *Fleet
	stats counters
	// lastConnErr is the device's last failed connect, for reports.
	lastConnErr atomic.Pointer[string]

	// mu guards the executor's queue and the views read by other goroutines.
	mu         sync.Mutex
	queue      []event
	running    bool // an executor goroutine is draining queue
	started    bool
	closed     bool // no more events are accepted
	wakeQueued bool
	desired    map[string]any
	reported   map[string]any
	desiredVer int64
	reportVer  int64
	wg         sync.WaitGroup // executor goroutines
	connected  atomic.Bool
	outcomes   []Outcome    // recent finished device-side work, guarded by mu
	work       atomic.Int64 // device-side work started and not finished

	// Executor state: touched only by the goroutine draining the queue.
	ctx          context.Context
	rng          *rand.Rand
	timers       timerHeap
	seq          uint64
	regAt        time.Time // earliest wake registered with sched
	conn         *connection
	live         []*connection // connections whose paho goroutines may still run
	gen          uint32
	connectAt    time.Time
	slotReserved bool
	attempt      int
	stopping     bool
	everOnline   bool
	nextWhy      connectReason
	rid          uint64
	pendingTwin  []pendingTwin
	unsent       map[string]any // reported changes waiting for a connection
	unsentWait   []reportWaiter // waiters of the changes in unsent
	ackedDesired int64
	pendingCalls int
	rebootedAt   time.Time
	downAt       time.Time // when the device went down for a reboot
	fw           *firmwareState
	telemetrySeq int64
	telGen       *TelemetryGen // the payload template's generator, made at the first message
	telTopic     string
	lastPub      mqtt.Token // the last publish on conn, to wait for writes
}

// connectReason says why the next connect happens (it decides subscriptions
// and the twin GET, as the Node SDK does).
type connectReason uint8

const (
	reasonFirst connectReason = iota
	reasonRenewal
	reasonLost
)

type evKind uint8

const (
	evStart evKind = iota
	evStop
	evWake
	evMsg
	evLost
	evRun
)

type event struct {
	kind evKind
	c    *connection
	msg  mqtt.Message
	err  error
	fn   func() // evRun
}

type pendingTwin struct {
	rid   string
	get   bool
	patch map[string]any // a reported patch, resent if the connection ends first
	wait  []reportWaiter // run when the hub answers the patch
}

// NewDevice returns a device; nothing happens until Run.
func NewDevice(cfg DeviceConfig) *Device {
	d := &Device{id: cfg.Identity.DeviceID, cfg: &cfg}
	d.init()
	return d
}

func (d *Device) init() {
	h := hashID(d.id) ^ uint64(d.cfg.Seed)
	d.rng = rand.New(rand.NewPCG(h, splitmix(h)))
}

// ID returns the device id.
func (d *Device) ID() string { return d.id }

func (d *Device) validate() error {
	id := d.cfg.Identity
	var errs []error
	if id.DeviceID == "" {
		errs = append(errs, errors.New("empty device id"))
	}
	if id.Hostname == "" {
		errs = append(errs, errors.New("empty hostname"))
	}
	if len(id.Key) == 0 && id.Certificate == nil {
		errs = append(errs, errors.New("neither a key nor a certificate"))
	}
	if id.Certificate != nil && d.cfg.Transport.Dial != nil && d.cfg.Transport.DialTLS == nil {
		errs = append(errs, errors.New("a certificate needs TLS: Dial without DialTLS"))
	}
	if d.cfg.Transport.Dial == nil && d.cfg.Transport.BrokerURL == "" {
		errs = append(errs, errors.New("neither Dial nor BrokerURL"))
	}
	if err := d.cfg.Behavior.Validate(); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: device %q: %w", ErrConfig, id.DeviceID, err)
	}
	return nil
}

// Run connects the device (retrying with backoff), subscribes, fetches its
// twin and behaves until ctx ends; then it disconnects cleanly and returns
// once every goroutine it or paho started for it has ended. It returns nil
// after a normal stop, or an error wrapping ErrConfig or ErrAlreadyRunning.
func (d *Device) Run(ctx context.Context) error {
	if err := d.validate(); err != nil {
		return err
	}
	var sched sync.WaitGroup
	if d.sched == nil {
		sctx, cancel := context.WithCancel(context.Background())
		s := NewScheduler()
		d.sched = s
		sched.Go(func() { s.Run(sctx) })
		defer func() {
			cancel()
			sched.Wait()
		}()
	}
	if err := d.start(ctx); err != nil {
		return err
	}
	<-ctx.Done()
	d.stop()
	d.wait()
	return nil
}

// start begins the device's life without blocking; the Fleet uses it so a
// parked device costs no goroutine.
func (d *Device) start(ctx context.Context) error {
	d.mu.Lock()
	if d.started {
		d.mu.Unlock()
		return fmt.Errorf("%w: %s", ErrAlreadyRunning, d.id)
	}
	d.started = true
	d.ctx = ctx
	d.mu.Unlock()
	d.post(event{kind: evStart}, true)
	return nil
}

// stop makes the device disconnect and refuse further events.
func (d *Device) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.started || d.closed {
		return
	}
	d.closed = true
	d.enqueueLocked(event{kind: evStop})
}

// wait returns when the device's executor and connections have finished.
func (d *Device) wait() { d.wg.Wait() }

// post queues ev for the executor. Messages are dropped (false) when the
// queue is full; control events (force) are always queued until the device
// is closed.
func (d *Device) post(ev event, force bool) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || !d.started {
		return false
	}
	if !force && len(d.queue) >= queueLimit {
		return false
	}
	d.enqueueLocked(ev)
	return true
}

func (d *Device) enqueueLocked(ev event) {
	d.queue = append(d.queue, ev)
	if !d.running {
		d.running = true
		d.wg.Add(1)
		go d.drain()
	}
}

// drain is the serial executor: it runs while the queue has events.
func (d *Device) drain() {
	defer d.wg.Done()
	for {
		d.mu.Lock()
		if len(d.queue) == 0 {
			d.running = false
			d.queue = nil
			d.mu.Unlock()
			return
		}
		ev := d.queue[0]
		d.queue[0] = event{}
		d.queue = d.queue[1:]
		d.mu.Unlock()
		d.handle(ev)
	}
}

// wake is called by the scheduler when the device's earliest timer is due.
func (d *Device) wake() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed || d.wakeQueued {
		return
	}
	d.wakeQueued = true
	d.enqueueLocked(event{kind: evWake})
}

func (d *Device) handle(ev event) {
	if d.stopping {
		return
	}
	switch ev.kind {
	case evStart:
		d.begin()
	case evStop:
		d.shutdown()
		return
	case evWake:
		d.mu.Lock()
		d.wakeQueued = false
		d.mu.Unlock()
		d.regAt = time.Time{}
		d.runTimers()
	case evMsg:
		if ev.c == d.conn {
			d.dispatch(ev.c, ev.msg)
		}
	case evRun:
		ev.fn()
	case evLost:
		if ev.c == d.conn {
			d.connectionEnded(ev.c, "lost", ev.err)
			d.nextWhy = reasonLost
			d.planConnect(time.Now().Add(d.backoff()))
		}
	}
	d.rearm()
}

// after runs fn on the executor once delay has passed.
func (d *Device) after(delay time.Duration, fn func()) {
	d.at(time.Now().Add(max(delay, 0)), fn)
}

// reply runs fn on the executor once delay has passed, like after, but a
// reply due at once (delay 0, the common case of a device answering a
// call) goes straight into the executor's queue behind the events already
// there, instead of through the fleet's scheduler and a wake: half the
// hand-offs. Only for replies to a received message: an action that plans
// itself again must use after, which cannot spin.
func (d *Device) reply(delay time.Duration, fn func()) {
	if delay > 0 {
		d.after(delay, fn)
		return
	}
	d.post(event{kind: evRun, fn: fn}, true)
}

func (d *Device) at(t time.Time, fn func()) {
	d.seq++
	heap.Push(&d.timers, timerItem{at: t, seq: d.seq, fn: fn})
}

// runTimers runs the due actions that existed when the wake arrived; actions
// they add wait for the next wake, so a zero delay cannot spin.
func (d *Device) runTimers() {
	limit := d.seq
	now := time.Now()
	for len(d.timers) > 0 && !d.timers[0].at.After(now) && d.timers[0].seq <= limit && !d.stopping {
		it := heap.Pop(&d.timers).(timerItem)
		it.fn()
	}
}

// rearm registers the earliest pending action with the scheduler.
func (d *Device) rearm() {
	if len(d.timers) == 0 || d.stopping {
		return
	}
	at := d.timers[0].at
	if d.regAt.IsZero() || at.Before(d.regAt) {
		d.regAt = at
		d.sched.schedule(d, at)
	}
}

func (d *Device) begin() {
	b := &d.cfg.Behavior
	now := time.Now()
	delay := time.Duration(spreadFraction(d.id, d.cfg.Seed) * float64(b.Connectivity.StartSpread))
	if chance(b.Connectivity.OfflineAtStart, d.rng) {
		if b.Connectivity.OfflineFor == nil {
			d.debug().Msg("offline for the whole run")
			return
		}
		delay += b.Connectivity.OfflineFor.Sample(d.rng)
	}
	if len(b.Reported) > 0 {
		d.reportPatch(cloneMap(b.Reported))
	}
	if b.FirmwareUpdate != nil {
		d.firmware()
		d.reportFirmware()
	}
	d.planConnect(now.Add(delay))
}

func (d *Device) shutdown() {
	d.stopping = true
	if c := d.conn; c != nil {
		d.connectionEnded(c, "stop", nil)
		c.client.Disconnect(disconnectQuiesce)
		c.markDone()
	}
	// Connections dropped without DISCONNECT end when paho notices; wait for
	// that so Run returns with nothing of this device still running.
	if len(d.live) > 0 {
		t := time.NewTimer(stopWait)
		for _, c := range d.live {
			select {
			case <-c.done:
			case <-t.C:
				d.debug().Msg("paho did not finish in time")
			}
		}
		t.Stop()
	}
	d.live = nil
	d.timers = nil
	d.pendingTwin = nil
}

// debug returns a debug event with the device id, or nil when disabled.
func (d *Device) debug() *zerolog.Event {
	return d.cfg.Logger.Debug().Str("device", d.id)
}

func (d *Device) emit(kind EventKind, method string, status int, detail string) {
	ch := d.cfg.Events
	if ch == nil {
		return
	}
	select {
	case ch <- Event{Time: time.Now(), DeviceID: d.id, Kind: kind, Method: method, Status: status, Detail: detail}:
	default:
		d.stats.evDropped.Add(1)
	}
}

func (d *Device) setConnected(up bool) {
	if d.connected.Swap(up) == up || d.fleet == nil {
		return
	}
	if up {
		d.fleet.connectedDelta(1)
	} else {
		d.fleet.connectedDelta(-1)
	}
}

// Connected reports whether the device is connected and subscribed, so it
// can take method calls now.
func (d *Device) Connected() bool { return d.connected.Load() }

// Desired returns a copy of the device's local desired properties (without
// $version; see TwinVersions).
func (d *Device) Desired() map[string]any {
	d.mu.Lock()
	defer d.mu.Unlock()
	return cloneMap(d.desired)
}

// Reported returns a copy of the device's local reported properties, as the
// device believes them to be: the last twin GET plus its own patches.
func (d *Device) Reported() map[string]any {
	d.mu.Lock()
	defer d.mu.Unlock()
	return cloneMap(d.reported)
}

// TwinVersions returns the desired $version the device has applied and the
// reported $version of its last acknowledged patch or GET.
func (d *Device) TwinVersions() (desired, reported int64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.desiredVer, d.reportVer
}

// Stats returns a snapshot of the device's counters.
func (d *Device) Stats() DeviceStats {
	return DeviceStats{DeviceID: d.id, Connected: d.Connected(), Counters: d.stats.snapshot()}
}

// dispatch routes a message from the hub.
func (d *Device) dispatch(c *connection, m mqtt.Message) {
	topic := m.Topic()
	switch {
	case strings.HasPrefix(topic, iothub.MethodRequestPrefix):
		d.onMethod(c, topic, m.Payload())
	case strings.HasPrefix(topic, iothub.TwinResponsePrefix):
		d.onTwinResponse(topic, m.Payload())
	case strings.HasPrefix(topic, iothub.TwinDesiredPrefix):
		d.onDesired(topic, m.Payload())
	case strings.HasPrefix(topic, iothub.C2DTopicPrefix(d.id)):
		d.onC2D(topic)
	default:
		d.debug().Str("topic", topic).Msg("unexpected message")
	}
}
