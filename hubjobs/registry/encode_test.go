package registry

import (
	"encoding/json"
	"math"
	"reflect"
	"testing"
	"time"
)

// viaEncodingJSON is the record encoding appendRecord replaced.
func viaEncodingJSON(rec *record) ([]byte, error) {
	return json.Marshal(recordEnvelope{Format: recordFormat, record: rec})
}

// sameDecoded fails unless appendRecord and encoding/json encode rec to
// bytes that decode to the same record.
func sameDecoded(t *testing.T, rec *record) {
	t.Helper()
	fast, err1 := appendRecord(nil, rec)
	slow, err2 := viaEncodingJSON(rec)
	if (err1 == nil) != (err2 == nil) {
		t.Fatalf("errors differ: appendRecord %v, encoding/json %v", err1, err2)
	}
	if err1 != nil {
		return
	}
	if !json.Valid(fast) {
		t.Fatalf("appendRecord wrote invalid JSON: %s", fast)
	}
	a, err1 := decodeRecord(fast)
	b, err2 := decodeRecord(slow)
	if err1 != nil || err2 != nil {
		t.Fatalf("decode: %v / %v\n%s", err1, err2, fast)
	}
	if !reflect.DeepEqual(a, b) {
		t.Errorf("records differ\nappendRecord:  %s\nencoding/json: %s", fast, slow)
	}
}

func TestAppendRecordMatchesEncodingJSON(t *testing.T) {
	now := time.Date(2026, 11, 22, 21, 30, 15, 123456789, time.UTC)
	reason := "maintenance \"window\"\n"
	tree := func() map[string]any {
		return map[string]any{
			"s": "plain", "esc": "q\"b\\s/<>&\u2028\x01\x1f\t\r\n", "utf8": "grüße 日本 🚀", "bad": "a\xffb\xc3",
			"n": 1.5, "big": 1e21, "small": 1e-7, "neg": math.Copysign(0, -1), "int": 42.0, "max": 1.7976931348623157e308,
			"t": true, "f": false, "null": nil,
			"arr":   []any{1.0, "two", nil, []any{}, map[string]any{"x": []any{true}}},
			"empty": map[string]any{}, "nested": map[string]any{"a": map[string]any{"b": map[string]any{"c": "d"}}},
		}
	}
	tm := &meta{Updated: now, Version: 7, Children: map[string]*meta{
		"a":     {Updated: now.Add(-time.Hour), Version: 3},
		"k\"ey": {Updated: now, Children: map[string]*meta{"b": {Updated: now}}},
	}}
	tests := []struct {
		name string
		rec  record
	}{
		{"minimal", record{ID: "d1"}},
		{"fresh", record{ID: "d1", Generation: "g", Status: "enabled", Primary: []byte{}, Secondary: nil,
			Desired: map[string]any{}, Reported: map[string]any{}, DesiredMeta: &meta{}, ReportedMeta: &meta{}}},
		{"everything", record{ID: "dev-ü \"1\"", Generation: "638000000000000000", Etag: 9, Status: "disabled",
			StatusReason: &reason, StatusUpdated: now, Primary: []byte("0123456789abcdef0123456789abcdef"),
			Secondary: []byte{0, 255, 1}, IotEdge: true, TwinVersion: 12, TwinEtag: 11,
			Tags: tree(), Desired: tree(), Reported: tree(), DesiredVersion: 5, ReportedVersion: 6,
			DesiredMeta: tm, ReportedMeta: tm}},
		{"empty tags left out", record{ID: "d", Tags: map[string]any{}, Desired: map[string]any{"x": nil}}},
		{"other number types", record{ID: "d", Desired: map[string]any{"i": 3, "i64": int64(-4), "num": json.Number("5.5")}}},
		{"zero time", record{ID: "d", DesiredMeta: &meta{}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { sameDecoded(t, &tt.rec) })
	}
}

func TestAppendRecordRefusesNaN(t *testing.T) {
	for _, v := range []float64{nan(), inf(1), inf(-1)} {
		if _, err := appendRecord(nil, &record{ID: "d", Desired: map[string]any{"x": v}}); err == nil {
			t.Errorf("%v was encoded", v)
		}
	}
}

func nan() float64         { var z float64; return z / z }
func inf(sign int) float64 { return math.Inf(sign) }

// FuzzAppendRecord: any JSON document as the sections and any strings as
// identity fields encode to what encoding/json gives, once decoded.
func FuzzAppendRecord(f *testing.F) {
	f.Add("d1", `{"a":1,"b":[true,null,"x"],"c":{"d":1e300}}`, "reason")
	f.Add("d\xff", `{"k\u0000":"\ud800","<>&":"\u2028"}`, "")
	f.Add("x", `{"n":-0,"m":0.1,"o":123456789012345678901234567890}`, "\x7f")
	f.Fuzz(func(t *testing.T, id, doc, reason string) {
		var m map[string]any
		if json.Unmarshal([]byte(doc), &m) != nil {
			return
		}
		rec := record{ID: id + "x", Status: reason, StatusReason: &reason, Tags: m, Desired: m, Reported: m,
			DesiredMeta: &meta{Children: map[string]*meta{id: {Version: 1}}}}
		sameDecoded(t, &rec)
	})
}

// BenchmarkEncodeRecord compares appendRecord with encoding/json on the
// record of a device in a twin job (a few tags, desired and reported
// properties, their metadata).
func BenchmarkEncodeRecord(b *testing.B) {
	now := time.Now()
	rec := &record{ID: "bench-000042", Generation: "638000000000000000", Status: "enabled", StatusUpdated: now,
		Primary: make([]byte, 32), Secondary: make([]byte, 32), TwinVersion: 4, TwinEtag: 4,
		Tags:           map[string]any{"building": "43", "floor": 3.0, "i": 42.0},
		Desired:        map[string]any{"interval": 30.0},
		Reported:       map[string]any{"interval": map[string]any{"value": 30.0, "ac": 200.0, "av": 2.0, "ad": "applied"}, "fw": "1.2.3"},
		DesiredVersion: 2, ReportedVersion: 3,
		DesiredMeta:  mergeMeta(nil, map[string]any{"interval": 30.0}, now, 2),
		ReportedMeta: mergeMeta(nil, map[string]any{"interval": map[string]any{"value": 30.0, "ac": 200.0, "av": 2.0, "ad": "applied"}, "fw": "1.2.3"}, now, 0),
	}
	for _, enc := range []struct {
		name string
		fn   func(*record) ([]byte, error)
	}{{"append", encodeRecord}, {"encoding-json", viaEncodingJSON}} {
		b.Run(enc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := enc.fn(rec); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
