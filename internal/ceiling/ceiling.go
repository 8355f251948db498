// Package ceiling measures what paho and mochi alone reach on this machine,
// with nothing of fleetsim's behind the broker: the ceilings the fleet
// benchmarks divide their figures by, so that a figure reads as a share of
// what its two libraries allow here and compares across machines.
//
// Each measurement starts a bare mochi server with the broker's
// connection settings (a small outbound queue and small buffers) and n
// paho clients with the simulated devices' options, on the in-process
// transport. Each client gets topics of its own, of the same shape and
// length as IoT Hub's, as the hub's per-device isolation gives it.
package ceiling

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/hooks/auth"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fleetsim/fleetsim/internal/memnet"
)

// Window is the most requests outstanding at once, as the jobs engine
// keeps its device operations bounded.
const Window = 1000

// Memory is what one idle connection costs, both ends together.
type Memory struct {
	HeapBytes, StackBytes float64
	Goroutines            float64
}

// Rate is a measured throughput.
type Rate struct {
	Ops  int
	Took time.Duration
}

// PerSecond returns the operations per second.
func (r Rate) PerSecond() float64 { return float64(r.Ops) / r.Took.Seconds() }

// stand is a bare mochi server and n connected paho clients.
type stand struct {
	srv     *mqtt.Server
	ln      *memnet.Listener
	clients []paho.Client
}

// start brings up the server and n clients; each client subscribes to its
// filters (with %d for its index) and handles messages with onMessage.
func start(ctx context.Context, n int, filters []string, onMessage func(i int, c paho.Client, m paho.Message)) (*stand, error) {
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = 64
	caps.MaximumQos = 1
	caps.RetainAvailable = 0
	caps.MaximumInflight = 1024
	caps.ReceiveMaximum = 256
	caps.MinimumProtocolVersion = 4
	srv := mqtt.New(&mqtt.Options{
		Capabilities:             caps,
		ClientNetWriteBufferSize: 1024,
		ClientNetReadBufferSize:  256,
		InlineClient:             true,
		SysTopicResendInterval:   1 << 30,
		Logger:                   slog.New(slog.DiscardHandler),
	})
	if err := srv.AddHook(new(auth.AllowHook), nil); err != nil {
		return nil, fmt.Errorf("ceiling: %w", err)
	}
	s := &stand{srv: srv, ln: memnet.Listen("ceiling")}
	if err := srv.AddListener(listeners.NewNet("ceiling", s.ln)); err != nil {
		return nil, fmt.Errorf("ceiling: %w", err)
	}
	if err := srv.Serve(); err != nil {
		return nil, fmt.Errorf("ceiling: %w", err)
	}
	// As the broker does: without retained messages (mochi's $SYS values)
	// a SUBSCRIBE does not walk the topic tree on the connection's
	// goroutine, whose stack would keep that walk's growth.
	for topic := range srv.Topics.Retained.GetAll() {
		srv.Topics.RetainMessage(packets.Packet{TopicName: topic})
	}
	u := &url.URL{Scheme: "memnet", Host: "ceiling"}
	dial := func(*url.URL, paho.ClientOptions) (net.Conn, error) {
		c, err := s.ln.Dial(ctx)
		if err != nil {
			return nil, err
		}
		return &bufConn{Conn: c, br: bufio.NewReaderSize(c, 512)}, nil
	}
	// Connect from a few goroutines at once, as a fleet does.
	s.clients = make([]paho.Client, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				o := paho.NewClientOptions()
				o.Servers = []*url.URL{u}
				o.ClientID = "ceiling-" + strconv.Itoa(i)
				o.CleanSession = false
				o.Order = true
				o.SetProtocolVersion(4)
				o.KeepAlive = 0
				o.AutoReconnect = false
				o.ConnectTimeout = time.Minute
				o.CustomOpenConnectionFn = dial
				if onMessage != nil {
					o.DefaultPublishHandler = func(c paho.Client, m paho.Message) { onMessage(i, c, m) }
				}
				c := paho.NewClient(o)
				if err := wait(ctx, c.Connect()); err != nil {
					errs <- fmt.Errorf("ceiling: connect %d: %w", i, err)
					return
				}
				s.clients[i] = c
				for _, f := range filters {
					if err := wait(ctx, c.Subscribe(fmt.Sprintf(f, i), 0, nil)); err != nil {
						errs <- fmt.Errorf("ceiling: subscribe %d: %w", i, err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		s.close()
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

// close disconnects the clients and stops the server; paho's goroutines
// have ended when Disconnect returns.
func (s *stand) close() {
	for _, c := range s.clients {
		if c != nil {
			c.Disconnect(0)
		}
	}
	s.srv.Close()
	s.ln.Close()
}

func wait(ctx context.Context, t paho.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

// bufConn buffers reads: paho reads a packet a few bytes at a time.
type bufConn struct {
	net.Conn
	br *bufio.Reader
}

func (b *bufConn) Read(p []byte) (int, error) { return b.br.Read(p) }

// Topics of the same shape and length as IoT Hub's, one space per device.
const (
	methodFilter   = "$iothub/ceiling-%d/methods/POST/#"
	desiredFilter  = "$iothub/ceiling-%d/twin/PATCH/properties/desired/#"
	responseFilter = "$iothub/ceiling-%d/twin/res/#"
)

// MethodRoundTrips measures one direct-method round trip per device over n
// connected clients: a request the inline client publishes (QoS 0, at most
// Window outstanding) and the answer the client publishes back (QoS 0), as
// a method job's device operation is on the wire.
func MethodRoundTrips(ctx context.Context, n int) (Rate, error) {
	answered := newCountdown(n)
	sem := make(chan struct{}, Window)
	onMethod := func(i int, c paho.Client, m paho.Message) {
		topic := m.Topic()
		rid := topic[strings.LastIndexByte(topic, '=')+1:]
		c.Publish("$iothub/ceiling-"+strconv.Itoa(i)+"/methods/res/200/?$rid="+rid, 0, false, []byte(`{"ok":true}`))
	}
	s, err := start(ctx, n, []string{methodFilter}, onMethod)
	if err != nil {
		return Rate{}, err
	}
	defer s.close()
	var bad atomic.Int64
	err = s.srv.Subscribe("$iothub/+/methods/res/#", 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		if !strings.Contains(pk.TopicName, "/res/200/") {
			bad.Add(1)
		}
		<-sem
		answered.end()
	})
	if err != nil {
		return Rate{}, fmt.Errorf("ceiling: %w", err)
	}
	t0 := time.Now()
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return Rate{}, ctx.Err()
		}
		if err := s.srv.Publish("$iothub/ceiling-"+strconv.Itoa(i)+"/methods/POST/ping/?$rid="+strconv.Itoa(i), []byte("null"), false, 0); err != nil {
			return Rate{}, fmt.Errorf("ceiling: %w", err)
		}
	}
	if err := answered.wait(ctx); err != nil {
		return Rate{}, fmt.Errorf("ceiling: method round trips: %w", err)
	}
	took := time.Since(t0)
	if b := bad.Load(); b > 0 {
		return Rate{}, fmt.Errorf("ceiling: %d answers were not 200", b)
	}
	return Rate{Ops: n, Took: took}, nil
}

// TwinUpdates measures one acknowledged desired-property update per device
// over n connected clients, the three messages of a twin job's device
// operation: the desired patch the inline client publishes to the device,
// the reported patch the device publishes back, and the response the
// inline client publishes to the device, which ends the operation.
func TwinUpdates(ctx context.Context, n int) (Rate, error) {
	acked := newCountdown(n)
	sem := make(chan struct{}, Window)
	onMessage := func(i int, c paho.Client, m paho.Message) {
		id := "$iothub/ceiling-" + strconv.Itoa(i)
		if strings.HasPrefix(m.Topic(), id+"/twin/res/") {
			<-sem
			acked.end()
			return
		}
		c.Publish(id+"/twin/PATCH/properties/reported/?$rid="+strconv.Itoa(i), 0, false, []byte(`{"interval":30}`))
	}
	s, err := start(ctx, n, []string{desiredFilter, responseFilter}, onMessage)
	if err != nil {
		return Rate{}, err
	}
	defer s.close()
	err = s.srv.Subscribe("$iothub/+/twin/PATCH/properties/reported/#", 1, func(_ *mqtt.Client, _ packets.Subscription, pk packets.Packet) {
		dev := pk.TopicName[:strings.Index(pk.TopicName, "/twin/")]
		rid := pk.TopicName[strings.LastIndexByte(pk.TopicName, '=')+1:]
		_ = s.srv.Publish(dev+"/twin/res/204/?$rid="+rid+"&$version=2", nil, false, 0)
	})
	if err != nil {
		return Rate{}, fmt.Errorf("ceiling: %w", err)
	}
	t0 := time.Now()
	for i := range n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return Rate{}, ctx.Err()
		}
		if err := s.srv.Publish("$iothub/ceiling-"+strconv.Itoa(i)+"/twin/PATCH/properties/desired/?$version=2", []byte(`{"interval":30,"$version":2}`), false, 0); err != nil {
			return Rate{}, fmt.Errorf("ceiling: %w", err)
		}
	}
	if err := acked.wait(ctx); err != nil {
		return Rate{}, fmt.Errorf("ceiling: twin updates: %w", err)
	}
	return Rate{Ops: n, Took: time.Since(t0)}, nil
}

// IdleConnections measures what an idle paho client connected to mochi
// costs, both ends together: n clients connect and subscribe to a
// device's three topic filters, then the heap, the stacks and the
// goroutines they added are divided by n (after the GC has run and, with
// stack shrinking on, shrunk what it could).
func IdleConnections(ctx context.Context, n int) (Memory, error) {
	before := settle()
	g0 := runtime.NumGoroutine()
	s, err := start(ctx, n, []string{methodFilter, desiredFilter, responseFilter}, func(int, paho.Client, paho.Message) {})
	if err != nil {
		return Memory{}, err
	}
	defer s.close()
	after := settle()
	g1 := runtime.NumGoroutine()
	return Memory{
		HeapBytes:  float64(int64(after.HeapAlloc)-int64(before.HeapAlloc)) / float64(n),
		StackBytes: float64(int64(after.StackInuse)-int64(before.StackInuse)) / float64(n),
		Goroutines: float64(g1-g0) / float64(n),
	}, nil
}

func settle() runtime.MemStats {
	for range 4 { // each GC halves stacks that use under a quarter of their size
		runtime.GC()
	}
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m
}

// countdown is closed when n operations have ended.
type countdown struct {
	left atomic.Int64
	done chan struct{}
}

func newCountdown(n int) *countdown {
	c := &countdown{done: make(chan struct{})}
	c.left.Store(int64(n))
	if n == 0 {
		close(c.done)
	}
	return c
}

// end counts one operation ended.
func (c *countdown) end() {
	if c.left.Add(-1) == 0 {
		close(c.done)
	}
}

// wait waits for every operation or ctx.
func (c *countdown) wait(ctx context.Context) error {
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("%d operations had not ended: %w", c.left.Load(), ctx.Err())
	}
}
