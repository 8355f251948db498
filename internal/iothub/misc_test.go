package iothub

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseConnectionString(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantErr bool
		check   func(ConnectionString) bool
	}{
		{"service", "HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=YWJjZA==", false,
			func(c ConnectionString) bool {
				return c.SharedAccessKeyName == "iothubowner" && string(c.Key()) == "abcd"
			}},
		{"device", "HostName=h;DeviceId=d1;SharedAccessKey=YWJjZA==", false, func(c ConnectionString) bool { return c.DeviceID == "d1" }},
		{"device gateway", "HostName=h;DeviceId=d1;SharedAccessKey=YWJjZA==;GatewayHostName=localhost:18883", false,
			func(c ConnectionString) bool { return c.GatewayHostName == "localhost:18883" }},
		{"device sas", "HostName=h;DeviceId=d1;SharedAccessSignature=SharedAccessSignature sr=h%2Fdevices%2Fd1&sig=x&se=1", false,
			func(c ConnectionString) bool {
				return strings.HasPrefix(c.SharedAccessSignature, "SharedAccessSignature sr=")
			}},
		{"x509", "HostName=h;DeviceId=d1;x509=true", false, func(c ConnectionString) bool { return c.X509 }},
		{"no host", "DeviceId=d1;SharedAccessKey=YWJjZA==", true, nil},
		{"device without key", "HostName=h;DeviceId=d1", true, nil},
		{"service without key", "HostName=h;SharedAccessKeyName=x", true, nil},
		{"bad base64", "HostName=h;DeviceId=d;SharedAccessKey=%%%", true, nil},
		{"no equals", "HostName", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := ParseConnectionString(tt.in)
			if tt.wantErr {
				if !errors.Is(err, ErrConnectionString) {
					t.Fatalf("ParseConnectionString(%q) = %v, want ErrConnectionString", tt.in, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !tt.check(c) {
				t.Fatalf("unexpected %+v", c)
			}
			again, err := ParseConnectionString(c.String())
			if err != nil || again != c {
				t.Fatalf("String round trip: %+v %v", again, err)
			}
		})
	}
}

func TestErrorBodies(t *testing.T) {
	now := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		err        *Error
		status     int
		wantPrefix string
	}{
		{Errorf(CodeDeviceNotFound, "Device d1 not found"), 404, "ErrorCode:DeviceNotFound;Device d1 not found"},
		{Errorf(CodeIotHubUnauthorizedAccess, "Unauthorized"), 401, "ErrorCode:IotHubUnauthorizedAccess;Unauthorized"},
		{Errorf(CodeThrottlingMaxActiveJobCountExceeded, "429"), 429, "ErrorCode:ThrottlingMaxActiveJobCountExceeded;429"},
		{&Error{Code: CodeDeviceNotOnline, Message: "Timed out waiting for device to connect.", Info: map[string]any{"timeout": "00:00:00"}}, 404, `{"errorCode":404103`},
		{Errorf(CodeGatewayTimeout, "Timed out waiting for the response from device."), 504, `{"errorCode":504101`},
		{Errorf(CodeArgumentInvalid, "bad"), 400, `{"errorCode":400004`},
	}
	for _, tt := range tests {
		if got := tt.err.HTTPStatus(); got != tt.status {
			t.Errorf("%s: HTTPStatus = %d, want %d", tt.err.Code.Name, got, tt.status)
		}
		var body struct{ Message, ExceptionMessage string }
		if err := json.Unmarshal(tt.err.HTTPBody("t1", now), &body); err != nil {
			t.Fatalf("%s: body is not JSON: %v", tt.err.Code.Name, err)
		}
		if !strings.HasPrefix(body.Message, tt.wantPrefix) {
			t.Errorf("%s: Message = %q, want prefix %q", tt.err.Code.Name, body.Message, tt.wantPrefix)
		}
		if !strings.HasPrefix(body.ExceptionMessage, "Tracking ID:t1") {
			t.Errorf("%s: ExceptionMessage = %q", tt.err.Code.Name, body.ExceptionMessage)
		}
		var mq map[string]any
		if err := json.Unmarshal(tt.err.MQTTBody("t1", now), &mq); err != nil || mq["errorCode"] == nil {
			t.Errorf("%s: MQTT body %v lacks errorCode", tt.err.Code.Name, mq)
		}
	}
	wrapped := errors.Join(errors.New("ctx"), Errorf(CodeDeviceNotFound, "x"))
	if !errors.Is(wrapped, &Error{Code: CodeDeviceNotFound}) || errors.Is(wrapped, &Error{Code: CodeDeviceNotOnline}) {
		t.Error("errors.Is by code does not work")
	}
	if AsError(errors.New("boom")).Code != CodeServerError {
		t.Error("AsError of a plain error is not ServerError")
	}
}

func TestNameRules(t *testing.T) {
	tests := []struct {
		name string
		fn   func(string) error
		in   string
		ok   bool
	}{
		{"device ok", ValidDeviceID, "dev-1:a.b+c%_#*?!(),=@;$'", true},
		{"device space", ValidDeviceID, "dev 1", false},
		{"device slash", ValidDeviceID, "a/b", false},
		{"device empty", ValidDeviceID, "", false},
		{"device long", ValidDeviceID, strings.Repeat("a", 129), false},
		{"device max", ValidDeviceID, strings.Repeat("a", 128), true},
		{"device dot", ValidDeviceID, ".", false},
		{"device dot dot", ValidDeviceID, "..", false},
		{"device dots", ValidDeviceID, "...", true},
		{"job ok", ValidJobID, "job-01", true},
		{"job underscore", ValidJobID, "job_01", false},
		{"job long", ValidJobID, strings.Repeat("j", 65), false},
		{"method ok", ValidMethodName, "firmware.Update-v2", true},
		{"method dollar", ValidMethodName, "$reboot", false},
		{"method space", ValidMethodName, "re boot", false},
		{"method brace", ValidMethodName, "a{b", false},
		{"method non-ascii", ValidMethodName, "redémarrer", false},
		{"property ok", ValidPropertyName, "température", true},
		{"property dot", ValidPropertyName, "a.b", false},
		{"property dollar", ValidPropertyName, "$version", false},
		{"property space", ValidPropertyName, "a b", false},
		{"property control", ValidPropertyName, "a\x01", false},
	}
	for _, tt := range tests {
		if err := tt.fn(tt.in); (err == nil) != tt.ok {
			t.Errorf("%s: %q → %v, want ok=%v", tt.name, tt.in, err, tt.ok)
		}
	}
}

func TestMethodRequestValidate(t *testing.T) {
	n := func(i int) *int { return &i }
	tests := []struct {
		name string
		req  MethodRequest
		code Code
	}{
		{"defaults", MethodRequest{MethodName: "reboot"}, Code{}},
		{"no name", MethodRequest{}, CodeArgumentInvalid},
		{"longest name", MethodRequest{MethodName: strings.Repeat("m", MaxMethodNameLength)}, Code{}},
		{"name too long", MethodRequest{MethodName: strings.Repeat("m", MaxMethodNameLength+1)}, CodeArgumentInvalid},
		{"name longer than a topic", MethodRequest{MethodName: strings.Repeat("m", 70000)}, CodeArgumentInvalid},
		{"timeout low", MethodRequest{MethodName: "m", ResponseTimeoutInSeconds: n(4)}, CodeArgumentInvalid},
		{"timeout high", MethodRequest{MethodName: "m", ResponseTimeoutInSeconds: n(301)}, CodeArgumentInvalid},
		{"connect high", MethodRequest{MethodName: "m", ConnectTimeoutInSeconds: n(301)}, CodeArgumentInvalid},
		{"connect negative", MethodRequest{MethodName: "m", ConnectTimeoutInSeconds: n(-1)}, CodeArgumentInvalid},
		{"payload too big", MethodRequest{MethodName: "m", Payload: json.RawMessage(`"` + strings.Repeat("x", MaxMethodPayloadBytes) + `"`)}, CodeMessageTooLarge},
		{"payload not json", MethodRequest{MethodName: "m", Payload: json.RawMessage(`{`)}, CodeArgumentInvalid},
	}
	for _, tt := range tests {
		err := tt.req.Validate()
		if tt.code == (Code{}) {
			if err != nil {
				t.Errorf("%s: %v", tt.name, err)
			}
			continue
		}
		if AsError(err).Code != tt.code {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.code.Name)
		}
	}
	if string(MethodRequest{MethodName: "m"}.DevicePayload()) != "null" {
		t.Error("empty payload is not sent as null")
	}
}
