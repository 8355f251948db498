package devicesim

import (
	"bytes"
	"encoding/json"
	"math"
	"regexp"
	"testing"
	"time"
)

func testTemplate() *TelemetryTemplate {
	return &TelemetryTemplate{
		ContentType: "application/json", ContentEncoding: "utf-8", Properties: [][2]string{{"site", "building 43"}, {"kind", "a&b=c"}},
		Fields: []TelemetryField{
			{Name: "deviceId", Kind: FieldDeviceID},
			{Name: "ts", Kind: FieldTimestamp},
			{Name: "seq", Kind: FieldCounter, Start: 1, Step: 1, Decimals: 0},
			{Name: "temperature", Kind: FieldRandomWalk, Start: 21, Step: 0.5, Min: 18, Max: 24, Decimals: 2},
			{Name: "humidity", Kind: FieldSine, Period: time.Minute, Amplitude: 10, Offset: 45, Decimals: 1},
			{Name: "load", Kind: FieldUniform, Min: 0.2, Max: 0.9, Decimals: -1},
			{Name: "vibration", Kind: FieldNormal, Mean: 1, StdDev: 5, Min: 0, Max: 2, Decimals: 3},
			{Name: "model", Kind: FieldConstant, Value: json.RawMessage(`"TH-100"`)},
		},
	}
}

// run makes n payloads of id at one message a second from t0.
func run(tpl *TelemetryTemplate, id string, seed int64, n int) [][]byte {
	g := NewTelemetryGen(tpl, id, seed)
	t0 := time.Date(2026, 12, 6, 12, 0, 0, 0, time.UTC)
	var out [][]byte
	for i := range n {
		out = append(out, g.Next(t0.Add(time.Duration(i)*time.Second)))
	}
	return out
}

func TestTelemetryTemplateDeterministic(t *testing.T) {
	tpl := testTemplate()
	if err := tpl.Validate(); err != nil {
		t.Fatal(err)
	}
	a, b := run(tpl, "dev-1", 7, 50), run(tpl, "dev-1", 7, 50)
	other, reseeded := run(tpl, "dev-2", 7, 50), run(tpl, "dev-1", 8, 50)
	same := func(x, y [][]byte) bool {
		for i := range x {
			if !bytes.Equal(x[i], y[i]) {
				return false
			}
		}
		return true
	}
	if !same(a, b) {
		t.Error("the same seed and device give different payloads")
	}
	if same(a, other) || same(a, reseeded) {
		t.Error("another device or seed gives the same payloads")
	}
}

var twoDecimals = regexp.MustCompile(`"temperature":\d+(\.\d{1,2})?,`)

func TestTelemetryTemplateValues(t *testing.T) {
	msgs := run(testTemplate(), "dev-1", 1, 600)
	var prevTemp float64
	var lo, hi = math.Inf(1), math.Inf(-1)
	var sumLoad float64
	for i, raw := range msgs {
		var m struct {
			DeviceID    string  `json:"deviceId"`
			TS          string  `json:"ts"`
			Seq         float64 `json:"seq"`
			Temperature float64 `json:"temperature"`
			Humidity    float64 `json:"humidity"`
			Load        float64 `json:"load"`
			Vibration   float64 `json:"vibration"`
			Model       string  `json:"model"`
		}
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("message %d is not JSON: %v: %s", i, err, raw)
		}
		if m.DeviceID != "dev-1" || m.Model != "TH-100" || m.Seq != float64(i+1) {
			t.Fatalf("message %d: %s", i, raw)
		}
		if want := time.Date(2026, 12, 6, 12, 0, i, 0, time.UTC).Format(time.RFC3339Nano); m.TS != want {
			t.Fatalf("message %d: ts %s, want %s", i, m.TS, want)
		}
		if i == 0 && m.Temperature != 21 {
			t.Errorf("the walk starts at %v, want 21", m.Temperature)
		}
		if m.Temperature < 18 || m.Temperature > 24 || (i > 0 && math.Abs(m.Temperature-prevTemp) > 0.5+1e-9) {
			t.Fatalf("message %d: temperature %v after %v leaves [18, 24] or moves more than 0.5", i, m.Temperature, prevTemp)
		}
		if !twoDecimals.Match(raw) {
			t.Errorf("message %d: temperature has more than 2 decimals: %s", i, raw)
		}
		prevTemp = m.Temperature
		if m.Humidity < 35-1e-9 || m.Humidity > 55+1e-9 {
			t.Fatalf("message %d: humidity %v outside 45 ± 10", i, m.Humidity)
		}
		lo, hi = min(lo, m.Humidity), max(hi, m.Humidity)
		if m.Load < 0.2 || m.Load > 0.9 {
			t.Fatalf("message %d: load %v outside [0.2, 0.9]", i, m.Load)
		}
		sumLoad += m.Load
		if m.Vibration < 0 || m.Vibration > 2 {
			t.Fatalf("message %d: vibration %v outside [0, 2]", i, m.Vibration)
		}
	}
	// Ten periods of the sine: it reaches near both ends.
	if lo > 35.5 || hi < 54.5 {
		t.Errorf("humidity spans %v..%v, want about 35..55", lo, hi)
	}
	if mean := sumLoad / float64(len(msgs)); math.Abs(mean-0.55) > 0.05 {
		t.Errorf("uniform load mean %v, want about 0.55", mean)
	}
}

func TestTelemetryTemplateTopic(t *testing.T) {
	got := testTemplate().Topic("dev-1")
	want := "devices/dev-1/messages/events/%24.ct=application%2Fjson&%24.ce=utf-8&site=building%2043&kind=a%26b%3Dc"
	if got != want {
		t.Errorf("Topic = %s\n want %s", got, want)
	}
}

func TestTelemetryTemplateValidate(t *testing.T) {
	bad := &TelemetryTemplate{Fields: []TelemetryField{
		{Name: "a", Kind: FieldRandomWalk, Start: 30, Min: 0, Max: 10},
		{Name: "a", Kind: FieldSine},
		{Name: "c", Kind: FieldTimestamp, Format: "iso"},
		{Name: "d", Kind: FieldConstant, Value: json.RawMessage(`{`)},
	}}
	err := bad.Validate()
	for _, want := range []string{"random walk", "twice", "period", "timestamp format", "constant"} {
		if err == nil || !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Errorf("Validate: %v, want a problem about %s", err, want)
		}
	}
}
