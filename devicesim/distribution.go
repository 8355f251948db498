package devicesim

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Distribution is a source of random durations (latencies, offline times,
// intervals). Sample draws with r only, so a seeded generator replays the
// same sequence; it never returns a negative duration.
type Distribution interface {
	Sample(r *rand.Rand) time.Duration
}

// Constant always returns its value.
type Constant time.Duration

// Sample implements Distribution.
func (c Constant) Sample(*rand.Rand) time.Duration { return max(time.Duration(c), 0) }

// String formats c as ParseDistribution reads it.
func (c Constant) String() string { return time.Duration(c).String() }

// Uniform draws evenly from [Min, Max].
type Uniform struct {
	Min, Max time.Duration
}

// Sample implements Distribution.
func (u Uniform) Sample(r *rand.Rand) time.Duration {
	lo, hi := u.Min, u.Max
	if hi < lo {
		lo, hi = hi, lo
	}
	if hi == lo {
		return max(lo, 0)
	}
	return max(lo+time.Duration(r.Int64N(int64(hi-lo)+1)), 0)
}

// String formats u as ParseDistribution reads it.
func (u Uniform) String() string { return fmt.Sprintf("uniform(%s,%s)", u.Min, u.Max) }

// Normal draws from a normal distribution, cut at zero.
type Normal struct {
	Mean, StdDev time.Duration
}

// Sample implements Distribution.
func (n Normal) Sample(r *rand.Rand) time.Duration {
	return clampDuration(float64(n.Mean) + r.NormFloat64()*float64(n.StdDev))
}

// String formats n as ParseDistribution reads it.
func (n Normal) String() string { return fmt.Sprintf("normal(%s,%s)", n.Mean, n.StdDev) }

// LogNormal draws exp(N(ln Median, Sigma²)): a long right tail, the usual
// shape of network and device latencies. Median is the 50th percentile; Sigma
// is the standard deviation of the logarithm (0.5 puts p99 at about 3.2×
// the median).
type LogNormal struct {
	Median time.Duration
	Sigma  float64
}

// Sample implements Distribution.
func (l LogNormal) Sample(r *rand.Rand) time.Duration {
	if l.Median <= 0 {
		return 0
	}
	return clampDuration(float64(l.Median) * math.Exp(r.NormFloat64()*l.Sigma))
}

// String formats l as ParseDistribution reads it.
func (l LogNormal) String() string {
	return fmt.Sprintf("lognormal(%s,%s)", l.Median, strconv.FormatFloat(l.Sigma, 'g', -1, 64))
}

// Exponential draws from an exponential distribution with the given mean:
// memoryless times between failures (MTBF) and arrivals.
type Exponential struct {
	Mean time.Duration
}

// Sample implements Distribution.
func (e Exponential) Sample(r *rand.Rand) time.Duration {
	return clampDuration(r.ExpFloat64() * float64(e.Mean))
}

// String formats e as ParseDistribution reads it.
func (e Exponential) String() string { return fmt.Sprintf("exp(%s)", e.Mean) }

// Percentile is one point of an empirical distribution: the fraction P
// (0..1) of samples that are at most D.
type Percentile struct {
	P float64
	D time.Duration
}

// Percentiles is an empirical distribution given by measured percentiles
// (p50, p90, p99, ...), sampled by a piecewise-linear inverse CDF. Below the
// first point it interpolates from zero at P=0 unless a P=0 point is given;
// above the last point it extends the last segment's slope to P=1 unless a
// P=1 point is given. Points must have increasing P and non-decreasing D
// (Validate checks).
type Percentiles struct {
	Points []Percentile
}

// Sample implements Distribution.
func (p Percentiles) Sample(r *rand.Rand) time.Duration {
	return p.Quantile(r.Float64())
}

// Quantile returns the duration at fraction u of the distribution.
func (p Percentiles) Quantile(u float64) time.Duration {
	pts := p.Points
	if len(pts) == 0 {
		return 0
	}
	lo := Percentile{P: 0, D: 0}
	if pts[0].P <= 0 {
		lo = pts[0]
		pts = pts[1:]
	}
	for _, hi := range pts {
		if u <= hi.P {
			return interpolate(lo, hi, u)
		}
		lo = hi
	}
	// Above the last point: extend the last segment.
	n := len(p.Points)
	if n < 2 || lo.P >= 1 {
		return max(lo.D, 0)
	}
	return max(interpolate(p.Points[n-2], lo, u), lo.D)
}

func interpolate(a, b Percentile, u float64) time.Duration {
	if b.P <= a.P {
		return max(b.D, 0)
	}
	f := (u - a.P) / (b.P - a.P)
	return clampDuration(float64(a.D) + f*float64(b.D-a.D))
}

// Validate reports points out of order or outside 0..1.
func (p Percentiles) Validate() error {
	if len(p.Points) == 0 {
		return errors.New("percentiles: no points")
	}
	for i, pt := range p.Points {
		if pt.P < 0 || pt.P > 1 || math.IsNaN(pt.P) {
			return fmt.Errorf("percentiles: p=%v is outside 0..1", pt.P)
		}
		if pt.D < 0 {
			return fmt.Errorf("percentiles: negative duration %s", pt.D)
		}
		if i > 0 && (pt.P <= p.Points[i-1].P || pt.D < p.Points[i-1].D) {
			return fmt.Errorf("percentiles: point p%s=%s does not follow p%s=%s",
				pctName(pt.P), pt.D, pctName(p.Points[i-1].P), p.Points[i-1].D)
		}
	}
	return nil
}

// String formats p as ParseDistribution reads it.
func (p Percentiles) String() string {
	parts := make([]string, len(p.Points))
	for i, pt := range p.Points {
		parts[i] = "p" + pctName(pt.P) + "=" + pt.D.String()
	}
	return strings.Join(parts, ",")
}

func pctName(p float64) string { return strconv.FormatFloat(p*100, 'g', -1, 64) }

func clampDuration(f float64) time.Duration {
	switch {
	case f <= 0 || math.IsNaN(f):
		return 0
	case f >= math.MaxInt64:
		return math.MaxInt64
	}
	return time.Duration(f)
}

// sample draws from d, or returns 0 for a nil distribution.
func sample(d Distribution, r *rand.Rand) time.Duration {
	if d == nil {
		return 0
	}
	return d.Sample(r)
}

// ErrDistribution is returned (wrapped) by ParseDistribution.
var ErrDistribution = errors.New("malformed distribution")

// ParseDistribution reads the text forms a scenario file uses:
//
//	250ms                          Constant
//	uniform(10ms, 50ms)            Uniform
//	normal(100ms, 20ms)            Normal
//	lognormal(80ms, 0.6)           LogNormal (median, sigma)
//	exp(10m)                       Exponential (mean)
//	p50=20ms, p90=80ms, p99=300ms  Percentiles (also p0=, p100=, p99.9=)
func ParseDistribution(s string) (Distribution, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrDistribution)
	}
	if strings.HasPrefix(s, "p") && strings.Contains(s, "=") {
		return parsePercentiles(s)
	}
	name, args, ok := strings.Cut(s, "(")
	if !ok {
		d, err := time.ParseDuration(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %w", ErrDistribution, s, err)
		}
		if d < 0 {
			return nil, fmt.Errorf("%w: %q is negative", ErrDistribution, s)
		}
		return Constant(d), nil
	}
	args, ok = strings.CutSuffix(strings.TrimSpace(args), ")")
	if !ok {
		return nil, fmt.Errorf("%w: %q: missing ')'", ErrDistribution, s)
	}
	fields := strings.Split(args, ",")
	for i := range fields {
		fields[i] = strings.TrimSpace(fields[i])
	}
	want := 2
	if strings.TrimSpace(name) == "exp" {
		want = 1
	}
	if len(fields) != want {
		return nil, fmt.Errorf("%w: %q: %s takes %d arguments", ErrDistribution, s, name, want)
	}
	dur := func(i int) (time.Duration, error) {
		d, err := time.ParseDuration(fields[i])
		if err != nil {
			return 0, fmt.Errorf("%w: %q: argument %d: %w", ErrDistribution, s, i+1, err)
		}
		if d < 0 {
			return 0, fmt.Errorf("%w: %q: argument %d is negative", ErrDistribution, s, i+1)
		}
		return d, nil
	}
	a, err := dur(0)
	if err != nil {
		return nil, err
	}
	switch strings.TrimSpace(name) {
	case "exp":
		return Exponential{Mean: a}, nil
	case "lognormal":
		sigma, err := strconv.ParseFloat(fields[1], 64)
		if err != nil || sigma < 0 || math.IsNaN(sigma) || math.IsInf(sigma, 0) {
			return nil, fmt.Errorf("%w: %q: sigma %q is not a non-negative number", ErrDistribution, s, fields[1])
		}
		return LogNormal{Median: a, Sigma: sigma}, nil
	}
	b, err := dur(1)
	if err != nil {
		return nil, err
	}
	switch strings.TrimSpace(name) {
	case "uniform":
		if b < a {
			return nil, fmt.Errorf("%w: %q: max is below min", ErrDistribution, s)
		}
		return Uniform{Min: a, Max: b}, nil
	case "normal":
		return Normal{Mean: a, StdDev: b}, nil
	}
	return nil, fmt.Errorf("%w: %q: unknown distribution %q", ErrDistribution, s, name)
}

func parsePercentiles(s string) (Distribution, error) {
	s = strings.TrimSuffix(strings.TrimPrefix(s, "percentiles("), ")")
	var p Percentiles
	for _, f := range strings.Split(s, ",") {
		k, v, ok := strings.Cut(strings.TrimSpace(f), "=")
		if !ok || !strings.HasPrefix(k, "p") {
			return nil, fmt.Errorf("%w: %q: want pNN=duration", ErrDistribution, f)
		}
		pct, err := strconv.ParseFloat(k[1:], 64)
		if err != nil {
			return nil, fmt.Errorf("%w: %q: percentile %q: %w", ErrDistribution, f, k, err)
		}
		d, err := time.ParseDuration(strings.TrimSpace(v))
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %w", ErrDistribution, f, err)
		}
		p.Points = append(p.Points, Percentile{P: pct / 100, D: d})
	}
	slices.SortFunc(p.Points, func(a, b Percentile) int {
		switch {
		case a.P < b.P:
			return -1
		case a.P > b.P:
			return 1
		}
		return 0
	})
	if err := p.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDistribution, err)
	}
	return p, nil
}
