package hubjobs_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/fleetsim/fleetsim/hubjobs/events"
	"github.com/fleetsim/fleetsim/hubjobs/restapi"
	"github.com/fleetsim/fleetsim/internal/iothub"
	"github.com/fleetsim/fleetsim/internal/testkit"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
)

// eventsHub is a served hub with a service client and its TLS settings.
type eventsHub struct {
	c    *restapi.Client
	tls  *tls.Config
	mqtt string
	base string
}

func startEventsHub(t *testing.T) eventsHub {
	t.Helper()
	ep := testkit.StartHub(t, testkit.HubOptions{}).Endpoints()
	tc, err := tlsutil.ClientConfig(tlsutil.Files{CAFile: ep.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	c, err := restapi.NewClient(ep.ServiceConnectionString, restapi.ClientOptions{BaseURL: "https://" + ep.HTTPSAddr, TLSConfig: tc})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return eventsHub{c: c, tls: tc, mqtt: ep.MQTTAddr, base: "https://" + ep.HTTPSAddr}
}

// device registers id with tags and connects it over MQTT/TLS with paho.
// It answers every direct method with 200 {"done":true}.
func (h eventsHub) device(t *testing.T, id string, tags map[string]any) paho.Client {
	t.Helper()
	ctx := t.Context()
	raw, err := h.c.CreateDevice(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	var d struct {
		Authentication struct {
			SymmetricKey struct{ PrimaryKey string }
		}
	}
	if err := json.Unmarshal(raw, &d); err != nil {
		t.Fatal(err)
	}
	key, _ := base64.StdEncoding.DecodeString(d.Authentication.SymmetricKey.PrimaryKey)
	if tags != nil {
		patch, _ := json.Marshal(map[string]any{"tags": tags})
		if _, err := h.c.UpdateTwin(ctx, id, patch, "*"); err != nil {
			t.Fatal(err)
		}
	}
	o := paho.NewClientOptions().AddBroker("ssl://" + h.mqtt).SetClientID(id).SetTLSConfig(h.tls).
		SetUsername(iothub.DeviceUsername("localhost", id, "events-test")).
		SetPassword(iothub.NewSAS(iothub.DeviceResource("localhost", id), key, "", time.Now().Add(time.Hour))).
		SetAutoReconnect(false)
	cl := paho.NewClient(o)
	if tok := cl.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { cl.Disconnect(0) })
	tok := cl.Subscribe(iothub.FilterMethods, 0, func(c paho.Client, m paho.Message) {
		rid := strings.TrimPrefix(m.Topic()[strings.LastIndex(m.Topic(), "?"):], "?$rid=")
		c.Publish("$iothub/methods/res/200/?$rid="+rid, 0, false, `{"done":true}`)
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", id, tok.Error())
	}
	return cl
}

func publish(t *testing.T, cl paho.Client, topic, body string) {
	t.Helper()
	if tok := cl.Publish(topic, 1, false, body); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

// next reads the stream's next event, failing the test after 10 s.
func next(t *testing.T, s *restapi.EventStream) events.Message {
	t.Helper()
	type res struct {
		m   events.Message
		err error
	}
	ch := make(chan res, 1)
	go func() {
		m, err := s.Next()
		ch <- res{m, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("next event: %v", r.err)
		}
		return r.m
	case <-time.After(10 * time.Second):
		s.Close()
		<-ch
		t.Fatal("no event within 10s")
	}
	return events.Message{}
}

// TestEventsEndpoint: a watcher of one device, or of the devices a
// condition selects, gets their messages with the properties decoded from
// the topic, and their method calls and answers, and nothing of other devices.
func TestEventsEndpoint(t *testing.T) {
	h := startEventsHub(t)
	ctx := t.Context()
	d1 := h.device(t, "d1", map[string]any{"floor": 1})
	d2 := h.device(t, "d2", map[string]any{"floor": 2})

	byDevice, err := h.c.Events(ctx, restapi.EventsOptions{Device: "d1", Types: "telemetry,methodCall,methodResult"})
	if err != nil {
		t.Fatal(err)
	}
	defer byDevice.Close()
	byCond, err := h.c.Events(ctx, restapi.EventsOptions{Condition: "tags.floor = 2", Types: "telemetry"})
	if err != nil {
		t.Fatal(err)
	}
	defer byCond.Close()

	// As the Node SDK writes the topic for a message with messageId,
	// contentType, contentEncoding and two application properties.
	publish(t, d2, "devices/d2/messages/events/%24.mid=m-2&%24.ct=application%2Fjson&%24.ce=utf-8&alert=high&unit=%C2%B0C", `{"t":22}`)
	publish(t, d1, "devices/d1/messages/events/%24.mid=m-1&%24.ct=text%2Fplain&note=a%2Bb", "hello")

	m := next(t, byDevice)
	if m.Type != events.Telemetry || m.DeviceID != "d1" || m.System["message-id"] != "m-1" || m.System["content-type"] != "text/plain" ||
		m.Application["note"] != "a+b" || string(m.Payload) != `"hello"` {
		t.Errorf("device watcher got %+v", m)
	}
	m = next(t, byCond)
	if m.DeviceID != "d2" || m.System["content-encoding"] != "utf-8" || m.Application["unit"] != "°C" || m.Application["alert"] != "high" || string(m.Payload) != `{"t":22}` {
		t.Errorf("condition watcher got %+v", m)
	}

	if _, err := h.c.InvokeMethod(ctx, "d1", iothub.MethodRequest{MethodName: "reboot", Payload: json.RawMessage(`{"delay":1}`)}); err != nil {
		t.Fatal(err)
	}
	call, res := next(t, byDevice), next(t, byDevice)
	if call.Type != events.MethodCall || call.Method != "reboot" || string(call.Payload) != `{"delay":1}` {
		t.Errorf("method call event %+v", call)
	}
	if res.Type != events.MethodResult || res.Status == nil || *res.Status != 200 || res.RequestID != call.RequestID {
		t.Errorf("method result event %+v (call's rid %s)", res, call.RequestID)
	}

	// d1 joins floor 2; the condition watcher sees it after the next refresh
	// only, so it is not checked here: d2's next message is still its.
	publish(t, d1, "devices/d1/messages/events/", "x")
	publish(t, d2, "devices/d2/messages/events/", "y")
	if m := next(t, byCond); m.DeviceID != "d2" || string(m.Payload) != `"y"` {
		t.Errorf("condition watcher got %+v, want d2's second message", m)
	}

	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: h.tls}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(h.base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !regexp.MustCompile(`(?m)^fleetsim_device_events_total [1-9]`).Match(body) || !strings.Contains(string(body), "fleetsim_device_events_dropped_total 0") {
		t.Errorf("/metrics lacks the event counters")
	}
}

// TestEventsEndpointRefusals: no token is 401, a bad condition 400 with the
// query error, unknown types and device with condition 400.
func TestEventsEndpointRefusals(t *testing.T) {
	h := startEventsHub(t)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: h.tls}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(h.base + restapi.EventsPath + "?api-version=" + restapi.APIVersion)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(body), "IotHubUnauthorizedAccess") {
		t.Errorf("no token: %d %s", resp.StatusCode, body)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	for _, tt := range []struct {
		opts restapi.EventsOptions
		want string
	}{
		{restapi.EventsOptions{Condition: "tags.floor = "}, "ArgumentInvalid"},
		{restapi.EventsOptions{Types: "telemetry,nope"}, "nope"},
		{restapi.EventsOptions{Device: "d1", Condition: "tags.x = 1"}, "not both"},
	} {
		s, err := h.c.Events(ctx, tt.opts)
		var herr *iothub.Error
		if err == nil {
			s.Close()
		}
		if !errors.As(err, &herr) || herr.Code.Status() != http.StatusBadRequest || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%+v: %v, want 400 mentioning %s", tt.opts, err, tt.want)
		}
	}
}
