package events

import (
	"encoding/base64"
	"encoding/json"
	"time"
	"unicode/utf8"
)

// Message is an event as the events endpoint sends it and its clients
// read it: one JSON object, with a message's properties decoded.
type Message struct {
	Seq       uint64    `json:"seq"`
	Time      time.Time `json:"time"`
	Type      Type      `json:"type"`
	DeviceID  string    `json:"deviceId"`
	ModuleID  string    `json:"moduleId,omitempty"`
	Method    string    `json:"method,omitempty"`
	RequestID string    `json:"requestId,omitempty"`
	Status    *int      `json:"status,omitempty"`
	Version   string    `json:"version,omitempty"`
	// System holds a message's system properties (message-id,
	// content-type, iothub-enqueuedtime, ...).
	System map[string]string `json:"systemProperties,omitempty"`
	// Application holds a message's application properties.
	Application map[string]string `json:"applicationProperties,omitempty"`
	// Payload is the body: itself when it is whole valid JSON, else a JSON
	// string (base64 when PayloadEncoding says so).
	Payload         json.RawMessage `json:"payload,omitempty"`
	PayloadEncoding string          `json:"payloadEncoding,omitempty"`
	Size            int             `json:"size,omitempty"`
	Truncated       bool            `json:"truncated,omitempty"`
}

// Message renders e for the wire.
func (e *Event) Message() Message {
	m := Message{Seq: e.Seq, Time: e.Time.UTC(), Type: e.Type, DeviceID: e.DeviceID, ModuleID: e.ModuleID,
		Method: e.Method, RequestID: e.RequestID, Version: e.Version, Size: e.Size, Truncated: e.Truncated()}
	if e.Type == MethodResult {
		st := e.Status
		m.Status = &st
	}
	if e.Type == Telemetry {
		p := DecodeBag(e.Bag)
		m.System = p.System()
		m.System["iothub-connection-device-id"] = e.DeviceID
		if e.ModuleID != "" {
			m.System["iothub-connection-module-id"] = e.ModuleID
		}
		m.System["iothub-enqueuedtime"] = m.Time.Format(time.RFC3339Nano)
		m.System["iothub-message-source"] = "Telemetry"
		if len(p.Application) > 0 || e.Retained {
			m.Application = make(map[string]string, len(p.Application)+1)
			for _, a := range p.Application {
				m.Application[a.Name] = a.Value
			}
			if e.Retained {
				m.Application["mqtt-retain"] = "true"
			}
		}
	}
	switch {
	case len(e.Body) == 0:
	case !e.Truncated() && json.Valid(e.Body):
		m.Payload = json.RawMessage(e.Body)
	case utf8.Valid(e.Body):
		m.Payload, _ = json.Marshal(string(e.Body))
	default:
		m.Payload, _ = json.Marshal(base64.StdEncoding.EncodeToString(e.Body))
		m.PayloadEncoding = "base64"
	}
	return m
}
