package iothub

import (
	"errors"
	"strings"
	"testing"
)

func TestParseDeviceTopic(t *testing.T) {
	tests := []struct {
		name   string
		topic  string
		kind   TopicKind
		rid    string
		status int
		errs   bool
	}{
		{"method response", "$iothub/methods/res/200/?$rid=1", KindMethodResponse, "1", 200, false},
		{"method response 500", "$iothub/methods/res/500/?$rid=abc", KindMethodResponse, "abc", 500, false},
		{"method response no rid", "$iothub/methods/res/200/", KindUnknown, "", 0, true},
		{"method response bad status", "$iothub/methods/res/ok/?$rid=1", KindUnknown, "", 0, true},
		{"method response no slash", "$iothub/methods/res/200", KindUnknown, "", 0, true},
		{"twin get", "$iothub/twin/GET/?$rid=5", KindTwinGet, "5", 0, false},
		{"twin get uuid", "$iothub/twin/GET/?$rid=0b7f3a52-6f0c-4d0f-9ad1-3c1fd1b0b2a1", KindTwinGet, "0b7f3a52-6f0c-4d0f-9ad1-3c1fd1b0b2a1", 0, false},
		{"twin get longest rid", "$iothub/twin/GET/?$rid=" + strings.Repeat("r", MaxRequestIDLength), KindTwinGet, strings.Repeat("r", MaxRequestIDLength), 0, false},
		{"twin get rid too long", "$iothub/twin/GET/?$rid=" + strings.Repeat("r", 65000), KindUnknown, "", 0, true},
		{"reported rid too long", "$iothub/twin/PATCH/properties/reported/?$rid=" + strings.Repeat("r", MaxRequestIDLength+1) + "&x=1", KindUnknown, "", 0, true},
		{"method response rid too long", "$iothub/methods/res/200/?$rid=" + strings.Repeat("r", MaxRequestIDLength+1), KindUnknown, "", 0, true},
		{"twin get without ?", "$iothub/twin/GET/$rid=5", KindUnknown, "", 0, true},
		{"reported", "$iothub/twin/PATCH/properties/reported/?$rid=7", KindTwinReported, "7", 0, false},
		{"reported with version", "$iothub/twin/PATCH/properties/reported/?$rid=7&$version=3", KindTwinReported, "7", 0, false},
		{"telemetry", "devices/d1/messages/events/", KindTelemetry, "", 0, false},
		{"telemetry bag", "devices/d1/messages/events/a=1&b=2", KindTelemetry, "", 0, false},
		{"telemetry no slash", "devices/d1/messages/events", KindTelemetry, "", 0, false},
		{"telemetry other device", "devices/d2/messages/events/", KindUnknown, "", 0, true},
		{"telemetry prefix trick", "devices/d1/messages/eventsX", KindUnknown, "", 0, true},
		{"desired is hub-to-device", "$iothub/twin/PATCH/properties/desired/?$version=2", KindUnknown, "", 0, true},
		{"method request is hub-to-device", "$iothub/methods/POST/reboot/?$rid=1", KindUnknown, "", 0, true},
		{"random", "foo/bar", KindUnknown, "", 0, true},
		{"empty", "", KindUnknown, "", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDeviceTopic("d1", tt.topic)
			if tt.errs {
				if !errors.Is(err, ErrTopic) {
					t.Fatalf("ParseDeviceTopic(%q) error = %v, want ErrTopic", tt.topic, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseDeviceTopic(%q): %v", tt.topic, err)
			}
			if got.Kind != tt.kind || got.RequestID != tt.rid || got.Status != tt.status {
				t.Fatalf("ParseDeviceTopic(%q) = %+v, want kind %v rid %q status %d", tt.topic, got, tt.kind, tt.rid, tt.status)
			}
		})
	}
}

func TestTelemetryPropertyBag(t *testing.T) {
	got, err := ParseDeviceTopic("d1", "devices/d1/messages/events/%24.ct=application%2Fjson&alert=true")
	if err != nil {
		t.Fatal(err)
	}
	if got.Properties.Get("$.ct") != "application/json" || got.Properties.Get("alert") != "true" {
		t.Fatalf("properties = %v", got.Properties)
	}
}

func TestHubTopicsRoundTrip(t *testing.T) {
	topic := MethodRequestTopic("reboot", "42")
	if topic != "$iothub/methods/POST/reboot/?$rid=42" {
		t.Fatalf("MethodRequestTopic = %q", topic)
	}
	m, rid, err := ParseMethodRequestTopic(topic)
	if err != nil || m != "reboot" || rid != "42" {
		t.Fatalf("ParseMethodRequestTopic = %q %q %v", m, rid, err)
	}
	if _, _, err := ParseMethodRequestTopic("$iothub/methods/POST//?$rid=1"); err == nil {
		t.Fatal("empty method name accepted")
	}
	if got := TwinResponseTopic(204, "4", 2); got != "$iothub/twin/res/204/?$rid=4&$version=2" {
		t.Fatalf("TwinResponseTopic = %q", got)
	}
	if got := TwinResponseTopic(200, "4", -1); got != "$iothub/twin/res/200/?$rid=4" {
		t.Fatalf("TwinResponseTopic without version = %q", got)
	}
	st, rid, v, err := ParseTwinResponseTopic("$iothub/twin/res/204/?$rid=4&$version=2")
	if err != nil || st != 204 || rid != "4" || v != 2 {
		t.Fatalf("ParseTwinResponseTopic = %d %q %d %v", st, rid, v, err)
	}
	if _, _, v, _ := ParseTwinResponseTopic("$iothub/twin/res/200/?$rid=9"); v != -1 {
		t.Fatalf("absent version = %d, want -1", v)
	}
	if got := DesiredPatchTopic(8); got != "$iothub/twin/PATCH/properties/desired/?$version=8" {
		t.Fatalf("DesiredPatchTopic = %q", got)
	}
	dt, err := ParseDeviceTopic("d", MethodResponseTopic(500, "3"))
	if err != nil || dt.Status != 500 || dt.RequestID != "3" {
		t.Fatalf("MethodResponseTopic round trip = %+v %v", dt, err)
	}
	for _, tp := range []string{TwinGetTopic("1"), TwinReportedTopic("2"), TelemetryTopic("d")} {
		if _, err := ParseDeviceTopic("d", tp); err != nil {
			t.Fatalf("%q does not parse: %v", tp, err)
		}
	}
}

func TestSubscriptionAllowed(t *testing.T) {
	tests := []struct {
		filter string
		want   bool
	}{
		{"$iothub/methods/POST/#", true},
		{"$iothub/twin/res/#", true},
		{"$iothub/twin/PATCH/properties/desired/#", true},
		{"devices/d1/messages/devicebound/#", true},
		{"devices/d2/messages/devicebound/#", false},
		{"$iothub/methods/POST/reboot", false},
		{"$iothub/#", false},
		{"#", false},
		{"+/+", false},
		{"$iothub/twin/res/+", false},
	}
	for _, tt := range tests {
		if got := SubscriptionAllowed("d1", tt.filter); got != tt.want {
			t.Errorf("SubscriptionAllowed(%q) = %v, want %v", tt.filter, got, tt.want)
		}
	}
}

func TestModuleTopics(t *testing.T) {
	subs := []struct {
		identity, filter string
		want             bool
	}{
		{"d1/m1", FilterMethods, true},
		{"d1/m1", FilterTwinResponses, true},
		{"d1/m1", "devices/d1/modules/m1/inputs/#", true},
		{"d1/m1", "devices/d1/modules/m2/inputs/#", false},
		{"d1/m1", "devices/d1/modules/m1x/inputs/#", false},
		{"d1/m1", "devices/d1/messages/devicebound/#", false},
		{"d1/m1", "devices/d1/m1/messages/devicebound/#", false},
		{"d1", "devices/d1/modules/m1/inputs/#", false},
		{"d1", "devices/d1x/messages/devicebound/#", false},
	}
	for _, tt := range subs {
		if got := SubscriptionAllowed(tt.identity, tt.filter); got != tt.want {
			t.Errorf("SubscriptionAllowed(%q, %q) = %v, want %v", tt.identity, tt.filter, got, tt.want)
		}
	}
	pubs := []struct {
		identity, topic string
		ok              bool
	}{
		{"d1/m1", "devices/d1/modules/m1/messages/events/", true},
		{"d1/m1", "devices/d1/modules/m1/messages/events/a=1", true},
		{"d1/m1", "devices/d1/modules/m2/messages/events/", false},
		{"d1/m1", "devices/d1/messages/events/", false},
		{"d1/m1", "devices/d1/m1/messages/events/", false},
		{"d1", "devices/d1/modules/m1/messages/events/", false},
	}
	for _, tt := range pubs {
		got, err := ParseDeviceTopic(tt.identity, tt.topic)
		if ok := err == nil && got.Kind == KindTelemetry; ok != tt.ok {
			t.Errorf("ParseDeviceTopic(%q, %q) = %v, %v; want telemetry %v", tt.identity, tt.topic, got.Kind, err, tt.ok)
		}
	}
	if got := ModuleTelemetryTopic("d1", "m1"); got != "devices/d1/modules/m1/messages/events/" {
		t.Errorf("ModuleTelemetryTopic = %q", got)
	}
}

// TestDeviceTopicRulesDoNotAllocate: the identity-aware topic rules cost a
// device's connection nothing per packet.
func TestDeviceTopicRulesDoNotAllocate(t *testing.T) {
	var ok bool
	if n := testing.AllocsPerRun(100, func() {
		ok = SubscriptionAllowed("device-000123", "devices/device-000123/messages/devicebound/#")
		_, ok = cutTelemetryPrefix("device-000123", "devices/device-000123/messages/events/")
	}); n != 0 || !ok {
		t.Fatalf("%v allocations per device check (ok=%v)", n, ok)
	}
}
