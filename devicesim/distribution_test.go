package devicesim

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseDistribution(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Distribution
		err  string
	}{
		{in: "250ms", want: Constant(250 * time.Millisecond)},
		{in: " uniform(10ms, 50ms) ", want: Uniform{Min: 10 * time.Millisecond, Max: 50 * time.Millisecond}},
		{in: "normal(100ms,20ms)", want: Normal{Mean: 100 * time.Millisecond, StdDev: 20 * time.Millisecond}},
		{in: "lognormal(80ms, 0.6)", want: LogNormal{Median: 80 * time.Millisecond, Sigma: 0.6}},
		{in: "exp(10m)", want: Exponential{Mean: 10 * time.Minute}},
		{in: "p50=20ms, p90=80ms, p99=300ms", want: Percentiles{Points: []Percentile{{0.5, 20 * time.Millisecond}, {0.9, 80 * time.Millisecond}, {0.99, 300 * time.Millisecond}}}},
		{in: "percentiles(p99=1s,p0=1ms,p50=5ms)", want: Percentiles{Points: []Percentile{{0, time.Millisecond}, {0.5, 5 * time.Millisecond}, {0.99, time.Second}}}},
		{in: "", err: "empty"},
		{in: "-5s", err: "negative"},
		{in: "fast", err: "invalid duration"},
		{in: "uniform(5s)", err: "takes 2 arguments"},
		{in: "uniform(5s,1s)", err: "max is below min"},
		{in: "uniform(5s,1s", err: "missing ')'"},
		{in: "lognormal(5s,-1)", err: "sigma"},
		{in: "gamma(1s,2s)", err: "unknown distribution"},
		{in: "p50=20ms,p90=10ms", err: "does not follow"},
		{in: "p150=1s", err: "outside 0..1"},
		{in: "p50", err: "invalid duration"},
		{in: "p50=1s,q9=2s", err: "want pNN=duration"},
	} {
		got, err := ParseDistribution(tc.in)
		if tc.err != "" {
			if err == nil || !errors.Is(err, ErrDistribution) || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseDistribution(%q) error = %v, want one containing %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseDistribution(%q): %v", tc.in, err)
			continue
		}
		if gs, ws := got.(interface{ String() string }).String(), tc.want.(interface{ String() string }).String(); gs != ws {
			t.Errorf("ParseDistribution(%q) = %s, want %s", tc.in, gs, ws)
		}
		// The String form parses back to the same distribution.
		again, err := ParseDistribution(got.(interface{ String() string }).String())
		if err != nil || again.(interface{ String() string }).String() != got.(interface{ String() string }).String() {
			t.Errorf("round trip of %q: %v, %v", tc.in, again, err)
		}
	}
}

func TestDistributionStatistics(t *testing.T) {
	const n = 200000
	for _, tc := range []struct {
		d            Distribution
		mean, median time.Duration
	}{
		{Constant(time.Second), time.Second, time.Second},
		{Uniform{Min: time.Second, Max: 3 * time.Second}, 2 * time.Second, 2 * time.Second},
		{Normal{Mean: time.Second, StdDev: 100 * time.Millisecond}, time.Second, time.Second},
		{LogNormal{Median: time.Second, Sigma: 0.5}, time.Duration(float64(time.Second) * math.Exp(0.125)), time.Second},
		{Exponential{Mean: time.Second}, time.Second, time.Duration(math.Round(float64(time.Second) * math.Ln2))},
		{Percentiles{Points: []Percentile{{0, 0}, {0.5, time.Second}, {1, 2 * time.Second}}}, time.Second, time.Second},
	} {
		r := rand.New(rand.NewPCG(1, 2))
		s := make([]time.Duration, n)
		var sum float64
		for i := range s {
			s[i] = tc.d.Sample(r)
			if s[i] < 0 {
				t.Fatalf("%v: negative sample %s", tc.d, s[i])
			}
			sum += float64(s[i])
		}
		slices.Sort(s)
		mean, median := time.Duration(sum/n), s[n/2]
		if rel(mean, tc.mean) > 0.01 || rel(median, tc.median) > 0.01 {
			t.Errorf("%v: mean %s median %s, want %s and %s", tc.d, mean, median, tc.mean, tc.median)
		}
	}
}

func rel(a, b time.Duration) float64 { return math.Abs(float64(a-b)) / float64(b) }

func TestPercentilesQuantile(t *testing.T) {
	p := Percentiles{Points: []Percentile{{0.5, 100 * time.Millisecond}, {0.9, 300 * time.Millisecond}, {0.99, time.Second}}}
	for _, tc := range []struct {
		u    float64
		want time.Duration
	}{
		{0, 0},
		{0.25, 50 * time.Millisecond},
		{0.5, 100 * time.Millisecond},
		{0.7, 200 * time.Millisecond},
		{0.9, 300 * time.Millisecond},
		{0.99, time.Second},
		{1, time.Second + 700*time.Millisecond/9}, // the last segment's slope, extended
	} {
		if got := p.Quantile(tc.u); got.Round(time.Microsecond) != tc.want.Round(time.Microsecond) {
			t.Errorf("Quantile(%v) = %s, want %s", tc.u, got, tc.want)
		}
	}
	if (Percentiles{}).Quantile(0.5) != 0 {
		t.Error("empty percentiles should give 0")
	}
}

func TestPickStatusAndChance(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	if pickStatus(nil, r) != 200 {
		t.Error("empty mix should answer 200")
	}
	if pickStatus([]WeightedStatus{{Status: 500}}, r) != 500 {
		t.Error("single entry should win regardless of weight")
	}
	if chance(0, r) || !chance(1, r) {
		t.Error("chance(0) or chance(1) wrong")
	}
	// chance with 0 or 1 draws nothing, so it does not shift later draws.
	a, b := rand.New(rand.NewPCG(5, 6)), rand.New(rand.NewPCG(5, 6))
	chance(0, a)
	chance(1, a)
	if a.Uint64() != b.Uint64() {
		t.Error("chance(0/1) consumed randomness")
	}
}

func TestExpandTemplate(t *testing.T) {
	v := templateVars{deviceID: "d1", method: "m", status: 201, request: []byte(`{"a":[1]}`)}
	for _, tc := range []struct{ tmpl, want string }{
		{"", "null"},
		{`{"x":1}`, `{"x":1}`},
		{`{"id":"{{deviceId}}","m":"{{method}}","s":{{status}},"r":{{requestPayload}}}`, `{"id":"d1","m":"m","s":201,"r":{"a":[1]}}`},
		{`{"u":"{{unknown}}"}`, `{"u":"{{unknown}}"}`},
		{`{"open":"{{deviceId"}`, `{"open":"{{deviceId"}`},
	} {
		if got := string(expandTemplate([]byte(tc.tmpl), v)); got != tc.want {
			t.Errorf("expand(%s) = %s, want %s", tc.tmpl, got, tc.want)
		}
	}
	if got := string(expandTemplate([]byte(`{{requestPayload}}`), templateVars{})); got != "null" {
		t.Errorf("empty request = %s, want null", got)
	}
}

func TestBehaviorValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		b    Behavior
		errs []string
	}{
		{"zero", Behavior{}, nil},
		{"bad probabilities", Behavior{
			Methods: map[string]MethodBehavior{"m": {NoAnswerProbability: 2, DisconnectProbability: -1}},
			Desired: DesiredBehavior{FailProbability: 1.5},
		}, []string{"noAnswerProbability", "disconnectProbability", "failProbability"}},
		{"weights", Behavior{Methods: map[string]MethodBehavior{"m": {Statuses: []WeightedStatus{{200, 0}}}}}, []string{"sum to zero"}},
		{"payload", Behavior{Methods: map[string]MethodBehavior{"m": {Payload: []byte(`{"a":`)}}}, []string{"does not give JSON"}},
		{"flapping", Behavior{Connectivity: Connectivity{Flapping: &Flapping{MTBF: Constant(1)}}}, []string{"MTBF and MTTR"}},
		{"renewal", Behavior{Connectivity: Connectivity{TokenLifetime: time.Minute, RenewalMargin: time.Hour}}, []string{"renewal margin"}},
		{"firmware", Behavior{FirmwareUpdate: &FirmwareBehavior{Failure: map[FirmwarePhase]float64{FirmwareIdle: 0.5}}}, []string{"can fail"}},
		{"telemetry", Behavior{Telemetry: &TelemetryBehavior{QoS: 2}}, []string{"interval is required", "QoS 2"}},
	} {
		err := tc.b.Validate()
		if len(tc.errs) == 0 {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		for _, want := range tc.errs {
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%s: error %v does not mention %q", tc.name, err, want)
			}
		}
	}
}

func FuzzParseDistribution(f *testing.F) {
	for _, s := range []string{"250ms", "uniform(1s,2s)", "normal(1s,1ms)", "lognormal(1s,0.5)", "exp(1m)", "p50=1ms,p99=1s", "percentiles(p0=0s,p100=1h)", "p50=", "uniform(,)"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDistribution(s)
		if err != nil {
			return
		}
		r := rand.New(rand.NewPCG(1, 1))
		for range 100 {
			if v := d.Sample(r); v < 0 {
				t.Fatalf("%q gave negative sample %s", s, v)
			}
		}
	})
}
