package scenarios

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Duration is a non-negative length of time written as Go writes durations:
// "500ms", "5s", "2m30s", "1h" (or a bare 0).
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

func (d *Duration) decodeNode(dec *decoder, n *yaml.Node, path string) {
	if n.Kind != yaml.ScalarNode {
		dec.wrongType(n, path, `a duration such as "5s"`)
		return
	}
	switch n.ShortTag() {
	case "!!int", "!!float":
		if f, ok := scalarFloat(n); ok && f == 0 {
			*d = 0
			return
		}
		dec.errorf(n, path, "%s has no unit: write a duration such as %ss or %sms", n.Value, n.Value, n.Value)
		return
	case "!!str":
	default:
		dec.wrongType(n, path, `a duration such as "5s"`)
		return
	}
	v, err := time.ParseDuration(strings.TrimSpace(n.Value))
	if err != nil {
		dec.errorf(n, path, "%q is not a duration such as 500ms, 5s, 2m or 1h", n.Value)
		return
	}
	if v < 0 {
		dec.errorf(n, path, "duration %s is negative", n.Value)
		return
	}
	*d = Duration(v)
}

// KeepAlive is an MQTT keep-alive: a Duration, or "off" (false works too,
// for YAML 1.1 tools that read off as a boolean).
type KeepAlive struct {
	Off      bool
	Duration Duration
}

func (k *KeepAlive) decodeNode(dec *decoder, n *yaml.Node, path string) {
	if n.Kind == yaml.ScalarNode && (n.ShortTag() == "!!str" && n.Value == "off" || n.ShortTag() == "!!bool" && strings.EqualFold(n.Value, "false")) {
		*k = KeepAlive{Off: true}
		return
	}
	dec.decode(n, reflect.ValueOf(&k.Duration).Elem(), path)
}

func (KeepAlive) jsonSchema(g *schemaGen) map[string]any {
	return map[string]any{"anyOf": []any{Duration(0).jsonSchema(g), map[string]any{"enum": []any{"off", false}}}}
}

// Distribution is a random duration. A plain duration ("50ms") is a
// constant; otherwise exactly one of the keys below is given.
type Distribution struct {
	Constant    *Duration           `yaml:"constant" doc:"Always this duration."`
	Uniform     []Duration          `yaml:"uniform" doc:"[min, max]: evenly between the two."`
	Normal      *NormalSpec         `yaml:"normal" doc:"Normal distribution cut at zero."`
	LogNormal   *LogNormalSpec      `yaml:"lognormal" doc:"Log-normal distribution: a long right tail, the usual shape of network latency."`
	Exponential *Duration           `yaml:"exponential" doc:"Exponential distribution with this mean (times between failures)."`
	Percentiles map[string]Duration `yaml:"percentiles" doc:"Measured percentiles such as {p50: 20ms, p99: 400ms}, interpolated linearly."`
}

// NormalSpec is a normal distribution.
type NormalSpec struct {
	Mean   Duration `yaml:"mean" required:"true" doc:"Mean."`
	StdDev Duration `yaml:"stddev" required:"true" doc:"Standard deviation."`
}

// LogNormalSpec is a log-normal distribution.
type LogNormalSpec struct {
	Median Duration `yaml:"median" required:"true" doc:"Median (50th percentile)."`
	Sigma  float64  `yaml:"sigma" required:"true" doc:"Standard deviation of the logarithm; 0.5 puts p99 at about 3.2 times the median."`
}

// PercentilePoint is one point of a Percentiles distribution.
type PercentilePoint struct {
	P float64 // 0..1
	D time.Duration
}

var percentileKey = regexp.MustCompile(`^p(100|[0-9]{1,2}(\.[0-9]+)?)$`)

func (dist *Distribution) decodeNode(dec *decoder, n *yaml.Node, path string) {
	if n.Kind == yaml.ScalarNode {
		dist.Constant = new(Duration)
		dec.decode(n, reflect.ValueOf(dist.Constant).Elem(), path)
		return
	}
	if n.Kind != yaml.MappingNode {
		dec.wrongType(n, path, `a duration or a distribution such as {uniform: [10ms, 50ms]}`)
		return
	}
	before := len(dec.problems)
	dec.decodeStruct(n, reflect.ValueOf(dist).Elem(), path)
	if len(dec.problems) > before {
		return
	}
	set := 0
	for _, b := range []bool{dist.Constant != nil, dist.Uniform != nil, dist.Normal != nil, dist.LogNormal != nil, dist.Exponential != nil, dist.Percentiles != nil} {
		if b {
			set++
		}
	}
	if set != 1 {
		dec.errorf(n, path, "a distribution needs exactly one of constant, uniform, normal, lognormal, exponential and percentiles")
		return
	}
	switch {
	case dist.Uniform != nil:
		if len(dist.Uniform) != 2 {
			dec.errorf(n, path, "uniform takes [min, max], got %d values", len(dist.Uniform))
		} else if dist.Uniform[1] < dist.Uniform[0] {
			dec.errorf(n, path, "uniform: max %s is below min %s", dist.Uniform[1], dist.Uniform[0])
		}
	case dist.LogNormal != nil:
		if s := dist.LogNormal.Sigma; s < 0 || math.IsNaN(s) || math.IsInf(s, 0) {
			dec.errorf(n, join(path, "lognormal.sigma"), "sigma %v must be a non-negative number", s)
		}
	case dist.Percentiles != nil:
		dist.checkPercentiles(dec, n, path)
	}
}

func (dist *Distribution) checkPercentiles(dec *decoder, n *yaml.Node, path string) {
	if len(dist.Percentiles) == 0 {
		dec.errorf(n, path, "percentiles needs at least one point such as p50: 20ms")
		return
	}
	mp := mapPointer(dist.Percentiles)
	ok := true
	for k := range dist.Percentiles {
		if !percentileKey.MatchString(k) {
			p, _ := dec.posOf(mapKey{mp, k})
			dec.problem(p, join(path, "percentiles"), "%q is not a percentile such as p50, p99 or p99.9", k)
			ok = false
		}
	}
	if !ok {
		return
	}
	pts := dist.points()
	for i := 1; i < len(pts); i++ {
		if pts[i].D < pts[i-1].D {
			dec.errorf(n, join(path, "percentiles"), "p%s=%s is below p%s=%s: durations must grow with the percentile",
				pctName(pts[i].P), pts[i].D, pctName(pts[i-1].P), pts[i-1].D)
		}
	}
}

// points returns the percentile points sorted by P.
func (dist *Distribution) points() []PercentilePoint {
	pts := make([]PercentilePoint, 0, len(dist.Percentiles))
	for k, v := range dist.Percentiles {
		p, _ := strconv.ParseFloat(strings.TrimPrefix(k, "p"), 64)
		pts = append(pts, PercentilePoint{P: p / 100, D: v.D()})
	}
	slices.SortFunc(pts, func(a, b PercentilePoint) int { return cmp.Compare(a.P, b.P) })
	return pts
}

func pctName(p float64) string { return strconv.FormatFloat(p*100, 'g', -1, 64) }

// String describes dist compactly, e.g. "uniform(10ms,50ms)".
func (dist *Distribution) String() string {
	switch {
	case dist == nil:
		return "none"
	case dist.Constant != nil:
		return dist.Constant.String()
	case len(dist.Uniform) == 2:
		return fmt.Sprintf("uniform(%s,%s)", dist.Uniform[0], dist.Uniform[1])
	case dist.Normal != nil:
		return fmt.Sprintf("normal(%s,%s)", dist.Normal.Mean, dist.Normal.StdDev)
	case dist.LogNormal != nil:
		return fmt.Sprintf("lognormal(%s,%g)", dist.LogNormal.Median, dist.LogNormal.Sigma)
	case dist.Exponential != nil:
		return fmt.Sprintf("exp(%s)", *dist.Exponential)
	case dist.Percentiles != nil:
		var parts []string
		for _, p := range dist.points() {
			parts = append(parts, "p"+pctName(p.P)+"="+p.D.String())
		}
		return strings.Join(parts, ",")
	}
	return "none"
}

// tagKind says how a TagSpec gives each device its value.
type tagKind int

const (
	tagConst      tagKind = iota // the same value for every device
	tagRoundRobin                // choices[index within the group % n]
	tagRandom                    // a choice drawn per device
	tagWeighted                  // a choice drawn per device by weight
	tagRange                     // an integer drawn per device from lo..hi
	tagObject                    // nested tags
)

// TagSpec is the rule that gives each device a tag value; see GroupSpec.Tags.
type TagSpec struct {
	kind    tagKind
	value   any
	choices []any
	weights []float64
	lo, hi  int64
	fields  map[string]*TagSpec
}

var rangeForm = regexp.MustCompile(`^\s*(-?[0-9]+)\s*\.\.\s*(-?[0-9]+)\s*$`)

func (t *TagSpec) decodeNode(dec *decoder, n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.ShortTag() == "!!str" {
			if m := rangeForm.FindStringSubmatch(n.Value); m != nil {
				lo, err1 := strconv.ParseInt(m[1], 10, 64)
				hi, err2 := strconv.ParseInt(m[2], 10, 64)
				switch {
				case err1 != nil || err2 != nil || lo < -(1<<52) || hi > 1<<52:
					dec.errorf(n, path, "range %s is out of the integers twins can hold", n.Value)
				case hi < lo:
					dec.errorf(n, path, "range %s is empty: %d is below %d", n.Value, hi, lo)
				default:
					*t = TagSpec{kind: tagRange, lo: lo, hi: hi}
				}
				return
			}
		}
		*t = TagSpec{kind: tagConst, value: dec.value(n, path)}
	case yaml.SequenceNode:
		if len(n.Content) == 0 {
			dec.errorf(n, path, "an empty list gives no value to deal out")
			return
		}
		if c, _ := dec.value(n, path).([]any); len(c) > 0 {
			*t = TagSpec{kind: tagRoundRobin, choices: c}
		}
	case yaml.MappingNode:
		pairs := dec.pairs(n, path)
		for _, p := range pairs {
			if k, ok := dec.keyName(p[0], path); ok && strings.HasPrefix(k, "$") {
				t.decodeDollar(dec, n, pairs, path)
				return
			}
		}
		fields := map[string]*TagSpec{}
		for _, p := range pairs {
			k, ok := dec.keyName(p[0], path)
			if !ok {
				continue
			}
			if _, dup := fields[k]; dup {
				dec.errorf(p[0], path, "key %q appears twice", k)
				continue
			}
			if err := checkTagKey(k); err != "" {
				dec.errorf(p[0], path, "%s", err)
			}
			sub := new(TagSpec)
			dec.decode(p[1], reflect.ValueOf(sub).Elem(), join(path, k))
			fields[k] = sub
		}
		*t = TagSpec{kind: tagObject, fields: fields}
	default:
		dec.wrongType(n, path, "a tag value")
	}
}

// decodeDollar reads {$random: [...]} and {$weighted: {value: weight}}.
func (t *TagSpec) decodeDollar(dec *decoder, n *yaml.Node, pairs [][2]*yaml.Node, path string) {
	if len(pairs) != 1 {
		dec.errorf(n, path, "$random or $weighted must be the only key of its mapping")
		return
	}
	k, v := pairs[0][0], dec.resolve(pairs[0][1], path)
	if v == nil {
		return
	}
	switch k.Value {
	case "$random":
		if v.Kind != yaml.SequenceNode || len(v.Content) == 0 {
			dec.wrongType(v, join(path, k.Value), "a non-empty list of values")
			return
		}
		if c, _ := dec.value(v, join(path, k.Value)).([]any); len(c) > 0 {
			*t = TagSpec{kind: tagRandom, choices: c}
		}
	case "$weighted":
		p := join(path, k.Value)
		if v.Kind != yaml.MappingNode || len(v.Content) == 0 {
			dec.wrongType(v, p, "a mapping of values to weights")
			return
		}
		w := TagSpec{kind: tagWeighted}
		var sum float64
		for _, pr := range dec.pairs(v, p) {
			key := dec.resolve(pr[0], p)
			if key == nil {
				continue
			}
			if key.Kind != yaml.ScalarNode {
				dec.wrongType(key, p, "a scalar value")
				continue
			}
			val := dec.value(key, p)
			if slices.Contains(w.choices, val) {
				dec.errorf(key, p, "value %s appears twice", key.Value)
				continue
			}
			var weight float64
			wn := dec.resolve(pr[1], p)
			if wn == nil {
				continue
			}
			if f, ok := scalarFloat(wn); !ok || f < 0 || math.IsInf(f, 0) || math.IsNaN(f) {
				dec.wrongType(wn, join(p, key.Value), "a non-negative weight")
				continue
			} else {
				weight = f
			}
			w.choices = append(w.choices, val)
			w.weights = append(w.weights, weight)
			sum += weight
		}
		if sum <= 0 && len(w.choices) > 0 {
			dec.errorf(v, p, "the weights sum to zero")
		}
		*t = w
	default:
		msg := fmt.Sprintf("unknown tag rule %q", k.Value)
		if s := suggest(k.Value, []string{"$random", "$weighted"}); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		} else {
			msg += " (want $random or $weighted)"
		}
		dec.errorf(k, path, "%s", msg)
	}
}

// checkTagKey applies IoT Hub's twin key rules (docs/iothub.md §3.5).
func checkTagKey(k string) string {
	if k == "" {
		return "a tag name must not be empty"
	}
	for _, r := range k {
		if r == '.' || r == '$' || r == ' ' || r < 0x20 || (r >= 0x7f && r < 0xa0) {
			return fmt.Sprintf("tag name %q: twin keys must not contain '.', '$', spaces or control characters", k)
		}
	}
	if len(k) > 1024 {
		return fmt.Sprintf("tag name %q is longer than 1024 bytes", k[:32]+"...")
	}
	return ""
}

// sample gives the value for the device at index (0-based position within
// its group), drawing from r.
func (t *TagSpec) sample(index int, r *rand.Rand) any {
	switch t.kind {
	case tagConst:
		return deepCopy(t.value)
	case tagRoundRobin:
		return deepCopy(t.choices[index%len(t.choices)])
	case tagRandom:
		return deepCopy(t.choices[r.IntN(len(t.choices))])
	case tagWeighted:
		var sum float64
		for _, w := range t.weights {
			sum += w
		}
		u := r.Float64() * sum
		for i, w := range t.weights {
			if u < w {
				return deepCopy(t.choices[i])
			}
			u -= w
		}
		return deepCopy(t.choices[len(t.choices)-1])
	case tagRange:
		return float64(t.lo + r.Int64N(t.hi-t.lo+1))
	case tagObject:
		m := make(map[string]any, len(t.fields))
		for _, k := range sortedKeys(t.fields) {
			m[k] = t.fields[k].sample(index, r)
		}
		return m
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// deepCopy copies the maps and slices of a decoded value, so that devices
// never share mutable tag values.
func deepCopy(v any) any {
	switch x := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(x))
		for k, e := range x {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(x))
		for i, e := range x {
			s[i] = deepCopy(e)
		}
		return s
	}
	return v
}
