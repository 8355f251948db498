package devicesim

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// connection is one paho client, used for one network connection only: paho
// warns that a client must not be reused after Disconnect, so every
// (re)connect makes a new one.
type connection struct {
	d      *Device
	client mqtt.Client
	raw    atomic.Pointer[killableConn]
	abort  func() bool // stops the ctx watcher armed for the handshake
	done   chan struct{}
	once   sync.Once
}

// markDone records that paho's goroutines for this client have finished.
func (c *connection) markDone() { c.once.Do(func() { close(c.done) }) }

// onMessage is paho's publish handler. It runs on paho's router goroutine,
// which must never block (or the connection deadlocks), so it only queues.
func (c *connection) onMessage(_ mqtt.Client, m mqtt.Message) {
	if !c.d.post(event{kind: evMsg, c: c, msg: m}, false) {
		c.d.stats.queueDropped.Add(1)
		if t := m.Topic(); len(t) > len(iothub.MethodRequestPrefix) && t[:len(iothub.MethodRequestPrefix)] == iothub.MethodRequestPrefix {
			c.d.stats.methodCalls.Add(1)
			c.d.stats.methodsUnanswered.Add(1)
		}
	}
}

// onLost is paho's connection-lost handler; paho calls it after its comms
// goroutines have stopped.
func (c *connection) onLost(_ mqtt.Client, err error) {
	c.markDone()
	c.d.post(event{kind: evLost, c: c, err: err}, true)
}

// kill drops the connection without DISCONNECT, as a crash or a pulled cable
// would; paho then reports the loss.
func (c *connection) kill() {
	if k := c.raw.Load(); k != nil {
		k.kill()
	}
}

var errKilled = errors.New("devicesim: connection dropped by the simulation")

// killableConn lets the simulation drop a connection so that paho sees an
// error (paho treats "use of closed network connection" as a deliberate
// close and would not report the loss), and buffers reads because paho reads
// packets a few bytes at a time.
type killableConn struct {
	net.Conn
	br     *bufio.Reader
	killed atomic.Bool
}

func (k *killableConn) Read(p []byte) (int, error) {
	n, err := k.br.Read(p)
	if err != nil && k.killed.Load() {
		err = errKilled
	}
	return n, err
}

func (k *killableConn) kill() {
	k.killed.Store(true)
	k.Conn.Close()
}

// dial opens the network connection for c.
func (c *connection) dial(uri *url.URL, o mqtt.ClientOptions) (net.Conn, error) {
	d := c.d
	t := &d.cfg.Transport
	timeout := d.cfg.Behavior.Connectivity.withDefaults().ConnectTimeout
	ctx, cancel := context.WithTimeout(d.ctx, timeout)
	defer cancel()
	if cert := d.cfg.Identity.Certificate; cert != nil {
		ctx = context.WithValue(ctx, certKey{}, cert)
	}
	var (
		conn net.Conn
		err  error
	)
	switch {
	case t.Dial != nil && d.cfg.Identity.Certificate != nil:
		conn, err = dialTLS(ctx, t.DialTLS, o.TLSConfig)
	case t.Dial != nil:
		conn, err = t.Dial(ctx)
	case uri.Scheme == "tcp" || uri.Scheme == "mqtt":
		var nd net.Dialer
		conn, err = nd.DialContext(ctx, "tcp", uri.Host)
	case uri.Scheme == "ssl" || uri.Scheme == "tls" || uri.Scheme == "mqtts" || uri.Scheme == "tcps":
		td := tls.Dialer{Config: o.TLSConfig}
		conn, err = td.DialContext(ctx, "tcp", uri.Host)
	case uri.Scheme == "ws" || uri.Scheme == "wss":
		conn, err = mqtt.NewWebsocket(uri.String(), o.TLSConfig, timeout, nil, nil)
	default:
		err = fmt.Errorf("unsupported broker URL scheme %q", uri.Scheme)
	}
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", d.id, err)
	}
	k := &killableConn{Conn: conn, br: bufio.NewReaderSize(conn, readBufferSize)}
	c.raw.Store(k)
	// Abort the CONNECT handshake when the device stops.
	c.abort = context.AfterFunc(d.ctx, k.kill)
	return k, nil
}

var brokerURLs sync.Map // string → *url.URL, shared by all devices

func parseBrokerURL(s string) (*url.URL, error) {
	if u, ok := brokerURLs.Load(s); ok {
		return u.(*url.URL), nil
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("broker URL %q: %w", s, err)
	}
	brokerURLs.Store(s, u)
	return u, nil
}

var memoryURL = &url.URL{Scheme: "memnet", Host: "fleetsim"}

// options builds the paho options of one connection.
func (d *Device) options(c *connection, password string) (*mqtt.ClientOptions, error) {
	conn := d.cfg.Behavior.Connectivity.withDefaults()
	o := mqtt.NewClientOptions()
	if d.cfg.Transport.Dial != nil {
		o.Servers = []*url.URL{memoryURL}
	} else {
		u, err := parseBrokerURL(d.cfg.Transport.BrokerURL)
		if err != nil {
			return nil, err
		}
		o.Servers = []*url.URL{u}
	}
	ct := d.cfg.Transport.ClientType
	if ct == "" {
		ct = DefaultClientType
	}
	o.ClientID = d.id
	o.Username = iothub.DeviceUsername(d.cfg.Identity.Hostname, d.id, ct)
	o.Password = password
	o.CleanSession = false // docs/sdk-notes.md §2.3: the SDKs send clean session 0
	o.Order = true         // our handler never blocks; false would spawn a goroutine per message
	o.SetProtocolVersion(4)
	o.KeepAlive = int64(max(conn.KeepAlive, 0) / time.Second)
	o.PingTimeout = 30 * time.Second
	o.ConnectTimeout = conn.ConnectTimeout
	o.WriteTimeout = conn.ConnectTimeout
	o.AutoReconnect = false // the device reconnects itself, with a fresh token
	o.ConnectRetry = false
	o.TLSConfig = d.cfg.Transport.TLSConfig
	if cert := d.cfg.Identity.Certificate; cert != nil {
		ws := d.cfg.Transport.Dial == nil && (o.Servers[0].Scheme == "ws" || o.Servers[0].Scheme == "wss")
		o.TLSConfig = withCertificate(o.TLSConfig, cert, ws)
	}
	o.AutoAckDisabled = !d.cfg.Behavior.C2D.acks() // hub messages at QoS 1 are cloud-to-device messages alone
	o.DefaultPublishHandler = c.onMessage
	o.OnConnectionLost = c.onLost
	o.CustomOpenConnectionFn = c.dial
	o.HTTPHeaders = nil
	o.Dialer = nil
	return o, nil
}

// planConnect makes the device connect at t.
func (d *Device) planConnect(t time.Time) {
	d.connectAt = t
	d.at(t, d.tryConnect)
}

// backoff returns the wait before the next connect attempt: exponential with
// full jitter, as the SDKs' retry policies do.
func (d *Device) backoff() time.Duration {
	b := d.cfg.Behavior.Connectivity.withDefaults().Backoff
	ceil := b.Initial
	for i := 0; i < d.attempt && ceil < b.Max; i++ {
		ceil *= 2
	}
	ceil = min(ceil, b.Max)
	return time.Duration(d.rng.Int64N(int64(ceil) + 1))
}

func (d *Device) tryConnect() {
	now := time.Now()
	if d.conn != nil || d.stopping || d.connectAt.IsZero() || now.Before(d.connectAt) {
		return
	}
	if d.lim != nil && !d.slotReserved {
		d.slotReserved = true
		if slot := d.lim.reserve(now); slot.After(now) {
			d.planConnect(slot)
			return
		}
	}
	d.slotReserved = false
	d.connectAt = time.Time{}
	why := d.nextWhy
	if err := d.connect(why); err != nil {
		if d.ctx.Err() != nil {
			return
		}
		d.attempt++
		d.stats.connectFailures.Add(1)
		msg := err.Error()
		d.lastConnErr.Store(&msg)
		d.emit(EventConnectFailed, "", 0, err.Error())
		d.debug().Err(err).Msg("connect failed")
		d.planConnect(time.Now().Add(d.backoff()))
		return
	}
	d.attempt = 0
}

// connect opens one MQTT connection and sets it up as the SDK would.
func (d *Device) connect(why connectReason) error {
	conf := d.cfg.Behavior.Connectivity.withDefaults()
	now := time.Now()
	expiry := now.Add(conf.TokenLifetime)
	sas := ""
	if d.cfg.Identity.Certificate == nil {
		sas = iothub.NewSAS(iothub.DeviceResource(d.cfg.Identity.Hostname, d.id), d.cfg.Identity.Key, "", expiry)
	}
	c := &connection{d: d, done: make(chan struct{})}
	o, err := d.options(c, sas)
	if err != nil {
		return err
	}
	client := mqtt.NewClient(o)
	tok := client.Connect()
	<-tok.Done() // bounded by ConnectTimeout, and by ctx through abort
	if c.abort != nil {
		c.abort()
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("connect %s: %w", d.id, err)
	}
	session := tok.(*mqtt.ConnectToken).SessionPresent()
	c.client = client
	d.gen++
	d.conn = c
	d.live = append(d.live, c)
	d.stats.connects.Add(1)
	detail := ""
	if session {
		detail = "session"
	}
	d.emit(EventConnected, "", 0, detail)
	d.debug().Bool("session", session).Msg("connected")

	gen := d.gen
	if d.cfg.Identity.Certificate == nil { // an X.509 device has no token to renew
		d.at(expiry.Add(-conf.RenewalMargin), func() { d.renew(gen) })
	}
	if f := conf.Flapping; f != nil {
		d.after(sample(f.MTBF, d.rng), func() { d.flap(gen) })
	}

	if err := d.subscribe(c, why, session); err != nil {
		d.debug().Err(err).Msg("subscribe failed")
		d.dropConnection(c, "lost", 0)
		return nil
	}
	// Connected (and Fleet.Ready) means able to take method calls.
	d.setConnected(true)
	if why != reasonRenewal || !d.everOnline {
		d.getTwin(c)
	}
	d.everOnline = true
	d.flushReported()
	if t := d.cfg.Behavior.Telemetry; t != nil {
		d.after(sample(t.Interval, d.rng), func() { d.sendTelemetry(gen) })
	}
	d.afterReboot()
	return nil
}

// subscribe sends the SUBSCRIBEs the mode asks for, one filter per packet
// like the Node SDK, pipelined, and waits for the SUBACKs.
func (d *Device) subscribe(c *connection, why connectReason, session bool) error {
	var filters []string
	all := []string{iothub.FilterMethods, iothub.FilterTwinResponses, iothub.FilterDesired}
	switch d.cfg.Behavior.Connectivity.Subscribe {
	case SubscribeAlways:
		filters = all
	case SubscribeNodeSDK:
		switch {
		case !d.everOnline:
			filters = all
		case why == reasonLost:
			filters = all[:1]
		}
	default:
		// A session present before the device was ever online is the
		// empty one an aborted connect attempt left behind.
		if !session || !d.everOnline {
			filters = all
		}
	}
	qos := make([]byte, len(filters))
	if f, ok := d.c2dFilter(); ok && len(filters) == len(all) {
		// Whenever the device subscribes to everything: a persistent
		// session keeps it across reconnects, as the other filters.
		filters, qos = append(filters, f), append(qos, 1) // the SDKs take these at QoS 1
	}
	toks := make([]mqtt.Token, len(filters))
	for i, f := range filters {
		toks[i] = c.client.Subscribe(f, qos[i], nil)
	}
	timeout := d.cfg.Behavior.Connectivity.withDefaults().ConnectTimeout
	for i, t := range toks {
		if err := d.waitToken(t, timeout); err != nil {
			return fmt.Errorf("subscribe %s: %w", filters[i], err)
		}
	}
	return nil
}

var errTimeout = errors.New("timed out")

// waitToken waits for a paho token, bounded by timeout and the device's ctx.
func (d *Device) waitToken(t mqtt.Token, timeout time.Duration) error {
	select {
	case <-t.Done():
		return t.Error()
	default:
	}
	tm := time.NewTimer(timeout)
	defer tm.Stop()
	select {
	case <-t.Done():
		return t.Error()
	case <-tm.C:
		return errTimeout
	case <-d.ctx.Done():
		return d.ctx.Err()
	}
}

// publish sends a message on the current connection. With wait it returns
// once the packet is written (for QoS 0) or acknowledged (QoS 1).
func (d *Device) publish(c *connection, topic string, qos byte, payload []byte, wait bool) error {
	t := c.client.Publish(topic, qos, false, payload)
	d.lastPub = t
	if wait {
		return d.waitToken(t, d.cfg.Behavior.Connectivity.withDefaults().ConnectTimeout)
	}
	select {
	case <-t.Done():
		return t.Error()
	default:
		return nil
	}
}

// connectionEnded updates the device's state when c goes away, whatever the
// reason; pending answers of c are abandoned by their gen check.
func (d *Device) connectionEnded(c *connection, why string, err error) {
	if d.conn != c {
		return
	}
	d.conn = nil
	d.lastPub = nil
	d.setConnected(false)
	d.stats.disconnects.Add(1)
	d.requeuePending()
	detail := why
	if err != nil {
		detail = why + ": " + err.Error()
	}
	d.emit(EventDisconnected, "", 0, detail)
	d.debug().Str("why", detail).Msg("disconnected")
	d.pruneLive()
}

// pruneLive forgets connections whose paho goroutines have finished.
func (d *Device) pruneLive() {
	live := d.live[:0]
	for _, c := range d.live {
		select {
		case <-c.done:
		default:
			live = append(live, c)
		}
	}
	clear(d.live[len(live):])
	d.live = live
}

// dropConnection ends c without DISCONNECT and plans the reconnect after
// offline (or after the backoff when offline is 0).
func (d *Device) dropConnection(c *connection, why string, offline time.Duration) {
	if d.conn != c {
		return
	}
	d.connectionEnded(c, why, nil)
	c.kill()
	if offline <= 0 {
		offline = d.backoff()
	}
	d.nextWhy = reasonLost
	d.planConnect(time.Now().Add(offline))
}

// renew replaces the SAS token before it expires: DISCONNECT, then CONNECT
// with the same client id, clean session 0 and a new se (Node SDK, §2.6).
func (d *Device) renew(gen uint32) {
	c := d.conn
	if c == nil || d.gen != gen {
		return
	}
	d.stats.tokenRenewals.Add(1)
	d.emit(EventTokenRenewed, "", 0, "")
	d.connectionEnded(c, "renewal", nil)
	c.client.Disconnect(disconnectQuiesce)
	c.markDone()
	d.pruneLive()
	d.nextWhy = reasonRenewal
	d.planConnect(time.Now())
	// A renewal reconnects at once, bypassing the connect-rate limit slot
	// it already had, as the SDK would.
	d.slotReserved = true
}

// flap drops the connection after its sampled up-time.
func (d *Device) flap(gen uint32) {
	c := d.conn
	f := d.cfg.Behavior.Connectivity.Flapping
	if c == nil || d.gen != gen || f == nil {
		return
	}
	d.dropConnection(c, "flap", max(sample(f.MTTR, d.rng), time.Millisecond))
}
