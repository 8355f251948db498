package scenarios

import (
	"fmt"
	"slices"

	"github.com/fleetsim/fleetsim/devicesim"
)

// TelemetryField is one field of a telemetry payload template: its name
// and exactly one generator.
type TelemetryField struct {
	Name       string          `yaml:"name" required:"true" doc:"The field's name in the message's JSON object."`
	Constant   any             `yaml:"constant" doc:"Always this value (any YAML value, sent as JSON)."`
	DeviceID   bool            `yaml:"deviceId" doc:"true: the device's id."`
	Timestamp  string          `yaml:"timestamp" enum:"rfc3339,unix,unixMilli" doc:"The message's time: rfc3339 (a string), unix (seconds) or unixMilli."`
	Counter    *CounterSpec    `yaml:"counter" doc:"A counter: start, start+step, ..."`
	RandomWalk *RandomWalkSpec `yaml:"randomWalk" doc:"A random walk: from start, a step drawn evenly from [-step, step] per message, kept within [min, max]."`
	Sine       *SineSpec       `yaml:"sine" doc:"A sine wave over time, offset + amplitude·sin(2π·t/period + a phase drawn per device)."`
	Uniform    []float64       `yaml:"uniform" doc:"[min, max]: a number drawn evenly between the two for each message."`
	Normal     *NormalValues   `yaml:"normal" doc:"A number drawn from a normal distribution for each message."`
	Decimals   *int            `yaml:"decimals" bounds:"nonnegative" doc:"Round numbers to this many decimal places; default 2 (counters 0)."`
}

// CounterSpec is a counter field.
type CounterSpec struct {
	Start float64  `yaml:"start" doc:"The first value; default 0."`
	Step  *float64 `yaml:"step" doc:"Added per message; default 1."`
}

// RandomWalkSpec is a random-walk field.
type RandomWalkSpec struct {
	Start float64 `yaml:"start" required:"true" doc:"The first value."`
	Step  float64 `yaml:"step" required:"true" bounds:"nonnegative" doc:"The largest move per message."`
	Min   float64 `yaml:"min" required:"true" doc:"The walk never goes below this."`
	Max   float64 `yaml:"max" required:"true" doc:"The walk never goes above this."`
}

// SineSpec is a sine-wave field.
type SineSpec struct {
	Period    Duration `yaml:"period" required:"true" doc:"One full wave, e.g. 10m."`
	Amplitude float64  `yaml:"amplitude" required:"true" doc:"Half the distance between the lowest and highest value."`
	Offset    float64  `yaml:"offset" doc:"The middle value; default 0."`
}

// NormalValues is a normal distribution of numbers.
type NormalValues struct {
	Mean   float64  `yaml:"mean" required:"true" doc:"Mean."`
	StdDev float64  `yaml:"stddev" required:"true" bounds:"nonnegative" doc:"Standard deviation."`
	Min    *float64 `yaml:"min" doc:"Values below are raised to it."`
	Max    *float64 `yaml:"max" doc:"Values above are lowered to it."`
}

// telemetryTemplate converts a telemetry spec's template, or returns nil
// when it has no fields, reporting problems at the fields' positions.
func (d *decoder) telemetryTemplate(t *TelemetrySpec, path string) *devicesim.TelemetryTemplate {
	if len(t.Fields) == 0 {
		if t.ContentType != "" || t.ContentEncoding != "" || len(t.Properties) > 0 {
			return &devicesim.TelemetryTemplate{ContentType: t.ContentType, ContentEncoding: t.ContentEncoding, Properties: sortedProps(t.Properties)}
		}
		return nil
	}
	out := &devicesim.TelemetryTemplate{ContentType: t.ContentType, ContentEncoding: t.ContentEncoding, Properties: sortedProps(t.Properties)}
	if out.ContentType == "" {
		out.ContentType = "application/json"
	}
	if out.ContentEncoding == "" {
		out.ContentEncoding = "utf-8"
	}
	seen := map[string]bool{}
	for i := range t.Fields {
		f := &t.Fields[i]
		fp := fmt.Sprintf("%s[%d]", join(path, "fields"), i)
		bad := func(format string, args ...any) { d.problem(d.where(f), fp, format, args...) }
		if seen[f.Name] {
			d.problem(d.where(&f.Name, f), join(fp, "name"), "field %q appears twice", f.Name)
		}
		seen[f.Name] = true
		g := devicesim.TelemetryField{Name: f.Name, Decimals: 2}
		n := 0
		if f.Constant != nil {
			n++
			g.Kind, g.Value = devicesim.FieldConstant, d.payloadJSON(f.Constant, &f.Constant, join(fp, "constant"))
		}
		if f.DeviceID {
			n++
			g.Kind = devicesim.FieldDeviceID
		}
		if f.Timestamp != "" {
			n++
			g.Kind, g.Format = devicesim.FieldTimestamp, f.Timestamp
			if !slices.Contains([]string{"rfc3339", "unix", "unixMilli"}, f.Timestamp) {
				msg := fmt.Sprintf("unknown format %q: want rfc3339, unix or unixMilli", f.Timestamp)
				if s := suggest(f.Timestamp, []string{"rfc3339", "unix", "unixMilli"}); s != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", s)
				}
				d.problem(d.where(&f.Timestamp, f), join(fp, "timestamp"), "%s", msg)
			}
		}
		if c := f.Counter; c != nil {
			n++
			g.Kind, g.Start, g.Step, g.Decimals = devicesim.FieldCounter, c.Start, 1, 0
			if c.Step != nil {
				g.Step, g.Decimals = *c.Step, 2
			}
		}
		if w := f.RandomWalk; w != nil {
			n++
			g.Kind, g.Start, g.Step, g.Min, g.Max = devicesim.FieldRandomWalk, w.Start, w.Step, w.Min, w.Max
			if w.Min > w.Max || w.Start < w.Min || w.Start > w.Max {
				d.problem(d.where(w, f), join(fp, "randomWalk"), "want min <= start <= max, got min %v, start %v, max %v", w.Min, w.Start, w.Max)
			}
		}
		if s := f.Sine; s != nil {
			n++
			g.Kind, g.Period, g.Amplitude, g.Offset = devicesim.FieldSine, s.Period.D(), s.Amplitude, s.Offset
			if s.Period.D() <= 0 {
				d.problem(d.where(&s.Period, s, f), join(join(fp, "sine"), "period"), "the period must be above 0")
			}
		}
		if f.Uniform != nil {
			n++
			if len(f.Uniform) != 2 || f.Uniform[0] > f.Uniform[1] {
				d.problem(d.where(&f.Uniform, f), join(fp, "uniform"), "want [min, max] with min <= max")
			} else {
				g.Kind, g.Min, g.Max = devicesim.FieldUniform, f.Uniform[0], f.Uniform[1]
			}
		}
		if nv := f.Normal; nv != nil {
			n++
			g.Kind, g.Mean, g.StdDev = devicesim.FieldNormal, nv.Mean, nv.StdDev
			if nv.StdDev < 0 {
				d.problem(d.where(&nv.StdDev, nv, f), join(join(fp, "normal"), "stddev"), "%v is negative", nv.StdDev)
			}
			if nv.Min != nil && nv.Max != nil {
				g.Min, g.Max = *nv.Min, *nv.Max
				if g.Min > g.Max {
					d.problem(d.where(nv, f), join(fp, "normal"), "min %v is above max %v", g.Min, g.Max)
				}
			} else if nv.Min != nil || nv.Max != nil {
				d.problem(d.where(nv, f), join(fp, "normal"), "give both min and max, or neither")
			}
		}
		if n != 1 {
			bad("field %q needs exactly one of constant, deviceId, timestamp, counter, randomWalk, sine, uniform and normal", f.Name)
		}
		if f.Decimals != nil {
			g.Decimals = *f.Decimals
			if g.Decimals < 0 || g.Decimals > 15 {
				d.problem(d.where(f.Decimals, f), join(fp, "decimals"), "%d is outside 0..15", g.Decimals)
			}
		}
		out.Fields = append(out.Fields, g)
	}
	return out
}

func sortedProps(m map[string]string) [][2]string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([][2]string, 0, len(keys))
	for _, k := range keys {
		out = append(out, [2]string{k, m[k]})
	}
	return out
}
