package iothub

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestC2DTopic(t *testing.T) {
	exp := time.Date(2026, 12, 6, 23, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		id   string
		p    C2DProperties
		want string
	}{
		{"none", "d1", C2DProperties{}, "devices/d1/messages/devicebound/"},
		{
			// The shape az iot device c2d-message send produces on a real hub.
			"as IoT Hub sends it", "mqtt-dev-01",
			C2DProperties{MessageID: "d411e727", To: C2DTo("mqtt-dev-01"), ContentEncoding: "utf-8", Ack: "none"},
			"devices/mqtt-dev-01/messages/devicebound/%24.mid=d411e727&%24.to=%2Fdevices%2Fmqtt-dev-01%2Fmessages%2FdeviceBound&%24.ce=utf-8&iothub-ack=none",
		},
		{
			"every system property in IoT Hub's order", "d1",
			C2DProperties{MessageID: "m", To: "/t", CorrelationID: "c", UserID: "u", ContentType: "application/json", ContentEncoding: "utf-8", Expiry: exp, Ack: "full"},
			"devices/d1/messages/devicebound/%24.mid=m&%24.exp=2026-12-06T23%3A00%3A00.000Z&%24.to=%2Ft&%24.cid=c&%24.uid=u&%24.ct=application%2Fjson&%24.ce=utf-8&iothub-ack=full",
		},
		{
			"application properties escaped like encodeURIComponent", "d1",
			C2DProperties{Properties: []Property{{"a b", "x+y=z&w/v"}, {"ünï", "~*'()!-_."}}},
			"devices/d1/messages/devicebound/a%20b=x%2By%3Dz%26w%2Fv&%C3%BCn%C3%AF=~*'()!-_.",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := C2DTopic(tt.id, tt.p)
			if got != tt.want {
				t.Fatalf("C2DTopic = %q, want %q", got, tt.want)
			}
			back, err := ParseC2DTopic(tt.id, got)
			if err != nil {
				t.Fatalf("ParseC2DTopic(%q): %v", got, err)
			}
			if !reflect.DeepEqual(back, tt.p) {
				t.Fatalf("round trip = %+v, want %+v", back, tt.p)
			}
		})
	}
}

func TestParseC2DTopicErrors(t *testing.T) {
	for _, topic := range []string{
		"devices/d2/messages/devicebound/",
		"devices/d1/messages/events/",
		"devices/d1/messages/devicebound/a=%zz",
		"devices/d1/messages/devicebound/%2=b",
		"devices/d1/messages/devicebound/%24.exp=tomorrow",
	} {
		if _, err := ParseC2DTopic("d1", topic); !errors.Is(err, ErrTopic) {
			t.Errorf("ParseC2DTopic(%q) = %v, want ErrTopic", topic, err)
		}
	}
}

func TestCheckC2DPropertyName(t *testing.T) {
	for key, ok := range map[string]bool{"color": true, "a b": true, "": false, "$.mid": false, "$x": false, "IoTHub-ack": false} {
		if err := CheckC2DPropertyName(key); (err == nil) != ok {
			t.Errorf("CheckC2DPropertyName(%q) = %v, want ok=%v", key, err, ok)
		}
	}
}

// FuzzC2DTopic checks that any message id, correlation id and application
// property round-trips through the topic, and that the bag stays one topic
// segment (the Node SDK reads the bag as the topic's 5th '/' segment).
func FuzzC2DTopic(f *testing.F) {
	f.Add("d1", "m1", "c1", "color", "red")
	f.Add("d1", "", "", "a b", "x+y=z&w/v")
	f.Add("dev-1", "ä&=", "%41", "ünï", "~*'()")
	f.Add("d1", "m", "c", "k", "")
	f.Fuzz(func(t *testing.T, id, mid, cid, key, value string) {
		if ValidDeviceID(id) != nil || CheckC2DPropertyName(key) != nil {
			return
		}
		p := C2DProperties{MessageID: mid, CorrelationID: cid, To: C2DTo(id), Properties: []Property{{key, value}}}
		topic := C2DTopic(id, p)
		bag := topic[len(C2DTopicPrefix(id)):]
		for i := 0; i < len(bag); i++ {
			if bag[i] == '/' || bag[i] == '+' || bag[i] == '#' {
				t.Fatalf("bag %q has %q unescaped", bag, bag[i])
			}
		}
		back, err := ParseC2DTopic(id, topic)
		if err != nil {
			t.Fatalf("ParseC2DTopic(%q): %v", topic, err)
		}
		if !reflect.DeepEqual(back, p) {
			t.Fatalf("round trip of %q = %+v, want %+v", topic, back, p)
		}
	})
}
