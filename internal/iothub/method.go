package iothub

import "encoding/json"

// MethodRequest is a direct-method call as the service REST API and Jobs v2
// carry it (docs/iothub.md §2.2, §5.2). Pointers tell "absent" from zero.
type MethodRequest struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload,omitempty"`
	ResponseTimeoutInSeconds *int            `json:"responseTimeoutInSeconds,omitempty"`
	ConnectTimeoutInSeconds  *int            `json:"connectTimeoutInSeconds,omitempty"`
}

// ResponseTimeout returns responseTimeoutInSeconds or its default.
func (m MethodRequest) ResponseTimeout() int {
	if m.ResponseTimeoutInSeconds == nil {
		return DefaultResponseTimeout
	}
	return *m.ResponseTimeoutInSeconds
}

// ConnectTimeout returns connectTimeoutInSeconds or its default, 0.
func (m MethodRequest) ConnectTimeout() int {
	if m.ConnectTimeoutInSeconds == nil {
		return 0
	}
	return *m.ConnectTimeoutInSeconds
}

// Validate checks the name, the timeouts and the payload size, returning an
// *Error with code ArgumentInvalid.
func (m MethodRequest) Validate() error {
	if n := len(m.MethodName); n > MaxMethodNameLength {
		return Errorf(CodeArgumentInvalid, "method name is %d characters long; the limit is %d", n, MaxMethodNameLength)
	}
	if err := ValidMethodName(m.MethodName); err != nil {
		return &Error{Code: CodeArgumentInvalid, Message: err.Error()}
	}
	if rt := m.ResponseTimeout(); rt < MinResponseTimeout || rt > MaxResponseTimeout {
		return Errorf(CodeArgumentInvalid, "responseTimeoutInSeconds must be between %d and %d, got %d", MinResponseTimeout, MaxResponseTimeout, rt)
	}
	if ct := m.ConnectTimeout(); ct < 0 || ct > MaxConnectTimeout {
		return Errorf(CodeArgumentInvalid, "connectTimeoutInSeconds must be between 0 and %d, got %d", MaxConnectTimeout, ct)
	}
	if len(m.Payload) > MaxMethodPayloadBytes {
		return Errorf(CodeMessageTooLarge, "method payload is %d bytes; the limit is %d", len(m.Payload), MaxMethodPayloadBytes)
	}
	if len(m.Payload) > 0 && !json.Valid(m.Payload) {
		return Errorf(CodeArgumentInvalid, "method payload is not valid JSON")
	}
	return nil
}

// DevicePayload is the body sent to the device: the payload, or the literal
// null when there is none, since the Node device SDK fails on an empty body (§2.1).
func (m MethodRequest) DevicePayload() []byte {
	if len(m.Payload) == 0 {
		return []byte("null")
	}
	return m.Payload
}

// MethodResult is a device's answer: HTTP 200 {status, payload} whatever the
// device's own status (§2.2).
type MethodResult struct {
	Status  int             `json:"status"`
	Payload json.RawMessage `json:"payload"`
}
