package devicesim

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// FieldKind is how a telemetry template field gets its value.
type FieldKind uint8

// The field kinds.
const (
	// FieldConstant is always Value.
	FieldConstant FieldKind = iota + 1
	// FieldDeviceID is the device's id.
	FieldDeviceID
	// FieldTimestamp is the message's time, formatted by Format:
	// "rfc3339" (default), "unix" or "unixMilli".
	FieldTimestamp
	// FieldCounter is Start, then Start+Step, Start+2·Step, ...
	FieldCounter
	// FieldRandomWalk starts at Start and moves by a uniform step in
	// [-Step, Step] per message, kept within [Min, Max].
	FieldRandomWalk
	// FieldSine is Offset + Amplitude·sin(2π·t/Period + phase), with t the
	// time since the device's first message and a phase drawn per device.
	FieldSine
	// FieldUniform is drawn evenly from [Min, Max].
	FieldUniform
	// FieldNormal is drawn from a normal distribution (Mean, StdDev),
	// kept within [Min, Max] when Max > Min.
	FieldNormal
)

// TelemetryField is one field of a telemetry payload template.
type TelemetryField struct {
	Name string
	Kind FieldKind
	// Value is a FieldConstant's JSON value.
	Value json.RawMessage
	// Format is a FieldTimestamp's format.
	Format                                   string
	Start, Step, Min, Max, Amplitude, Offset float64
	Mean, StdDev                             float64
	Period                                   time.Duration
	// Decimals rounds a number to this many decimal places; negative keeps
	// every digit.
	Decimals int
}

// TelemetryTemplate gives simulated telemetry real content: a JSON object
// whose fields are generated per message, deterministic from the run's
// seed and the device id, and the message's content type, encoding and
// application properties.
type TelemetryTemplate struct {
	Fields          []TelemetryField
	ContentType     string
	ContentEncoding string
	// Properties are the messages' application properties, in order.
	Properties [][2]string
}

// Validate reports the template's problems, all at once.
func (t *TelemetryTemplate) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for _, f := range t.Fields {
		if seen[f.Name] {
			errs = append(errs, fmt.Errorf("field %q appears twice", f.Name))
		}
		seen[f.Name] = true
		switch f.Kind {
		case FieldConstant:
			if !json.Valid(f.Value) {
				errs = append(errs, fmt.Errorf("field %q: the constant is not a JSON value", f.Name))
			}
		case FieldTimestamp:
			switch f.Format {
			case "", "rfc3339", "unix", "unixMilli":
			default:
				errs = append(errs, fmt.Errorf("field %q: timestamp format %q: want rfc3339, unix or unixMilli", f.Name, f.Format))
			}
		case FieldRandomWalk:
			if f.Min > f.Max || f.Start < f.Min || f.Start > f.Max || f.Step < 0 {
				errs = append(errs, fmt.Errorf("field %q: a random walk needs min <= start <= max and a step >= 0", f.Name))
			}
		case FieldSine:
			if f.Period <= 0 {
				errs = append(errs, fmt.Errorf("field %q: a sine needs a period above 0", f.Name))
			}
		case FieldUniform:
			if f.Min > f.Max {
				errs = append(errs, fmt.Errorf("field %q: min %v is above max %v", f.Name, f.Min, f.Max))
			}
		case FieldNormal:
			if f.StdDev < 0 {
				errs = append(errs, fmt.Errorf("field %q: stddev %v is negative", f.Name, f.StdDev))
			}
		case FieldDeviceID, FieldCounter:
		default:
			errs = append(errs, fmt.Errorf("field %q: no generator", f.Name))
		}
	}
	return errors.Join(errs...)
}

// Topic is the telemetry topic of deviceID with the template's properties
// in the property bag, escaped as the Node device SDK escapes them.
func (t *TelemetryTemplate) Topic(deviceID string) string {
	var b strings.Builder
	b.WriteString(iothub.TelemetryTopic(deviceID))
	sep := ""
	add := func(k, v string) {
		b.WriteString(sep + iothub.EncodeURIComponent(k) + "=" + iothub.EncodeURIComponent(v))
		sep = "&"
	}
	if t.ContentType != "" {
		add("$.ct", t.ContentType)
	}
	if t.ContentEncoding != "" {
		add("$.ce", t.ContentEncoding)
	}
	for _, p := range t.Properties {
		add(p[0], p[1])
	}
	return b.String()
}

// TelemetryGen makes one device's payloads from a template. It is not
// safe for concurrent use; each device has its own.
type TelemetryGen struct {
	t     *TelemetryTemplate
	id    string
	rng   *rand.Rand
	seq   int64
	first time.Time
	walk  []float64
	phase []float64
}

// NewTelemetryGen starts deviceID's generator; seed is the run's seed. The
// same seed, id and message times give the same payloads.
func NewTelemetryGen(t *TelemetryTemplate, deviceID string, seed int64) *TelemetryGen {
	h := hashID(deviceID) ^ uint64(seed) ^ 0x7e1e3e7a
	g := &TelemetryGen{t: t, id: deviceID, rng: rand.New(rand.NewPCG(h, splitmix(h))),
		walk: make([]float64, len(t.Fields)), phase: make([]float64, len(t.Fields))}
	for i, f := range t.Fields {
		g.walk[i] = f.Start
		g.phase[i] = g.rng.Float64() * 2 * math.Pi
	}
	return g
}

// Next returns the payload of the message sent at now.
func (g *TelemetryGen) Next(now time.Time) []byte {
	if g.seq == 0 {
		g.first = now
	}
	b := make([]byte, 0, 32*len(g.t.Fields)+2)
	b = append(b, '{')
	for i, f := range g.t.Fields {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, f.Name)
		b = append(b, ':')
		switch f.Kind {
		case FieldConstant:
			b = append(b, f.Value...)
		case FieldDeviceID:
			b = strconv.AppendQuote(b, g.id)
		case FieldTimestamp:
			switch f.Format {
			case "unix":
				b = strconv.AppendInt(b, now.Unix(), 10)
			case "unixMilli":
				b = strconv.AppendInt(b, now.UnixMilli(), 10)
			default:
				b = append(b, '"')
				b = now.UTC().AppendFormat(b, time.RFC3339Nano)
				b = append(b, '"')
			}
		default:
			b = appendNumber(b, g.number(i, f, now), f.Decimals)
		}
	}
	g.seq++
	return append(b, '}')
}

func (g *TelemetryGen) number(i int, f TelemetryField, now time.Time) float64 {
	switch f.Kind {
	case FieldCounter:
		return f.Start + float64(g.seq)*f.Step
	case FieldRandomWalk:
		if g.seq > 0 {
			g.walk[i] = min(max(g.walk[i]+(2*g.rng.Float64()-1)*f.Step, f.Min), f.Max)
		}
		return g.walk[i]
	case FieldSine:
		t := now.Sub(g.first).Seconds()
		return f.Offset + f.Amplitude*math.Sin(2*math.Pi*t/f.Period.Seconds()+g.phase[i])
	case FieldUniform:
		return f.Min + g.rng.Float64()*(f.Max-f.Min)
	case FieldNormal:
		v := f.Mean + g.rng.NormFloat64()*f.StdDev
		if f.Max > f.Min {
			v = min(max(v, f.Min), f.Max)
		}
		return v
	}
	return 0
}

func appendNumber(b []byte, v float64, decimals int) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "null"...)
	}
	if decimals >= 0 {
		p := math.Pow(10, float64(decimals))
		v = math.Round(v*p) / p
	}
	return strconv.AppendFloat(b, v, 'f', -1, 64)
}
