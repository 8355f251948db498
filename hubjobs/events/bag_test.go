package events

import (
	"reflect"
	"strings"
	"testing"
)

func TestDecodeBag(t *testing.T) {
	tests := []struct {
		name string
		bag  string
		want Properties
	}{
		{"empty", "", Properties{}},
		// The Node SDK: querystring.stringify for the system properties
		// ("$" escaped), then encodeURIComponent pairs for the application ones.
		{"node sdk", "%24.mid=m-1&%24.cid=c-1&%24.ct=application%2Fjson&%24.ce=utf-8&temperatureAlert=true&unit=%C2%B0C",
			Properties{MessageID: "m-1", CorrelationID: "c-1", ContentType: "application/json", ContentEncoding: "utf-8",
				Application: []Property{{"temperatureAlert", "true"}, {"unit", "°C"}}}},
		// The C and Python SDKs write "$" unescaped.
		{"plain dollar", "$.ct=application%2Fjson&$.ce=utf-8&$.uid=u&$.to=%2Fdevices%2Fd&$.exp=2026-01-01T00%3A00%3A00.000Z",
			Properties{ContentType: "application/json", ContentEncoding: "utf-8", UserID: "u", To: "/devices/d", ExpiryTime: "2026-01-01T00:00:00.000Z"}},
		{"component and interface", "%24.sub=thermostat1&%24.ifid=dtmi%3Acom%3Aexample%3BThermostat%3B1&%24.on=out1",
			Properties{ComponentName: "thermostat1", InterfaceID: "dtmi:com:example;Thermostat;1", OutputName: "out1"}},
		{"plus stays plus", "a=1+2&b%20c=d%20e", Properties{Application: []Property{{"a", "1+2"}, {"b c", "d e"}}}},
		{"leading question mark", "?k=v", Properties{Application: []Property{{"k", "v"}}}},
		{"no value and empty pairs", "flag&&k=&=v", Properties{Application: []Property{{"flag", ""}, {"k", ""}, {"", "v"}}}},
		{"first equals splits", "k=a=b", Properties{Application: []Property{{"k", "a=b"}}}},
		{"bad escape kept", "k=100%&j=%zz", Properties{Application: []Property{{"k", "100%"}, {"j", "%zz"}}}},
		{"order and duplicates kept", "b=2&a=1&b=3", Properties{Application: []Property{{"b", "2"}, {"a", "1"}, {"b", "3"}}}},
		{"unknown system", "%24.xyz=1&%24.ctime=2026-12-06T10%3A00%3A00Z",
			Properties{OtherSystem: []Property{{"$.xyz", "1"}}, CreationTime: "2026-12-06T10:00:00Z"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DecodeBag(tt.bag); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("DecodeBag(%q)\n got %+v\nwant %+v", tt.bag, got, tt.want)
			}
		})
	}
}

func TestSystemNames(t *testing.T) {
	got := DecodeBag("%24.mid=m&%24.ct=text%2Fplain&%24.ce=utf-8&%24.cid=c").System()
	want := map[string]string{"message-id": "m", "content-type": "text/plain", "content-encoding": "utf-8", "correlation-id": "c"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("System() = %v, want %v", got, want)
	}
}

// FuzzDecodeBag checks that any bag decodes without panicking, and that a
// bag written as the Node SDK writes it decodes back to what was written.
func FuzzDecodeBag(f *testing.F) {
	f.Add("%24.mid=1&k=v", "key", "välue &=+%")
	f.Add("", "", "")
	f.Add("a=%", "$.ct", "x")
	f.Fuzz(func(t *testing.T, bag, k, v string) {
		_ = DecodeBag(bag)
		if k == "" || strings.HasPrefix(k, "$.") || !validUTF8(k) || !validUTF8(v) {
			return
		}
		enc := encodeURIComponent(k) + "=" + encodeURIComponent(v)
		p := DecodeBag(enc)
		if len(p.Application) != 1 || p.Application[0] != (Property{k, v}) {
			t.Fatalf("DecodeBag(%q) = %+v, want [%q=%q]", enc, p.Application, k, v)
		}
	})
}

func validUTF8(s string) bool { return strings.ToValidUTF8(s, "\uFFFD") == s }

// encodeURIComponent escapes as JavaScript's encodeURIComponent does.
func encodeURIComponent(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.!~*'()", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteString("%" + strings.ToUpper(string("0123456789abcdef"[c>>4])+string("0123456789abcdef"[c&15])))
	}
	return b.String()
}
