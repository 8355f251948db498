package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

func TestRingBounds(t *testing.T) {
	s := New(Options{Capacity: 8, PerDevice: 3, MaxDevices: 2, MaxBody: 4})
	for i := range 20 {
		s.Record(Event{Type: Telemetry, DeviceID: fmt.Sprintf("d%d", i%4), Body: []byte("0123456789")})
	}
	if got := s.Total(); got != 20 {
		t.Errorf("Total = %d, want 20", got)
	}
	all := s.Recent("", 0, -1)
	if len(all) != 8 || all[0].Seq != 13 || all[7].Seq != 20 {
		t.Fatalf("Recent overall: %d events from seq %d, want the last 8 (13..20)", len(all), all[0].Seq)
	}
	for _, e := range all {
		if string(e.Body) != "0123" || e.Size != 10 || !e.Truncated() {
			t.Errorf("event %d keeps body %q size %d, want the first 4 of 10 bytes", e.Seq, e.Body, e.Size)
		}
	}
	// d0 and d1 have their own rings (MaxDevices 2): the last 3 each.
	d0 := s.Recent("d0", 0, -1)
	if len(d0) != 3 || d0[0].Seq != 9 || d0[2].Seq != 17 {
		t.Errorf("Recent(d0) = %v, want seqs 9, 13, 17", seqs(d0))
	}
	// d3 has none: what is left of it in the overall ring.
	if d3 := s.Recent("d3", 0, -1); len(d3) != 2 || d3[1].Seq != 20 {
		t.Errorf("Recent(d3) = %v, want seqs 16, 20", seqs(d3))
	}
	if got := s.Recent("d0", 0, 1); len(got) != 1 || got[0].Seq != 17 {
		t.Errorf("Recent(d0, 1) = %v, want [17]", seqs(got))
	}
	if got := s.Recent("d0", TypeSet(0).With(Connect), -1); len(got) != 0 {
		t.Errorf("Recent(d0, connect) = %v, want none", seqs(got))
	}
}

func seqs(es []Event) []uint64 {
	var out []uint64
	for _, e := range es {
		out = append(out, e.Seq)
	}
	return out
}

func TestSubscriptionFilterAndDrops(t *testing.T) {
	s := New(Options{})
	sub := s.Subscribe(Filter{Types: TypeSet(0).With(Telemetry), Devices: []string{"a"}, Buffer: 2})
	defer sub.Close()
	other := s.Subscribe(Filter{Buffer: 100})
	for i := range 5 {
		s.Record(Event{Type: Telemetry, DeviceID: "a", Body: []byte{byte('0' + i)}})
		s.Record(Event{Type: Telemetry, DeviceID: "b"})
		s.Record(Event{Type: Connect, DeviceID: "a"})
	}
	// Nobody reads sub: it holds the first two of a's five messages and has
	// dropped three; other got all fifteen.
	if got := sub.Dropped(); got != 3 {
		t.Errorf("sub.Dropped = %d, want 3", got)
	}
	if got := s.Dropped(); got != 3 {
		t.Errorf("stream Dropped = %d, want 3", got)
	}
	for _, want := range []string{"0", "1"} {
		if e := <-sub.C; e.DeviceID != "a" || string(e.Body) != want {
			t.Errorf("got %s %s %q, want a's telemetry %q", e.Type, e.DeviceID, e.Body, want)
		}
	}
	if len(other.C) != 15 {
		t.Errorf("other has %d events, want 15", len(other.C))
	}
	other.Close()
	other.Close()
	if _, ok := <-other.C; !ok {
		t.Error("closed subscription's channel: the buffered events should still be readable")
	}
	sub.SetDevices([]string{"b"})
	s.Record(Event{Type: Telemetry, DeviceID: "b"})
	if e := <-sub.C; e.DeviceID != "b" {
		t.Errorf("after SetDevices(b) got %s", e.DeviceID)
	}
}

func TestPublishedAndDelivered(t *testing.T) {
	s := New(Options{})
	topic := "devices/d1/messages/events/%24.mid=m1&%24.ct=application%2Fjson&%24.ce=utf-8&alert=high"
	dt, err := iothub.ParseDeviceTopic("d1", topic)
	if err != nil {
		t.Fatal(err)
	}
	s.Published("d1", dt, []byte(`{"t":21.5}`))
	s.Published("d1/m1", iothub.DeviceTopic{Kind: iothub.KindTwinReported, RequestID: "7"}, []byte(`{"firmware":{"phase":"downloading"}}`))
	s.Published("d1", iothub.DeviceTopic{Kind: iothub.KindTwinReported, RequestID: "8"}, []byte(`{"ack":1}`))
	s.Published("d1", iothub.DeviceTopic{Kind: iothub.KindTwinGet, RequestID: "9"}, nil)
	s.Published("d1", iothub.DeviceTopic{Kind: iothub.KindMethodResponse, RequestID: "a", Status: 200}, []byte(`{"ok":true}`))
	s.Delivered("d1", "$iothub/methods/POST/reboot/?$rid=a", []byte(`{}`))
	s.Delivered("d1", "$iothub/twin/PATCH/properties/desired/?$version=4", []byte(`{"x":1,"$version":4}`))
	s.Delivered("d1", "$iothub/twin/res/200/?$rid=9", []byte(`{}`))
	got := s.Recent("", 0, -1)
	var types []string
	for _, e := range got {
		types = append(types, e.Type.String())
	}
	want := "[telemetry firmware reported methodResult methodCall desiredPatch]"
	if fmt.Sprint(types) != want {
		t.Fatalf("types %v, want %s", types, want)
	}
	if got[1].DeviceID != "d1" || got[1].ModuleID != "m1" {
		t.Errorf("module event: device %q module %q", got[1].DeviceID, got[1].ModuleID)
	}
	if got[4].Method != "reboot" || got[4].RequestID != "a" || got[5].Version != "4" {
		t.Errorf("method call %+v, desired patch %+v", got[4], got[5])
	}
	m := got[0].Message()
	b, _ := json.Marshal(m)
	for _, want := range []string{`"type":"telemetry"`, `"message-id":"m1"`, `"content-type":"application/json"`,
		`"content-encoding":"utf-8"`, `"applicationProperties":{"alert":"high"}`, `"payload":{"t":21.5}`, `"iothub-connection-device-id":"d1"`} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("message %s lacks %s", b, want)
		}
	}
	if st := got[3].Message().Status; st == nil || *st != 200 {
		t.Errorf("method result status %v", st)
	}
}

func TestMessagePayloadForms(t *testing.T) {
	for _, tt := range []struct {
		body []byte
		want string
	}{
		{[]byte("hello"), `"payload":"hello"`},
		{[]byte{0xff, 0x00}, `"payload":"/wA=","payloadEncoding":"base64"`},
		{[]byte(`[1,2]`), `"payload":[1,2]`},
	} {
		e := Event{Type: Telemetry, DeviceID: "d", Body: tt.body, Size: len(tt.body)}
		b, _ := json.Marshal(e.Message())
		if !bytes.Contains(b, []byte(tt.want)) {
			t.Errorf("%q: %s lacks %s", tt.body, b, tt.want)
		}
	}
}

func TestParseTypes(t *testing.T) {
	s, err := ParseTypes("telemetry, Connect")
	if err != nil || !s.Has(Telemetry) || !s.Has(Connect) || s.Has(MethodCall) || s.String() != "telemetry,connect" {
		t.Errorf("ParseTypes = %v (%s), %v", s, s, err)
	}
	if _, err := ParseTypes("telemetry,bogus"); err == nil {
		t.Error("ParseTypes(bogus): no error")
	}
	if s, _ := ParseTypes(""); !s.Has(Firmware) {
		t.Error("empty set should hold every type")
	}
}
