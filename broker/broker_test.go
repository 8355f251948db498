package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"go.uber.org/goleak"

	"github.com/fleetsim/fleetsim/internal/iothub"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const host = "test-hub.local"

// fakeHub records what the broker hands to the hub (a fake at the interface the broker declares).
type fakeHub struct {
	mu         sync.Mutex
	published  []string
	connected  map[string]bool
	subscribed map[string][]string
}

func (h *fakeHub) DevicePublished(id string, t iothub.DeviceTopic, payload []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.published = append(h.published, id+" "+t.Kind.String()+" "+t.RequestID+" "+string(payload))
}
func (h *fakeHub) DeviceConnected(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.connected[id] = true
}
func (h *fakeHub) DeviceDisconnected(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.connected[id] = false
}
func (h *fakeHub) DeviceSubscribed(id, f string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.subscribed[id] = append(h.subscribed[id], f)
}
func (h *fakeHub) snapshot() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.published...)
}

type idents map[string]Credentials

func (m idents) DeviceCredentials(id string) (Credentials, error) {
	c, ok := m[id]
	if !ok {
		return Credentials{}, ErrUnknownDevice
	}
	return c, nil
}

var (
	key1 = []byte("key-one-32-bytes-long-0123456789")
	key2 = []byte("key-two-32-bytes-long-0123456789")
)

type env struct {
	s     *Server
	hub   *fakeHub
	certs tlsutil.Files
}

func start(t *testing.T) *env {
	t.Helper()
	certs, err := tlsutil.EnsureCerts(t.TempDir(), host)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := tlsutil.ServerConfig(certs)
	if err != nil {
		t.Fatal(err)
	}
	hub := &fakeHub{connected: map[string]bool{}, subscribed: map[string][]string{}}
	s, err := New(Config{
		Hostname: host,
		Identities: idents{
			"d1":       {PrimaryKey: key1, SecondaryKey: key2, Enabled: true},
			"d2":       {PrimaryKey: key1, Enabled: true},
			"disabled": {PrimaryKey: key1, Enabled: false},
		},
		Hub:       hub,
		TLSAddr:   "127.0.0.1:0",
		WSAddr:    "127.0.0.1:0",
		TLSConfig: tc,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	<-s.Ready()
	return &env{s: s, hub: hub, certs: certs}
}

type transport string

const (
	memory transport = "memory"
	tlsTCP transport = "tls"
	ws     transport = "websocket"
)

func (e *env) options(t *testing.T, tr transport, id, password string, clean bool) *paho.ClientOptions {
	o := paho.NewClientOptions().SetClientID(id).SetUsername(iothub.DeviceUsername(host, id, "test")).
		SetPassword(password).SetCleanSession(clean).SetAutoReconnect(false).SetConnectRetry(false).
		SetProtocolVersion(4).SetConnectTimeout(5 * time.Second).SetOrderMatters(false)
	cc, err := tlsutil.ClientConfig(e.certs)
	if err != nil {
		t.Fatal(err)
	}
	cc.ServerName = "localhost"
	switch tr {
	case memory:
		o.AddBroker("tcp://inprocess:1")
		o.SetCustomOpenConnectionFn(func(*url.URL, paho.ClientOptions) (net.Conn, error) {
			return e.s.DialMemory(context.Background())
		})
	case tlsTCP:
		o.AddBroker("ssl://" + e.s.Addrs().TLS).SetTLSConfig(cc)
	case ws:
		o.AddBroker("wss://" + e.s.Addrs().WS + WebSocketPath).SetTLSConfig(cc)
	}
	return o
}

func token(id string, key []byte, d time.Duration) string {
	return iothub.NewSAS(iothub.DeviceResource(host, id), key, "", time.Now().Add(d))
}

func connect(t *testing.T, e *env, tr transport, id, password string, clean bool) (paho.Client, error) {
	c := paho.NewClient(e.options(t, tr, id, password, clean))
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return nil, errors.New("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, nil
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestAuthentication(t *testing.T) {
	e := start(t)
	for _, tr := range []transport{memory, tlsTCP, ws} {
		t.Run(string(tr), func(t *testing.T) {
			tests := []struct {
				name, id, password string
				wantErr            string
			}{
				{"primary key", "d1", token("d1", key1, time.Hour), ""},
				{"secondary key", "d1", token("d1", key2, time.Hour), ""},
				{"wrong key", "d1", token("d1", []byte("nope-nope-nope-nope-nope-nope-32"), time.Hour), "not Authorized"},
				{"expired", "d1", token("d1", key1, -time.Minute), "not Authorized"},
				{"other device's token", "d1", token("d2", key1, time.Hour), "not Authorized"},
				{"wrong hub", "d1", iothub.NewSAS(iothub.DeviceResource("other-hub", "d1"), key1, "", time.Now().Add(time.Hour)), "not Authorized"},
				{"garbage", "d1", "hello", "not Authorized"},
				{"unknown device", "ghost", token("ghost", key1, time.Hour), "not Authorized"},
				{"disabled device", "disabled", token("disabled", key1, time.Hour), "unavailable"},
			}
			for _, tt := range tests {
				c, err := connect(t, e, tr, tt.id, tt.password, true)
				if tt.wantErr == "" {
					if err != nil {
						t.Errorf("%s: %v", tt.name, err)
					} else {
						c.Disconnect(0)
					}
					continue
				}
				if err == nil || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tt.wantErr)) {
					t.Errorf("%s: err = %v, want %q", tt.name, err, tt.wantErr)
				}
			}
		})
	}
}

func TestIsolationAndDelivery(t *testing.T) {
	e := start(t)
	got := map[string]chan string{"d1": make(chan string, 10), "d2": make(chan string, 10)}
	for _, id := range []string{"d1", "d2"} {
		c, err := connect(t, e, memory, id, token(id, key1, time.Hour), true)
		if err != nil {
			t.Fatal(err)
		}
		ch := got[id]
		if tok := c.Subscribe(iothub.FilterMethods, 0, func(_ paho.Client, m paho.Message) { ch <- m.Topic() }); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", id, tok.Error())
		}
	}
	waitFor(t, "subscriptions", func() bool {
		return e.s.Subscribed("d1", iothub.FilterMethods) && e.s.Subscribed("d2", iothub.FilterMethods)
	})
	if err := e.s.Deliver("d1", iothub.MethodRequestTopic("reboot", "1"), []byte("null")); err != nil {
		t.Fatal(err)
	}
	select {
	case topic := <-got["d1"]:
		if topic != "$iothub/methods/POST/reboot/?$rid=1" {
			t.Fatalf("d1 got %q", topic)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("d1 got nothing")
	}
	// d2 holds the same literal subscription and must not see d1's call. Send
	// d2 its own message afterwards: it arrives first only if nothing leaked.
	if err := e.s.Deliver("d2", iothub.MethodRequestTopic("own", "9"), []byte("null")); err != nil {
		t.Fatal(err)
	}
	if topic := <-got["d2"]; topic != "$iothub/methods/POST/own/?$rid=9" {
		t.Fatalf("d2 saw %q: isolation broken", topic)
	}
	if err := e.s.Deliver("ghost", "x", nil); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Deliver to an absent device = %v", err)
	}
}

func TestDevicePublishesGoToTheHubOnly(t *testing.T) {
	e := start(t)
	spy, err := connect(t, e, memory, "d2", token("d2", key1, time.Hour), true)
	if err != nil {
		t.Fatal(err)
	}
	leaked := make(chan string, 10)
	spy.Subscribe(iothub.FilterTwinResponses, 1, func(_ paho.Client, m paho.Message) { leaked <- m.Topic() }).Wait()
	c, err := connect(t, e, memory, "d1", token("d1", key1, time.Hour), true)
	if err != nil {
		t.Fatal(err)
	}
	for _, qos := range []byte{0, 1} {
		if tok := c.Publish(iothub.MethodResponseTopic(200, "7"), qos, false, `{"ok":true}`); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish QoS %d: %v", qos, tok.Error())
		}
	}
	c.Publish(iothub.TwinGetTopic("r1"), 1, true, " ").Wait() // retained: passed on, not stored
	waitFor(t, "hub messages", func() bool { return len(e.hub.snapshot()) == 3 })
	if got := e.hub.snapshot()[0]; got != `d1 method-response 7 {"ok":true}` {
		t.Fatalf("hub got %q", got)
	}
	select {
	case topic := <-leaked:
		t.Fatalf("another device saw %q", topic)
	default:
	}
}

func TestViolationsCloseTheConnection(t *testing.T) {
	e := start(t)
	tests := []struct {
		name string
		act  func(c paho.Client) paho.Token
	}{
		{"publish to an undocumented topic", func(c paho.Client) paho.Token { return c.Publish("foo/bar", 0, false, "x") }},
		{"publish into another device's telemetry", func(c paho.Client) paho.Token {
			return c.Publish("devices/d2/messages/events/", 0, false, "x")
		}},
		{"publish a method request", func(c paho.Client) paho.Token {
			return c.Publish("$iothub/methods/POST/x/?$rid=1", 0, false, "x")
		}},
		{"QoS 2 publish", func(c paho.Client) paho.Token { return c.Publish(iothub.TelemetryTopic("d1"), 2, false, "x") }},
		{"subscribe to a wildcard", func(c paho.Client) paho.Token { return c.Subscribe("#", 0, nil) }},
		{"subscribe to another device", func(c paho.Client) paho.Token {
			return c.Subscribe("devices/d2/messages/devicebound/#", 1, nil)
		}},
		{"oversize method response", func(c paho.Client) paho.Token {
			return c.Publish(iothub.MethodResponseTopic(200, "1"), 0, false, strings.Repeat("x", iothub.MaxMethodPayloadBytes+1))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := connect(t, e, memory, "d1", token("d1", key1, time.Hour), true)
			if err != nil {
				t.Fatal(err)
			}
			tt.act(c).WaitTimeout(2 * time.Second)
			waitFor(t, "the connection to close", func() bool { return !c.IsConnectionOpen() && !e.s.Connected("d1") })
		})
	}
	before := e.s.Stats().Violations
	if before < int64(len(tests)) {
		t.Fatalf("violations counted = %d", before)
	}
}

func TestPersistentSessionAndTakeover(t *testing.T) {
	e := start(t)
	pw := token("d1", key1, time.Hour)
	c, err := connect(t, e, memory, "d1", pw, false)
	if err != nil {
		t.Fatal(err)
	}
	c.Subscribe(iothub.FilterDesired, 0, nil).Wait()
	waitFor(t, "subscription", func() bool { return e.s.Subscribed("d1", iothub.FilterDesired) })

	// A refused connection with the same client id leaves the live one alone.
	if _, err := connect(t, e, tlsTCP, "d1", token("d1", []byte("wrong-wrong-wrong-wrong-wrong-32b"), time.Hour), false); err == nil {
		t.Fatal("bad key accepted")
	}
	if !c.IsConnectionOpen() || !e.s.Connected("d1") {
		t.Fatal("a refused connect dropped the live connection")
	}

	// A second accepted connection takes over; with clean=0 the subscription survives
	// and the new connection receives without subscribing again (sdk-wire-notes §2.6).
	got := make(chan string, 1)
	o := e.options(t, tlsTCP, "d1", pw, false)
	o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { got <- m.Topic() })
	c2 := paho.NewClient(o)
	if tok := c2.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("takeover connect: %v", tok.Error())
	}
	defer c2.Disconnect(0)
	waitFor(t, "old connection dropped", func() bool { return !c.IsConnectionOpen() })
	if !e.s.Subscribed("d1", iothub.FilterDesired) {
		t.Fatal("persistent session lost its subscription")
	}
	if err := e.s.Deliver("d1", iothub.DesiredPatchTopic(3), []byte(`{"$version":3}`)); err != nil {
		t.Fatal(err)
	}
	select {
	case topic := <-got:
		if topic != iothub.DesiredPatchTopic(3) {
			t.Fatalf("got %q", topic)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("desired patch not delivered to the resumed session")
	}
	e.hub.mu.Lock()
	live := e.hub.connected["d1"]
	e.hub.mu.Unlock()
	if !live {
		t.Fatal("after a takeover the hub thinks d1 is disconnected")
	}

	// clean=1 starts fresh.
	c2.Disconnect(0)
	if _, err := connect(t, e, memory, "d1", pw, true); err != nil {
		t.Fatal(err)
	}
	if e.s.Subscribed("d1", iothub.FilterDesired) {
		t.Fatal("clean session kept the old subscription")
	}
}

func TestDisconnect(t *testing.T) {
	e := start(t)
	c, err := connect(t, e, memory, "d1", token("d1", key1, time.Hour), true)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "connected", func() bool { return e.s.Connected("d1") })
	e.s.Disconnect("d1")
	waitFor(t, "disconnect", func() bool { return !c.IsConnectionOpen() })
}

func TestPlainTCPOnlyOnLoopback(t *testing.T) {
	if _, err := New(Config{Hostname: host, Identities: idents{}, TCPAddr: "0.0.0.0:0"}); err == nil {
		t.Fatal("plain MQTT on all interfaces accepted")
	}
	s, err := New(Config{Hostname: host, Identities: idents{}, TCPAddr: "127.0.0.1:0", TLSConfig: &tls.Config{}})
	if err != nil {
		t.Fatal(err)
	}
	s.closeListeners()
}
