package events

import (
	"bytes"
	"strings"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// Connected records an accepted connection of id (a device, or "deviceId/moduleId").
func (s *Stream) Connected(id string) { s.Record(Event{Type: Connect, DeviceID: id}) }

// Disconnected records the end of id's live connection.
func (s *Stream) Disconnected(id string) { s.Record(Event{Type: Disconnect, DeviceID: id}) }

// firmwareKey marks a reported patch that touches reported.firmware.
var firmwareKey = []byte(`"firmware"`)

// Published records a publish of id on a hub-terminated topic: a message,
// a method answer or a reported patch. Twin reads are not events.
func (s *Stream) Published(id string, t iothub.DeviceTopic, payload []byte) {
	e := Event{DeviceID: id, Body: payload, RequestID: t.RequestID}
	switch t.Kind {
	case iothub.KindTelemetry:
		e.Type, e.Bag = Telemetry, t.Bag
		e.Retained = t.Properties.Get("mqtt-retain") == "true"
	case iothub.KindMethodResponse:
		e.Type, e.Status = MethodResult, t.Status
	case iothub.KindTwinReported:
		e.Type = Reported
		if bytes.Contains(payload, firmwareKey) {
			e.Type = Firmware
		}
	default:
		return
	}
	s.Record(e)
}

// Delivered records a hub publish to id: a method call or a desired patch.
// Other hub publishes (twin answers) are not events.
func (s *Stream) Delivered(id, topic string, payload []byte) {
	switch {
	case strings.HasPrefix(topic, iothub.MethodRequestPrefix):
		name, q, _ := strings.Cut(topic[len(iothub.MethodRequestPrefix):], "/")
		s.Record(Event{Type: MethodCall, DeviceID: id, Method: name, RequestID: queryValue(q, "$rid"), Body: payload})
	case strings.HasPrefix(topic, iothub.TwinDesiredPrefix):
		s.Record(Event{Type: DesiredPatch, DeviceID: id, Version: queryValue(topic[len(iothub.TwinDesiredPrefix):], "$version"), Body: payload})
	}
}

// queryValue is key's value in a topic's "?k=v&..." tail.
func queryValue(q, key string) string {
	q = strings.TrimPrefix(q, "?")
	for q != "" {
		var kv string
		kv, q, _ = strings.Cut(q, "&")
		if k, v, _ := strings.Cut(kv, "="); k == key {
			return unescape(v)
		}
	}
	return ""
}
