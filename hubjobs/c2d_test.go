package hubjobs_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/hubjobs/restapi"
	"github.com/fleetsim/fleetsim/internal/iothub"
	"github.com/fleetsim/fleetsim/internal/testkit"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
)

// c2dEnv is a whole hub, a service client, and a registered device's key.
type c2dEnv struct {
	hub *hubjobs.Hub
	api *restapi.Client
	key []byte
}

func startC2D(t *testing.T, ids ...string) *c2dEnv {
	t.Helper()
	return startC2DHub(t, testkit.HubOptions{}, ids...)
}

// startC2DHub is startC2D with the hub's options; it creates the devices
// ids, and e.key is the last one's key.
func startC2DHub(t *testing.T, o testkit.HubOptions, ids ...string) *c2dEnv {
	t.Helper()
	hub := testkit.StartHub(t, o)
	ep := hub.Endpoints()
	tc, err := tlsutil.ClientConfig(tlsutil.Files{CAFile: ep.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	api, err := restapi.NewClient(ep.ServiceConnectionString, restapi.ClientOptions{BaseURL: "https://" + ep.HTTPSAddr, TLSConfig: tc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.CloseIdleConnections)
	e := &c2dEnv{hub: hub, api: api}
	for _, id := range ids {
		raw, err := api.CreateDevice(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		var d struct {
			Authentication struct {
				SymmetricKey struct{ PrimaryKey string } `json:"symmetricKey"`
			} `json:"authentication"`
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			t.Fatal(err)
		}
		if e.key, err = base64.StdEncoding.DecodeString(d.Authentication.SymmetricKey.PrimaryKey); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// device connects id over the in-process transport; clean false keeps
// its session. Received messages go to got.
func (e *c2dEnv) device(t *testing.T, id string, clean, autoAck bool, got chan<- paho.Message) paho.Client {
	t.Helper()
	o := paho.NewClientOptions().SetClientID(id).SetUsername(iothub.DeviceUsername("localhost", id, "test")).
		SetPassword(iothub.NewSAS(iothub.DeviceResource("localhost", id), e.key, "", time.Now().Add(time.Hour))).
		SetCleanSession(clean).SetAutoReconnect(false).SetConnectRetry(false).SetProtocolVersion(4).
		SetConnectTimeout(5 * time.Second).SetAutoAckDisabled(!autoAck).AddBroker("tcp://inprocess:1").
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { got <- m }).
		SetCustomOpenConnectionFn(func(*url.URL, paho.ClientOptions) (net.Conn, error) {
			return e.hub.Broker.DialMemory(context.Background())
		})
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	return c
}

func subscribeC2D(t *testing.T, c paho.Client, id string, got chan<- paho.Message) {
	t.Helper()
	tok := c.Subscribe(iothub.C2DFilter(id), 1, func(_ paho.Client, m paho.Message) { got <- m })
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
}

func nextC2D(t *testing.T, got <-chan paho.Message) paho.Message {
	t.Helper()
	select {
	case m := <-got:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no cloud-to-device message within 10s")
		return nil
	}
}

// TestC2DOverMQTT: a message sent over the REST endpoint while the device
// is offline waits, reaches the device at QoS 1 once it subscribes, with
// its properties in the topic as IoT Hub encodes them, and is completed by
// the PUBACK; one not acknowledged is sent again on the next connection of
// a persistent session.
func TestC2DOverMQTT(t *testing.T) {
	e := startC2D(t, "c2d-dev")
	ctx := t.Context()
	sent, err := e.api.SendC2D(ctx, "c2d-dev", restapi.C2DMessage{
		Data: "reboot now", MessageID: "m-1", CorrelationID: "c-1", ContentType: "text/plain",
		Properties: map[string]string{"kind": "command", "a b": "x&y=z"}, TTLSeconds: 600,
	})
	if err != nil {
		t.Fatal(err)
	}
	if sent.MessageID != "m-1" || sent.Queued != 1 || sent.Durable {
		t.Fatalf("send answered %+v", sent)
	}
	got := make(chan paho.Message, 8)
	c := e.device(t, "c2d-dev", false, true, got)
	subscribeC2D(t, c, "c2d-dev", got)
	m := nextC2D(t, got)
	if m.Qos() != 1 || string(m.Payload()) != "reboot now" {
		t.Fatalf("got QoS %d %q", m.Qos(), m.Payload())
	}
	p, err := iothub.ParseC2DTopic("c2d-dev", m.Topic())
	if err != nil {
		t.Fatal(err)
	}
	if p.MessageID != "m-1" || p.CorrelationID != "c-1" || p.ContentType != "text/plain" || p.To != "/devices/c2d-dev/messages/deviceBound" ||
		len(p.Properties) != 2 || p.Properties[0] != (iothub.Property{Key: "a b", Value: "x&y=z"}) || !p.Expiry.Equal(sent.ExpiryTime.Truncate(time.Millisecond)) {
		t.Fatalf("topic %q parses to %+v", m.Topic(), p)
	}
	testkit.Eventually(t, 10*time.Second, func() bool {
		st, err := e.api.C2DStatus(ctx, "c2d-dev")
		return err == nil && st.Counts.Completed == 1 && st.Counts.Queued == 0
	}, "the PUBACK completes the message")
	c.Disconnect(100)

	// Not acknowledged: sent again, with DUP, when the session comes back.
	got2 := make(chan paho.Message, 8)
	c = e.device(t, "c2d-dev", false, false, got2)
	if _, err := e.api.SendC2D(ctx, "c2d-dev", restapi.C2DMessage{Data: "second"}); err != nil {
		t.Fatal(err)
	}
	if m := nextC2D(t, got2); string(m.Payload()) != "second" {
		t.Fatalf("got %q", m.Payload())
	}
	c.Disconnect(100)
	testkit.Eventually(t, 10*time.Second, func() bool { return !e.hub.Broker.Connected("c2d-dev") }, "disconnected")
	got3 := make(chan paho.Message, 8)
	c = e.device(t, "c2d-dev", false, true, got3)
	defer c.Disconnect(100)
	m = nextC2D(t, got3)
	if string(m.Payload()) != "second" || !m.Duplicate() {
		t.Fatalf("redelivery %q dup %v", m.Payload(), m.Duplicate())
	}
	testkit.Eventually(t, 10*time.Second, func() bool {
		st, err := e.api.C2DStatus(ctx, "c2d-dev")
		return err == nil && st.Counts.Completed == 2 && st.Counts.Delivered == 3
	}, "the redelivery completes")
}

// TestC2DRESTErrors: the endpoint answers bad requests with IoT Hub's
// statuses and error bodies.
func TestC2DRESTErrors(t *testing.T) {
	e := startC2D(t, "d1")
	ctx := t.Context()
	status := func(err error) (int, string) {
		var he *iothub.Error
		if !errors.As(err, &he) {
			return 0, ""
		}
		return he.HTTPStatus(), he.Code.Name
	}
	tests := []struct {
		name       string
		method     string
		path       string
		body       any
		wantStatus int
		wantCode   string
	}{
		{"unknown device", http.MethodPost, restapi.C2DPath("nope"), restapi.C2DMessage{Data: "x"}, 404, "DeviceNotFound"},
		{"unknown device list", http.MethodGet, restapi.C2DPath("nope"), nil, 404, "DeviceNotFound"},
		{"unknown device purge", http.MethodDelete, restapi.C2DPath("nope"), nil, 404, "DeviceNotFound"},
		{"malformed JSON", http.MethodPost, restapi.C2DPath("d1"), json.RawMessage(`{"data":`), 400, "ArgumentInvalid"},
		{"unknown field", http.MethodPost, restapi.C2DPath("d1"), json.RawMessage(`{"body":"x"}`), 400, "ArgumentInvalid"},
		{"no body", http.MethodPost, restapi.C2DPath("d1"), nil, 400, "ArgumentInvalid"},
		{"both bodies", http.MethodPost, restapi.C2DPath("d1"), restapi.C2DMessage{Data: "x", DataBase64: []byte("y")}, 400, "ArgumentInvalid"},
		{"reserved property", http.MethodPost, restapi.C2DPath("d1"), restapi.C2DMessage{Properties: map[string]string{"$.mid": "x"}}, 400, "ArgumentInvalid"},
		{"too large", http.MethodPost, restapi.C2DPath("d1"), restapi.C2DMessage{DataBase64: make([]byte, iothub.MaxC2DBytes+1)}, 413, "MessageTooLarge"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := e.api.Do(ctx, tt.method, tt.path, tt.body, nil)
			if s, c := status(err); s != tt.wantStatus || c != tt.wantCode {
				t.Fatalf("%s %s: %v, want %d %s", tt.method, tt.path, err, tt.wantStatus, tt.wantCode)
			}
		})
	}
	for i := range iothub.MaxC2DQueueDepth {
		if _, err := e.api.SendC2D(ctx, "d1", restapi.C2DMessage{Data: "x"}); err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
	}
	_, err := e.api.SendC2D(ctx, "d1", restapi.C2DMessage{Data: "x"})
	if s, c := status(err); s != 403 || c != "DeviceMaximumQueueDepthExceeded" {
		t.Fatalf("51st message: %v", err)
	}
	purged, err := e.api.PurgeC2D(ctx, "d1")
	if err != nil || purged.TotalMessagesPurged != iothub.MaxC2DQueueDepth {
		t.Fatalf("purge: %+v, %v", purged, err)
	}
}

// TestC2DQueuesAreDurable: a hub with a data directory keeps the messages
// that wait across a restart and delivers them, in order, to a device that
// connects afterwards; a completed message is not delivered again, and a
// delivered one not acknowledged before the restart comes again with DUP.
func TestC2DQueuesAreDurable(t *testing.T) {
	dir := t.TempDir()
	var key []byte
	t.Run("before", func(t *testing.T) {
		e := startC2DHub(t, testkit.HubOptions{DataDir: dir}, "d1")
		key = e.key
		ctx := t.Context()
		send := func(data string) {
			t.Helper()
			if sent, err := e.api.SendC2D(ctx, "d1", restapi.C2DMessage{Data: data, MessageID: data}); err != nil || !sent.Durable {
				t.Fatalf("send %s: %+v, %v", data, sent, err)
			}
		}
		send("m1")
		got := make(chan paho.Message, 8)
		c := e.device(t, "d1", true, true, got)
		subscribeC2D(t, c, "d1", got)
		if m := nextC2D(t, got); string(m.Payload()) != "m1" {
			t.Fatalf("got %q", m.Payload())
		}
		testkit.Eventually(t, 10*time.Second, func() bool {
			st, err := e.api.C2DStatus(ctx, "d1")
			return err == nil && st.Counts.Completed == 1
		}, "m1 completed")
		c.Disconnect(100)
		testkit.Eventually(t, 10*time.Second, func() bool { return !e.hub.Broker.Connected("d1") }, "disconnected")

		send("m2")
		send("m3")
		// Delivered and never acknowledged.
		got = make(chan paho.Message, 8)
		c = e.device(t, "d1", true, false, got)
		subscribeC2D(t, c, "d1", got)
		for _, want := range []string{"m2", "m3"} {
			if m := nextC2D(t, got); string(m.Payload()) != want {
				t.Fatalf("got %q, want %s", m.Payload(), want)
			}
		}
		c.Disconnect(100)
		send("m4")
		st, err := e.api.C2DStatus(ctx, "d1")
		if err != nil || !st.Durable || st.Counts.Queued != 3 {
			t.Fatalf("before the restart: %+v, %v", st, err)
		}
	})
	t.Run("after", func(t *testing.T) {
		e := startC2DHub(t, testkit.HubOptions{DataDir: dir})
		e.key = key
		ctx := t.Context()
		st, err := e.api.C2DStatus(ctx, "d1")
		if err != nil || !st.Durable || len(st.Messages) != 3 || st.Messages[0].DeliveryCount != 1 || st.Messages[2].DeliveryCount != 0 {
			t.Fatalf("after the restart: %+v, %v", st, err)
		}
		got := make(chan paho.Message, 8)
		c := e.device(t, "d1", true, true, got)
		defer c.Disconnect(100)
		subscribeC2D(t, c, "d1", got)
		for _, want := range []struct {
			body string
			dup  bool
		}{{"m2", true}, {"m3", true}, {"m4", false}} {
			m := nextC2D(t, got)
			if string(m.Payload()) != want.body || m.Duplicate() != want.dup {
				t.Fatalf("got %q dup %v, want %s dup %v", m.Payload(), m.Duplicate(), want.body, want.dup)
			}
		}
		testkit.Eventually(t, 10*time.Second, func() bool {
			st, err := e.api.C2DStatus(ctx, "d1")
			return err == nil && st.Counts.Completed == 3 && st.Counts.Queued == 0
		}, "the stored messages completed")
		select {
		case m := <-got:
			t.Fatalf("delivered again: %q", m.Payload())
		default:
		}
	})
	t.Run("again", func(t *testing.T) {
		e := startC2DHub(t, testkit.HubOptions{DataDir: dir})
		if st, err := e.api.C2DStatus(t.Context(), "d1"); err != nil || st.Counts.Queued != 0 {
			t.Fatalf("completed messages came back: %+v, %v", st, err)
		}
	})
}

// TestC2DInMemoryNotDurable: without a data directory the answers say the
// queues are not durable.
func TestC2DInMemoryNotDurable(t *testing.T) {
	e := startC2D(t, "d1")
	if sent, err := e.api.SendC2D(t.Context(), "d1", restapi.C2DMessage{Data: "x"}); err != nil || sent.Durable {
		t.Fatalf("send: %+v, %v", sent, err)
	}
	if st, err := e.api.C2DStatus(t.Context(), "d1"); err != nil || st.Durable {
		t.Fatalf("status: %+v, %v", st, err)
	}
}
