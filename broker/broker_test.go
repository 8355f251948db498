package broker

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/gorilla/websocket"
	"go.uber.org/goleak"

	"github.com/fleetsim/fleetsim/internal/iothub"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const host = "test-hub.local"

// fakeHub records what the broker hands to the hub (a fake at the interface the broker declares).
type fakeHub struct {
	mu        sync.Mutex
	published []string
	events    []string
	connected map[string]bool
	filters   map[string]string // the filters each live device holds, as the events said
}

func newFakeHub() *fakeHub {
	return &fakeHub{connected: map[string]bool{}, filters: map[string]string{}}
}

func (h *fakeHub) DevicePublished(id string, t iothub.DeviceTopic, payload []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	line := id + " " + t.Kind.String() + " " + t.RequestID + " " + string(payload)
	if len(t.Properties) > 0 {
		line += " " + t.Properties.Encode()
	}
	h.published = append(h.published, line)
}
func (h *fakeHub) DeviceConnected(id string, filters []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.connected[id] = true
	h.filters[id] = strings.Join(filters, " ")
	h.events = append(h.events, strings.TrimSpace("connected "+id+" "+h.filters[id]))
}
func (h *fakeHub) DeviceDisconnected(id string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.connected[id] = false
	delete(h.filters, id)
	h.events = append(h.events, "disconnected "+id)
}
func (h *fakeHub) DeviceSubscriptions(id string, filters []string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.filters[id] = strings.Join(filters, " ")
	h.events = append(h.events, "subscriptions "+id+" "+h.filters[id])
}

// held is the filters the hub was told id's live session holds.
func (h *fakeHub) held(id string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.filters[id]
}
func (h *fakeHub) snapshot() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.published...)
}
func (h *fakeHub) eventLog() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.events...)
}
func (h *fakeHub) isConnected(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.connected[id]
}

type idents map[string]Credentials

func (m idents) DeviceCredentials(id string) (Credentials, error) {
	c, ok := m[id]
	if !ok {
		return Credentials{}, ErrUnknownDevice
	}
	return c, nil
}

type policies map[string]PolicyCredentials

func (m policies) PolicyCredentials(name string) (PolicyCredentials, error) {
	p, ok := m[name]
	if !ok {
		return PolicyCredentials{}, ErrUnknownPolicy
	}
	return p, nil
}

var (
	policyKey  = []byte("policy-key-32-bytes-long-0123456")
	policyKey2 = []byte("policy-two-32-bytes-long-0123456")
	key1       = []byte("key-one-32-bytes-long-0123456789")
	key2       = []byte("key-two-32-bytes-long-0123456789")
)

type env struct {
	s     *Server
	hub   *fakeHub
	certs tlsutil.Files
}

func start(t *testing.T, opts ...func(*Config)) *env {
	t.Helper()
	certs, err := tlsutil.EnsureCerts(t.TempDir(), host)
	if err != nil {
		t.Fatal(err)
	}
	tc, err := tlsutil.ServerConfig(certs)
	if err != nil {
		t.Fatal(err)
	}
	hub := newFakeHub()
	cfg := Config{
		Hostname: host,
		Identities: idents{
			"d1":       {PrimaryKey: key1, SecondaryKey: key2, Enabled: true},
			"d2":       {PrimaryKey: key1, Enabled: true},
			"disabled": {PrimaryKey: key1, Enabled: false},
		},
		Policies: policies{
			"device":  {PrimaryKey: policyKey, DeviceConnect: true},
			"service": {PrimaryKey: policyKey2},
		},
		Hub:       hub,
		TLSAddr:   "127.0.0.1:0",
		WSAddr:    "127.0.0.1:0",
		TLSConfig: tc,
	}
	for _, o := range opts {
		o(&cfg)
	}
	s, err := New(cfg)
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

var transports = []transport{memory, tlsTCP, ws}

func TestAuthentication(t *testing.T) {
	e := start(t)
	otherKey := []byte("nope-nope-nope-nope-nope-nope-32")
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			tests := []struct {
				name     string
				opts     func(*paho.ClientOptions)
				id       string
				password string
				wantErr  string // "" accepted; else part of paho's CONNACK error text
			}{
				{name: "primary key", id: "d1", password: token("d1", key1, time.Hour)},
				{name: "secondary key", id: "d1", password: token("d1", key2, time.Hour)},
				{name: "persistent session", id: "d1", password: token("d1", key1, time.Hour), opts: func(o *paho.ClientOptions) { o.SetCleanSession(false) }},
				{name: "host in another case", id: "d1", password: token("d1", key1, time.Hour), opts: func(o *paho.ClientOptions) {
					o.SetUsername(iothub.DeviceUsername(strings.ToUpper(host), "d1", "test"))
				}},
				{name: "bad signature", id: "d1", password: token("d1", otherKey, time.Hour), wantErr: "not Authorized"},
				{name: "expired", id: "d1", password: token("d1", key1, -time.Minute), wantErr: "not Authorized"},
				{name: "wrong device in sr", id: "d1", password: token("d2", key1, time.Hour), wantErr: "not Authorized"},
				{name: "wrong hub in sr", id: "d1", password: iothub.NewSAS(iothub.DeviceResource("other-hub", "d1"), key1, "", time.Now().Add(time.Hour)), wantErr: "not Authorized"},
				{name: "wrong hub in username", id: "d1", password: token("d1", key1, time.Hour), wantErr: "not Authorized", opts: func(o *paho.ClientOptions) {
					o.SetUsername(iothub.DeviceUsername("other-hub", "d1", "test"))
				}},
				{name: "username for another device", id: "d1", password: token("d1", key1, time.Hour), wantErr: "not Authorized", opts: func(o *paho.ClientOptions) {
					o.SetUsername(iothub.DeviceUsername(host, "d2", "test"))
				}},
				// A policy with DeviceConnect signs tokens for any device (docs/iothub.md §1.3).
				{name: "policy with DeviceConnect", id: "d1", password: iothub.NewSAS(iothub.DeviceResource(host, "d1"), policyKey, "device", time.Now().Add(time.Hour))},
				{name: "policy token for the hub", id: "d2", password: iothub.NewSAS(host, policyKey, "device", time.Now().Add(time.Hour))},
				{name: "policy without DeviceConnect", id: "d1", password: iothub.NewSAS(iothub.DeviceResource(host, "d1"), policyKey2, "service", time.Now().Add(time.Hour)), wantErr: "not Authorized"},
				{name: "unknown policy", id: "d1", password: iothub.NewSAS(iothub.DeviceResource(host, "d1"), policyKey, "nope", time.Now().Add(time.Hour)), wantErr: "not Authorized"},
				{name: "device key named as a policy", id: "d1", password: iothub.NewSAS(iothub.DeviceResource(host, "d1"), key1, "device", time.Now().Add(time.Hour)), wantErr: "not Authorized"},
				{name: "policy token for another device", id: "d1", password: iothub.NewSAS(iothub.DeviceResource(host, "d2"), policyKey, "device", time.Now().Add(time.Hour)), wantErr: "not Authorized"},
				{name: "expired policy token", id: "d1", password: iothub.NewSAS(iothub.DeviceResource(host, "d1"), policyKey, "device", time.Now().Add(-time.Minute)), wantErr: "not Authorized"},
				{name: "policy token of a disabled device", id: "disabled", password: iothub.NewSAS(iothub.DeviceResource(host, "disabled"), policyKey, "device", time.Now().Add(time.Hour)), wantErr: "unavailable"},
				{name: "not a SAS token", id: "d1", password: "hello", wantErr: "not Authorized"},
				{name: "no password", id: "d1", wantErr: "not Authorized"},
				{name: "unknown device", id: "ghost", password: token("ghost", key1, time.Hour), wantErr: "not Authorized"},
				{name: "module identity", id: "d1/m1", password: token("d1", key1, time.Hour), wantErr: "not Authorized", opts: func(o *paho.ClientOptions) {
					o.SetUsername(host + "/d1/m1/?api-version=" + iothub.APIVersion)
				}},
				{name: "will on a method topic", id: "d1", password: token("d1", key1, time.Hour), wantErr: "not Authorized", opts: func(o *paho.ClientOptions) {
					o.SetWill(iothub.MethodResponseTopic(200, "1"), "x", 0, false)
				}},
				{name: "disabled device", id: "disabled", password: token("disabled", key1, time.Hour), wantErr: "unavailable"},
				{name: "MQTT 3.1", id: "d1", password: token("d1", key1, time.Hour), wantErr: "protocol", opts: func(o *paho.ClientOptions) { o.SetProtocolVersion(3) }},
			}
			for _, tt := range tests {
				o := e.options(t, tr, tt.id, tt.password, true)
				if tt.opts != nil {
					tt.opts(o)
				}
				c := paho.NewClient(o)
				tok := c.Connect()
				if !tok.WaitTimeout(10 * time.Second) {
					t.Fatalf("%s: connect timed out", tt.name)
				}
				err := tok.Error()
				if tt.wantErr == "" {
					if err != nil {
						t.Errorf("%s: %v", tt.name, err)
					}
					c.Disconnect(0)
					continue
				}
				if err == nil || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tt.wantErr)) {
					t.Errorf("%s: err = %v, want %q", tt.name, err, tt.wantErr)
				}
			}
		})
	}
	if st := e.s.Stats(); st.RejectedConnects < 3*12 || st.Connects < 3*4 {
		t.Errorf("stats = %+v", st)
	}
}

func subscribe(t *testing.T, c paho.Client, filter string, qos byte, h paho.MessageHandler) byte {
	t.Helper()
	tok := c.Subscribe(filter, qos, h)
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	return tok.(*paho.SubscribeToken).Result()[filter]
}

func receive(t *testing.T, ch <-chan string, what string) string {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatalf("nothing received: %s", what)
		return ""
	}
}

func TestIsolationAndDelivery(t *testing.T) {
	e := start(t)
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			got := map[string]chan string{"d1": make(chan string, 10), "d2": make(chan string, 10)}
			for _, id := range []string{"d1", "d2"} {
				c, err := connect(t, e, tr, id, token(id, key1, time.Hour), true)
				if err != nil {
					t.Fatal(err)
				}
				ch := got[id]
				subscribe(t, c, iothub.FilterMethods, 0, func(_ paho.Client, m paho.Message) { ch <- m.Topic() + " " + string(m.Payload()) })
			}
			waitFor(t, "subscriptions", func() bool {
				return e.s.Subscribed("d1", iothub.FilterMethods) && e.s.Subscribed("d2", iothub.FilterMethods)
			})
			if err := e.s.Deliver("d1", iothub.MethodRequestTopic("reboot", "1"), []byte("null")); err != nil {
				t.Fatal(err)
			}
			if m := receive(t, got["d1"], "d1's call"); m != "$iothub/methods/POST/reboot/?$rid=1 null" {
				t.Fatalf("d1 got %q", m)
			}
			// d2 holds the same literal subscription and must not see d1's call.
			// Send d2 its own message afterwards: it arrives first only if nothing leaked.
			if err := e.s.Deliver("d2", iothub.MethodRequestTopic("own", "9"), []byte(`{"a":1}`)); err != nil {
				t.Fatal(err)
			}
			if m := receive(t, got["d2"], "d2's call"); m != `$iothub/methods/POST/own/?$rid=9 {"a":1}` {
				t.Fatalf("d2 saw %q: isolation broken", m)
			}
		})
	}
	if err := e.s.Deliver("ghost", "x", nil); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Deliver to an unknown device = %v", err)
	}
	waitFor(t, "d1 gone", func() bool { return !e.s.Connected("d1") })
	if err := e.s.Deliver("d1", "x", nil); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Deliver to a disconnected device = %v", err)
	}
	if e.s.Subscribed("d1", iothub.FilterMethods) {
		t.Fatal("Subscribed is true without a live connection")
	}
	if st := e.s.Stats(); st.MessagesOut != 6 || st.DeliverFailures != 2 {
		t.Fatalf("stats = %+v", st)
	}
}

func TestSubscriptionRules(t *testing.T) {
	e := start(t)
	c, err := connect(t, e, memory, "d1", token("d1", key1, time.Hour), true)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 10)
	h := func(_ paho.Client, m paho.Message) { got <- m.Topic() }
	// docs/sdk-notes.md §2.4: the Node SDK sends identical SUBSCRIBEs; they are one subscription.
	for range 3 {
		subscribe(t, c, iothub.FilterMethods, 0, h)
	}
	// docs/iothub.md §1.4: a SUBSCRIBE asking QoS 2 is granted QoS 1.
	if q := subscribe(t, c, "devices/d1/messages/devicebound/#", 2, h); q != 1 {
		t.Fatalf("QoS 2 subscription granted %d, want 1", q)
	}
	e.s.Deliver("d1", iothub.MethodRequestTopic("m", "1"), []byte("null"))
	e.s.Deliver("d1", iothub.MethodRequestTopic("m", "2"), []byte("null"))
	// The client runs handlers concurrently (SetOrderMatters(false)), so the
	// two calls may be seen in either order; each must be seen once.
	seen := []string{receive(t, got, "first"), receive(t, got, "second")}
	slices.Sort(seen)
	if want := []string{iothub.MethodRequestTopic("m", "1"), iothub.MethodRequestTopic("m", "2")}; !slices.Equal(seen, want) {
		t.Fatalf("got %q, want %q: a duplicate subscription delivered twice", seen, want)
	}
	select {
	case m := <-got:
		t.Fatalf("got %q a second time", m)
	case <-time.After(100 * time.Millisecond):
	}
	want := []string{"connected d1", "subscriptions d1 " + iothub.FilterMethods, "subscriptions d1 " + iothub.FilterMethods,
		"subscriptions d1 " + iothub.FilterMethods, "subscriptions d1 " + iothub.FilterMethods + " devices/d1/messages/devicebound/#"}
	if got := e.hub.eventLog(); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("hub events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// An UNSUBSCRIBE tells the hub what the session still holds.
	if tok := c.Unsubscribe(iothub.FilterMethods); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("unsubscribe: %v", tok.Error())
	}
	if got := e.hub.held("d1"); got != "devices/d1/messages/devicebound/#" {
		t.Fatalf("after UNSUBSCRIBE the hub was told the session holds %q", got)
	}
}

func TestDevicePublishesGoToTheHubOnly(t *testing.T) {
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			e := start(t)
			spy, err := connect(t, e, tr, "d2", token("d2", key1, time.Hour), true)
			if err != nil {
				t.Fatal(err)
			}
			leaked := make(chan string, 10)
			subscribe(t, spy, iothub.FilterTwinResponses, 1, func(_ paho.Client, m paho.Message) { leaked <- m.Topic() })
			c, err := connect(t, e, tr, "d1", token("d1", key1, time.Hour), true)
			if err != nil {
				t.Fatal(err)
			}
			pubs := []struct {
				topic   string
				qos     byte
				retain  bool
				payload string
			}{
				{iothub.MethodResponseTopic(200, "7"), 0, false, `{"ok":true}`},
				{iothub.MethodResponseTopic(500, "8"), 1, false, `{}`}, // QoS 1 on $iothub is PUBACKed (§1.4)
				{iothub.TwinGetTopic("r1"), 1, true, " "},
				{iothub.TwinReportedTopic("r2"), 0, false, `{"a":1}`},
				{iothub.TelemetryTopic("d1") + "k=v", 1, true, "t"},
			}
			for _, p := range pubs {
				if tok := c.Publish(p.topic, p.qos, p.retain, p.payload); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
					t.Fatalf("publish %s: %v", p.topic, tok.Error())
				}
			}
			want := []string{
				`d1 method-response 7 {"ok":true}`,
				`d1 method-response 8 {}`,
				`d1 twin-get r1  `,
				`d1 twin-reported r2 {"a":1}`,
				`d1 telemetry  t k=v&mqtt-retain=true`,
			}
			waitFor(t, "hub messages", func() bool { return len(e.hub.snapshot()) == len(want) })
			if got := e.hub.snapshot(); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("hub got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
			// A later subscriber gets no retained message: nothing is stored.
			subscribe(t, spy, iothub.FilterDesired, 0, func(_ paho.Client, m paho.Message) { leaked <- m.Topic() })
			if err := e.s.Deliver("d2", iothub.TwinResponseTopic(200, "x", 0), nil); err != nil {
				t.Fatal(err)
			}
			if m := receive(t, leaked, "d2's own twin response"); m != iothub.TwinResponseTopic(200, "x", 0) {
				t.Fatalf("another device saw %q", m)
			}
			if st := e.s.Stats(); st.MessagesIn != int64(len(want)) {
				t.Fatalf("MessagesIn = %d", st.MessagesIn)
			}
		})
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
		{"publish a twin response", func(c paho.Client) paho.Token {
			return c.Publish(iothub.TwinResponseTopic(200, "1", 0), 0, false, "x")
		}},
		{"method response without $rid", func(c paho.Client) paho.Token { return c.Publish("$iothub/methods/res/200/", 0, false, "x") }},
		{"twin GET whose answer's topic would be longer than MQTT allows", func(c paho.Client) paho.Token {
			return c.Publish(iothub.TwinGetTopic(strings.Repeat("r", iothub.MaxTopicBytes-len(iothub.TwinGetPrefix+"?$rid="))), 0, false, " ")
		}},
		{"reported patch with an over-long $rid", func(c paho.Client) paho.Token {
			return c.Publish(iothub.TwinReportedTopic(strings.Repeat("r", iothub.MaxRequestIDLength+1)), 0, false, "{}")
		}},
		{"QoS 2 publish", func(c paho.Client) paho.Token { return c.Publish(iothub.TelemetryTopic("d1"), 2, false, "x") }},
		{"subscribe to a wildcard", func(c paho.Client) paho.Token { return c.Subscribe("#", 0, nil) }},
		{"subscribe to a twin subtopic", func(c paho.Client) paho.Token { return c.Subscribe("$iothub/twin/res/200/#", 0, nil) }},
		{"subscribe to another device", func(c paho.Client) paho.Token {
			return c.Subscribe("devices/d2/messages/devicebound/#", 1, nil)
		}},
		{"oversize method response", func(c paho.Client) paho.Token {
			return c.Publish(iothub.MethodResponseTopic(200, "1"), 0, false, strings.Repeat("x", iothub.MaxMethodPayloadBytes+1))
		}},
		{"oversize reported patch", func(c paho.Client) paho.Token {
			return c.Publish(iothub.TwinReportedTopic("1"), 0, false, strings.Repeat("x", iothub.MaxReportedBytes+1))
		}},
		{"oversize telemetry", func(c paho.Client) paho.Token {
			return c.Publish(iothub.TelemetryTopic("d1"), 1, false, strings.Repeat("x", iothub.MaxTelemetryBytes+1))
		}},
		{"packet over the broker's maximum", func(c paho.Client) paho.Token {
			return c.Publish(iothub.TelemetryTopic("d1"), 1, false, strings.Repeat("x", iothub.MaxTelemetryBytes+64*1024))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := connect(t, e, memory, "d1", token("d1", key1, time.Hour), true)
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, "connected", func() bool { return e.s.Connected("d1") })
			tt.act(c).WaitTimeout(2 * time.Second)
			waitFor(t, "the connection to close", func() bool { return !c.IsConnectionOpen() && !e.s.Connected("d1") })
		})
	}
	// The largest legal payloads pass.
	c, err := connect(t, e, memory, "d1", token("d1", key1, time.Hour), true)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		topic string
		n     int
	}{
		{iothub.MethodResponseTopic(200, "1"), iothub.MaxMethodPayloadBytes},
		{iothub.TwinReportedTopic("1"), iothub.MaxReportedBytes},
		{iothub.TelemetryTopic("d1"), iothub.MaxTelemetryBytes},
	} {
		if tok := c.Publish(p.topic, 1, false, strings.Repeat("x", p.n)); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
			t.Fatalf("publish %d bytes to %s: %v", p.n, p.topic, tok.Error())
		}
	}
	if !c.IsConnectionOpen() {
		t.Fatal("a legal payload closed the connection")
	}
	if v := e.s.Stats().Violations; v < int64(len(tests)-1) { // the last is refused by mochi's packet size check
		t.Fatalf("violations counted = %d", v)
	}
}

// TestDeliverRefusesOverlongTopic: a topic MQTT cannot carry is refused,
// never written as a malformed packet.
func TestDeliverRefusesOverlongTopic(t *testing.T) {
	e := start(t)
	if _, err := connect(t, e, memory, "d1", token("d1", key1, time.Hour), true); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "connected", func() bool { return e.s.Connected("d1") })
	topic := iothub.MethodRequestTopic(strings.Repeat("m", 70000), "1")
	if err := e.s.Deliver("d1", topic, []byte("null")); !errors.Is(err, iothub.ErrTopic) {
		t.Fatalf("Deliver of a %d-byte topic: %v, want ErrTopic", len(topic), err)
	}
	if err := e.s.Deliver("d1", iothub.MethodRequestTopic("reboot", "1"), []byte("null")); err != nil {
		t.Fatalf("Deliver: %v", err)
	}
}

func TestPersistentSessionAndTakeover(t *testing.T) {
	for _, tr := range []transport{memory, tlsTCP} {
		t.Run(string(tr), func(t *testing.T) {
			e := start(t)
			pw := token("d1", key1, time.Hour)
			c, err := connect(t, e, tr, "d1", pw, false)
			if err != nil {
				t.Fatal(err)
			}
			subscribe(t, c, iothub.FilterDesired, 0, nil)
			subscribe(t, c, iothub.FilterMethods, 0, nil)

			// docs/sdk-notes.md §2.6: a refused connection with the same client id
			// leaves the live one alone.
			for _, other := range transports {
				if _, err := connect(t, e, other, "d1", token("d1", []byte("wrong-wrong-wrong-wrong-wrong-32b"), time.Hour), false); err == nil {
					t.Fatal("bad key accepted")
				}
			}
			if !c.IsConnectionOpen() || !e.s.Connected("d1") || !e.hub.isConnected("d1") {
				t.Fatal("a refused connect dropped the live connection")
			}

			// A second accepted connection takes over; with clean=0 the subscriptions
			// survive and the new connection receives without subscribing again.
			got := make(chan string, 1)
			o := e.options(t, tr, "d1", pw, false)
			o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { got <- m.Topic() })
			c2 := paho.NewClient(o)
			if tok := c2.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
				t.Fatalf("takeover connect: %v", tok.Error())
			}
			waitFor(t, "old connection dropped", func() bool { return !c.IsConnectionOpen() })
			// The session is live once the hub hears of it; CONNACK comes a moment earlier.
			waitFor(t, "the resumed session", func() bool { return e.s.Connected("d1") })
			if !e.s.Subscribed("d1", iothub.FilterDesired) || !e.s.Subscribed("d1", iothub.FilterMethods) {
				t.Fatal("persistent session lost its subscriptions")
			}
			both := strings.Join([]string{iothub.FilterMethods, iothub.FilterDesired}, " ") // sorted
			if got := e.hub.held("d1"); got != both {
				t.Fatalf("after a takeover the hub was told the session holds %q, want %q", got, both)
			}
			if err := e.s.Deliver("d1", iothub.DesiredPatchTopic(3), []byte(`{"$version":3}`)); err != nil {
				t.Fatal(err)
			}
			if m := receive(t, got, "desired patch on the resumed session"); m != iothub.DesiredPatchTopic(3) {
				t.Fatalf("got %q", m)
			}
			if !e.hub.isConnected("d1") {
				t.Fatal("after a takeover the hub thinks d1 is disconnected")
			}

			// Token renewal: DISCONNECT, then CONNECT clean=0 with a new token.
			c2.Disconnect(0)
			waitFor(t, "disconnected", func() bool { return !e.hub.isConnected("d1") })
			c3, err := connect(t, e, tr, "d1", token("d1", key2, 2*time.Hour), false)
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the resumed session", func() bool { return e.s.Connected("d1") && e.hub.isConnected("d1") })
			if !e.s.Subscribed("d1", iothub.FilterMethods) {
				t.Fatal("a reconnect with clean=0 lost the session")
			}
			if got := e.hub.held("d1"); got != both {
				t.Fatalf("after a reconnect with clean=0 the hub was told the session holds %q, want %q", got, both)
			}
			c3.Disconnect(0)
			waitFor(t, "disconnected", func() bool { return !e.hub.isConnected("d1") })

			// clean=1 starts fresh.
			if _, err := connect(t, e, tr, "d1", pw, true); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the fresh session", func() bool { return e.s.Connected("d1") })
			if e.s.Subscribed("d1", iothub.FilterDesired) || e.s.Subscribed("d1", iothub.FilterMethods) {
				t.Fatal("clean session kept the old subscriptions")
			}
			waitFor(t, "the hub hears of the fresh session", func() bool { return e.hub.isConnected("d1") })
			if got := e.hub.held("d1"); got != "" {
				t.Fatalf("the hub was told a clean session holds %q", got)
			}
		})
	}
}

func TestDisconnectAndWill(t *testing.T) {
	e := start(t)
	o := e.options(t, memory, "d1", token("d1", key1, time.Hour), true)
	o.SetWill(iothub.TelemetryTopic("d1"), "gone", 1, false)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer c.Disconnect(0)
	waitFor(t, "connected", func() bool { return e.s.Connected("d1") && e.hub.isConnected("d1") })
	e.s.Disconnect("d1")
	waitFor(t, "disconnect", func() bool { return !c.IsConnectionOpen() && !e.hub.isConnected("d1") })
	waitFor(t, "will", func() bool { return len(e.hub.snapshot()) == 1 })
	if got := e.hub.snapshot()[0]; got != "d1 telemetry  gone" {
		t.Fatalf("hub got %q", got)
	}
	e.s.Disconnect("d1") // no connection: nothing happens
	if st := e.s.Stats(); st.Connects != 1 || st.Disconnects != 1 || st.Connected != 0 {
		t.Fatalf("stats = %+v", st)
	}
}

// A device that stops reading must not block Deliver: its queue fills and
// further messages are refused and counted.
func TestDeliverNeverBlocks(t *testing.T) {
	e := start(t, func(c *Config) { c.MaxPendingWrites = 4 })
	conn, err := e.s.DialMemory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	code, err := rawConnect(conn, bufio.NewReader(conn), "d1", iothub.DeviceUsername(host, "d1", ""), token("d1", key1, time.Hour), true)
	if err != nil || code != 0 {
		t.Fatalf("connect: code %d, %v", code, err)
	}
	waitFor(t, "connected", func() bool { return e.s.Connected("d1") })
	var full error
	for i := 0; i < 10 && full == nil; i++ {
		if err := e.s.Deliver("d1", iothub.MethodRequestTopic("m", "1"), []byte("null")); errors.Is(err, ErrQueueFull) {
			full = err
		} else if err != nil {
			t.Fatal(err)
		}
	}
	if full == nil {
		t.Fatal("the queue of a device that does not read never filled")
	}
	if e.s.Stats().QueueDropped == 0 {
		t.Fatal("drop not counted")
	}
}

func TestShutdownClosesSilentConnections(t *testing.T) {
	s, err := New(Config{Hostname: host, Identities: idents{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	<-s.Ready()
	conn, err := s.DialMemory(ctx) // never sends CONNECT
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return with a connection that never sent CONNECT")
	}
	if _, err := s.DialMemory(context.Background()); err == nil {
		t.Fatal("DialMemory after Run returned")
	}
}

func TestWebSocketSubprotocol(t *testing.T) {
	e := start(t)
	cc, err := tlsutil.ClientConfig(e.certs)
	if err != nil {
		t.Fatal(err)
	}
	cc.ServerName = "localhost"
	url := "wss://" + e.s.Addrs().WS + WebSocketPath
	for _, proto := range []string{"mqtt", "MQTT", "Mqtt"} {
		d := websocket.Dialer{TLSClientConfig: cc, Subprotocols: []string{proto}}
		c, resp, err := d.Dial(url, nil)
		if err != nil {
			t.Fatalf("%s: %v", proto, err)
		}
		if got := resp.Header.Get("Sec-Websocket-Protocol"); got != proto {
			t.Errorf("offered %q, echoed %q", proto, got)
		}
		msg := connectPacket("d1", iothub.DeviceUsername(host, "d1", ""), token("d1", key1, time.Hour), true)
		// Split the CONNECT over two messages: MQTT over WebSocket is a byte stream.
		if err := c.WriteMessage(websocket.BinaryMessage, msg[:5]); err != nil {
			t.Fatal(err)
		}
		if err := c.WriteMessage(websocket.BinaryMessage, msg[5:]); err != nil {
			t.Fatal(err)
		}
		_, b, err := c.ReadMessage()
		if err != nil || len(b) != 4 || b[0] != 0x20 || b[3] != 0 {
			t.Fatalf("%s: CONNACK %x, %v", proto, b, err)
		}
		c.Close()
	}
	d := websocket.Dialer{TLSClientConfig: cc}
	if c, resp, err := d.Dial(url, nil); err == nil {
		c.Close()
		t.Fatal("upgrade without the mqtt subprotocol accepted")
	} else if resp == nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("upgrade without subprotocol: %v", err)
	}
}

func TestWebSocketHandlerMounted(t *testing.T) {
	e := start(t)
	mux := http.NewServeMux()
	mux.Handle(WebSocketPath, e.s.WebSocketHandler())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	o := e.options(t, memory, "d1", token("d1", key1, time.Hour), true)
	o.Servers = nil
	o.CustomOpenConnectionFn = nil
	o.AddBroker("ws://" + strings.TrimPrefix(srv.URL, "http://") + WebSocketPath)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer c.Disconnect(0)
	got := make(chan string, 1)
	subscribe(t, c, iothub.FilterMethods, 0, func(_ paho.Client, m paho.Message) { got <- m.Topic() })
	if err := e.s.Deliver("d1", iothub.MethodRequestTopic("m", "1"), []byte("null")); err != nil {
		t.Fatal(err)
	}
	receive(t, got, "method over a mounted handler")
}

func TestConfigChecks(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"no identities", Config{Hostname: host}, false},
		{"no host name", Config{Identities: idents{}}, false},
		{"TLS without config", Config{Hostname: host, Identities: idents{}, TLSAddr: "127.0.0.1:0"}, false},
		{"plain MQTT on all interfaces", Config{Hostname: host, Identities: idents{}, TCPAddr: "0.0.0.0:0"}, false},
		{"plain MQTT on a LAN address", Config{Hostname: host, Identities: idents{}, TCPAddr: "192.168.1.1:1883"}, false},
		{"plain MQTT on loopback", Config{Hostname: host, Identities: idents{}, TCPAddr: "127.0.0.1:0"}, true},
		{"in-process only", Config{Hostname: host, Identities: idents{}}, true},
	}
	for _, tt := range tests {
		s, err := New(tt.cfg)
		if (err == nil) != tt.ok {
			t.Errorf("%s: err = %v", tt.name, err)
		}
		if s != nil {
			s.closeListeners()
		}
	}
}

func TestPlainTCPLoopback(t *testing.T) {
	e := start(t, func(c *Config) { c.TCPAddr = "127.0.0.1:0" })
	conn, err := net.Dial("tcp", e.s.Addrs().TCP)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	code, err := rawConnect(conn, bufio.NewReader(conn), "d1", iothub.DeviceUsername(host, "d1", ""), token("d1", key1, time.Hour), true)
	if err != nil || code != 0 {
		t.Fatalf("connect: code %d, %v", code, err)
	}
}

// answeringHub calls back into the broker from inside Hub methods, as the
// registry does: a twin GET is answered at once, a connect is greeted.
type answeringHub struct {
	*fakeHub
	s *Server
}

func (h *answeringHub) DevicePublished(id string, t iothub.DeviceTopic, payload []byte) {
	h.fakeHub.DevicePublished(id, t, payload)
	if t.Kind == iothub.KindTwinGet {
		_ = h.s.Deliver(id, iothub.TwinResponseTopic(200, t.RequestID, 4), []byte(`{"desired":{"$version":4}}`))
	}
}

func (h *answeringHub) DeviceConnected(id string, filters []string) {
	h.fakeHub.DeviceConnected(id, filters)
	if h.s.Connected(id) && !h.s.Subscribed(id, iothub.FilterDesired) {
		_ = h.s.Deliver(id, iothub.DesiredPatchTopic(1), []byte(`{"$version":1}`))
	}
}

func TestHubMayCallTheBroker(t *testing.T) {
	hub := &answeringHub{fakeHub: newFakeHub()}
	e := start(t, func(c *Config) { c.Hub = hub })
	hub.s = e.s
	got := make(chan string, 10)
	o := e.options(t, memory, "d1", token("d1", key1, time.Hour), true)
	o.SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { got <- m.Topic() })
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatal(tok.Error())
	}
	defer c.Disconnect(0)
	if m := receive(t, got, "greeting"); m != iothub.DesiredPatchTopic(1) {
		t.Fatalf("got %q", m)
	}
	subscribe(t, c, iothub.FilterTwinResponses, 0, func(_ paho.Client, m paho.Message) { got <- m.Topic() })
	c.Publish(iothub.TwinGetTopic("r1"), 0, false, " ")
	if m := receive(t, got, "twin"); m != iothub.TwinResponseTopic(200, "r1", 4) {
		t.Fatalf("got %q", m)
	}
}
