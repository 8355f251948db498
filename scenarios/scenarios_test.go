package scenarios

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs/jobs"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden and scenario.schema.json")

func fixtures(t testing.TB, suffix string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "*"+suffix))
	if err != nil || len(files) == 0 {
		t.Fatalf("no testdata/*%s: %v", suffix, err)
	}
	return files
}

func TestGoodFiles(t *testing.T) {
	for _, file := range fixtures(t, ".good.yaml") {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			s, err := Parse(filepath.Base(file), data)
			if err != nil {
				t.Fatalf("Parse:\n%v", err)
			}
			if s.DeviceCount() == 0 || s.Name() == "" || s.Duration <= 0 {
				t.Errorf("count %d, name %q, duration %s", s.DeviceCount(), s.Name(), s.Duration)
			}
			if !bytes.Equal(s.Source(), data) {
				t.Error("Source differs from the file")
			}
		})
	}
}

// TestBadFiles compares the problems of every bad fixture with its golden
// file; go test -update rewrites the golden files.
func TestBadFiles(t *testing.T) {
	for _, file := range fixtures(t, ".bad.yaml") {
		t.Run(filepath.Base(file), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			_, err = Parse(filepath.Base(file), data)
			var pe *ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("Parse returned %v, want a *ParseError", err)
			}
			if pe.File != filepath.Base(file) || len(pe.Problems) == 0 {
				t.Fatalf("ParseError file %q with %d problems", pe.File, len(pe.Problems))
			}
			got := strings.Join(pe.Lines(), "\n") + "\n"
			if got != pe.Error()+"\n" {
				t.Errorf("Error() and Lines() disagree")
			}
			for _, p := range pe.Problems {
				if p.Line < 1 || p.Col < 1 {
					t.Errorf("problem without a position: %s", p)
				}
			}
			golden := file + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if got != string(want) {
				t.Errorf("problems differ from %s (go test -update rewrites it)\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

func TestEmbeddedScenarios(t *testing.T) {
	names := Names()
	for _, want := range []string{"quickstart", "building43-reboot", "firmware-rollout", "twin-config-push", "load-100k", "s1-throttled", "x509-fleet"} {
		if !slices.Contains(names, want) {
			t.Errorf("Names() = %v, missing %s", names, want)
		}
	}
	if !slices.IsSorted(names) {
		t.Errorf("Names() not sorted: %v", names)
	}
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			s, err := Load(name)
			if err != nil {
				t.Fatalf("Load:\n%v", err)
			}
			if s.Name() != name {
				t.Errorf("name %q in file %s.yaml", s.Name(), name)
			}
			if s.Description() == "" || !bytes.HasPrefix(s.Source(), []byte("#")) {
				t.Error("an embedded scenario needs a description and a comment at the top")
			}
			if len(s.Actions()) == 0 || len(s.Expectations)+len(s.RolloutExpectations) == 0 {
				t.Errorf("%d actions, %d expectations", len(s.Actions()), len(s.Expectations))
			}
			// The first and last devices exist and have tags.
			for _, i := range []int{0, s.DeviceCount() - 1} {
				if d := s.Device(i); d.ID == "" {
					t.Errorf("device %d has no id", i)
				}
			}
			if !slices.IsSortedFunc(s.Actions(), func(a, b Action) int { return int(a.When() - b.When()) }) {
				t.Error("Actions() not sorted by At")
			}
		})
	}
}

func TestLoad(t *testing.T) {
	_, err := Load("no-such-scenario")
	if !errors.Is(err, ErrUnknownScenario) || !strings.Contains(err.Error(), `unknown scenario "no-such-scenario"`) {
		t.Errorf("unknown name: %v", err)
	}
	s, err := Load(filepath.Join("testdata", "minimal.good.yaml"))
	if err != nil || s.Name() != "minimal" || s.Filename() != filepath.Join("testdata", "minimal.good.yaml") {
		t.Errorf("by path: %v", err)
	}
	_, err = Load(filepath.Join("testdata", "values.bad.yaml"))
	var pe *ParseError
	if !errors.As(err, &pe) {
		t.Errorf("bad file by path: %v", err)
	}
	if _, err := Load("../scenarios/files/quickstart"); !errors.Is(err, ErrUnknownScenario) {
		t.Errorf("a path-like name must not reach the embedded files: %v", err)
	}
}

func TestDefaults(t *testing.T) {
	s := mustParse(t, `
name: d
duration: 1m
devices: [{count: 2, idPattern: "d-{index}"}]
timeline:
  - at: 1s
    job: {id: j, method: m, condition: "*"}
  - at: 2s
    disconnect: {for: 1s}
`)
	if s.Seed != DefaultSeed || *s.File.Seed != DefaultSeed || s.Hub.Pacing != "unlimited" || s.Groups[0].Name != "group1" {
		t.Errorf("seed %d, pacing %q, group %q", s.Seed, s.Hub.Pacing, s.Groups[0].Name)
	}
	j := s.Actions()[0].(JobAction)
	if j.Type != jobs.TypeDeviceMethod || *j.Method.ResponseTimeoutInSeconds != 30 || j.Method.ConnectTimeoutInSeconds != nil || j.MaxExecutionTime != time.Hour {
		t.Errorf("job defaults: %+v %+v", j, j.Method)
	}
	if d := s.Actions()[1].(DisconnectAction); d.Fraction != 1 {
		t.Errorf("disconnect fraction %v", d.Fraction)
	}
}

func mustParse(t testing.TB, src string) *Scenario {
	t.Helper()
	s, err := Parse("test.yaml", []byte(src))
	if err != nil {
		t.Fatalf("Parse:\n%v", err)
	}
	return s
}

func TestTimeline(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "full.good.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse("full.good.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	acts := s.Actions()
	var kinds []string
	for _, a := range acts {
		kinds = append(kinds, reflect.TypeOf(a).Name())
	}
	want := []string{"JobAction", "JobAction", "CancelAction", "DisconnectAction", "DisconnectAction", "ConnectStormAction", "ConnectStormAction"}
	if !slices.Equal(kinds, want) {
		t.Fatalf("actions %v, want %v", kinds, want)
	}
	ping := acts[0].(JobAction)
	if ping.At != 10*time.Second || ping.StartIn != 5*time.Second || ping.MaxExecutionTime != 2*time.Minute ||
		string(ping.Method.Payload) != `{"hello":"world"}` || *ping.Method.ConnectTimeoutInSeconds != 30 || *ping.Method.ResponseTimeoutInSeconds != 10 {
		t.Errorf("ping job %+v, method %+v", ping, ping.Method)
	}
	twin := acts[1].(JobAction)
	if twin.Type != jobs.TypeUpdateTwin || string(twin.UpdateTwin) != `{"etag":"*","properties":{"desired":{"telemetryInterval":30,"thresholds":{"high":80}}},"tags":{"config":"v2"}}` {
		t.Errorf("twin job %s", twin.UpdateTwin)
	}
	if c := acts[2].(CancelAction); c.JobID != "ping-all" || c.At != 30*time.Second {
		t.Errorf("cancel %+v", c)
	}
	e := s.Expectations[1]
	if e.Job != "config-b43" || e.MinSuccessRate != 0.9 || e.MaxFailed != 2 || e.MinDevices != 10 || e.Within != time.Minute {
		t.Errorf("expectation %+v", e)
	}
	if s.Expectations[0].MaxFailed != -1 || s.Expectations[2].MinConnected != 0.8 {
		t.Errorf("expectations %+v", s.Expectations)
	}
}

func TestDeviceSpecsDeterministic(t *testing.T) {
	s, err := Load("building43-reboot")
	if err != nil {
		t.Fatal(err)
	}
	collect := func(s *Scenario) []DeviceSpec { return slices.Collect(s.DeviceSpecs(0, 1)) }
	a, b := collect(s), collect(s)
	if len(a) != s.DeviceCount() || !reflect.DeepEqual(a, b) {
		t.Fatal("the same seed gave different devices")
	}
	s2, _ := Load("building43-reboot")
	if !reflect.DeepEqual(a, collect(s2)) {
		t.Fatal("two loads gave different devices")
	}
	s2.Seed++
	c := collect(s2)
	differ := 0
	for i := range a {
		if a[i].ID != c[i].ID {
			t.Fatal("ids depend on the seed")
		}
		if !reflect.DeepEqual(a[i].Tags, c[i].Tags) {
			differ++
		}
	}
	if differ == 0 {
		t.Error("another seed gave the same tags")
	}
	// Devices do not share mutable tag maps.
	a[0].Tags["building"] = "changed"
	if s.Device(0).Tags["building"] == "changed" {
		t.Error("tags are shared")
	}
}

func TestShards(t *testing.T) {
	s, err := Load("quickstart")
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []int{1, 2, 3, 7, 1000} {
		seen := map[string]int{}
		for shard := range n {
			size := 0
			for d := range s.DeviceSpecs(shard, n) {
				if prev, dup := seen[d.ID]; dup {
					t.Fatalf("%d shards: %s in shards %d and %d", n, d.ID, prev, shard)
				}
				seen[d.ID] = shard
				if !reflect.DeepEqual(d, s.Device(d.Index)) {
					t.Fatalf("%d shards: device %s differs from Device(%d)", n, d.ID, d.Index)
				}
				size++
			}
			if want := len(s.ShardIndexes(shard, n)); size != want {
				t.Errorf("%d shards: shard %d yields %d, ShardIndexes %d", n, shard, size, want)
			}
			if n > 1 && n < 10 && (size < s.DeviceCount()/n/2 || size > s.DeviceCount()/n*2) {
				t.Errorf("%d shards: shard %d holds %d of %d devices", n, shard, size, s.DeviceCount())
			}
		}
		if len(seen) != s.DeviceCount() {
			t.Errorf("%d shards hold %d of %d devices", n, len(seen), s.DeviceCount())
		}
	}
	if n := len(slices.Collect(s.DeviceSpecs(5, 3))); n != 0 {
		t.Errorf("out-of-range shard yields %d", n)
	}
}

func TestTagRules(t *testing.T) {
	s := mustParse(t, `
name: tags
duration: 1m
devices:
  - count: 3000
    idPattern: "t-{index}"
    indexFrom: 1
    tags:
      rr: [a, b, c]
      floor: 1..5
      w: {$weighted: {x: 0.9, 7: 0.1}}
      r: {$random: [p, q]}
      loc: {region: eu, rack: -2..2}
`)
	counts := map[string]int{}
	for d := range s.DeviceSpecs(0, 1) {
		if want := []string{"a", "b", "c"}[d.Index%3]; d.Tags["rr"] != want {
			t.Fatalf("%s: rr %v, want %s", d.ID, d.Tags["rr"], want)
		}
		if f := d.Tags["floor"].(float64); f < 1 || f > 5 || f != float64(int(f)) {
			t.Fatalf("floor %v", f)
		}
		loc := d.Tags["loc"].(map[string]any)
		if r := loc["rack"].(float64); loc["region"] != "eu" || r < -2 || r > 2 {
			t.Fatalf("loc %v", loc)
		}
		switch w := d.Tags["w"].(type) {
		case string:
			counts["w:"+w]++
		case float64:
			counts["w:7"]++
		}
		counts["r:"+d.Tags["r"].(string)]++
	}
	if x := counts["w:x"]; x < 2600 || x > 2800 {
		t.Errorf("weighted: %v", counts)
	}
	if p := counts["r:p"]; p < 1350 || p > 1650 {
		t.Errorf("random: %v", counts)
	}
	if id := s.Device(0).ID; id != "t-1" {
		t.Errorf("first id %s, want t-1 (indexFrom 1)", id)
	}
}

func TestIDPattern(t *testing.T) {
	tests := []struct {
		pattern string
		index   int
		want    string
		err     bool
	}{
		{"dev-{index}", 7, "dev-7", false},
		{"dev-{index:05}", 7, "dev-00007", false},
		{"b43-{index:02}-x", 123, "b43-123-x", false},
		{"fixed", 0, "fixed", false},
		{"{index}", 0, "0", false},
		{"dev-{index:5}", 0, "", true},
		{"dev-{index:00}", 0, "", true},
		{"dev-{idx}", 0, "", true},
		{"dev-{index", 0, "", true},
		{"{index}-{index}", 0, "", true},
	}
	for _, tt := range tests {
		p, err := parseIDPattern(tt.pattern)
		if (err != nil) != tt.err {
			t.Errorf("%q: err %v", tt.pattern, err)
			continue
		}
		if err != nil {
			continue
		}
		if got := p.id(tt.index); got != tt.want {
			t.Errorf("%q(%d) = %q, want %q", tt.pattern, tt.index, got, tt.want)
		}
		if i, ok := p.index(tt.want); !ok || (p.hasIndex && i != tt.index) {
			t.Errorf("%q: index(%q) = %d, %v", tt.pattern, tt.want, i, ok)
		}
	}
}

func TestConditionColumn(t *testing.T) {
	tests := []struct {
		line string
		col  int
	}{
		// The condition starts at column 40 (41 inside quotes).
		{`    job: {id: j, method: m, condition: tags.a = }`, 48},
		{`    job: {id: j, method: m, condition: tags.a = = 1}`, 49},
		{`    job: {id: j, method: m, condition: "tags.a = "}`, 50},
		{`    job: {id: j, method: m, condition: 'x = 1 AND'}`, 50},
	}
	for _, tt := range tests {
		src := "name: c\nduration: 1m\ndevices: [{count: 1, idPattern: x}]\ntimeline:\n  - at: 1s\n" + tt.line + "\n"
		_, err := Parse("c.yaml", []byte(src))
		var pe *ParseError
		if !errors.As(err, &pe) || len(pe.Problems) != 1 {
			t.Fatalf("%s: %v", tt.line, err)
		}
		if p := pe.Problems[0]; p.Line != 6 || p.Col != tt.col {
			t.Errorf("%s: problem at %d:%d, want 6:%d (%s)", tt.line, p.Line, p.Col, tt.col, p)
		}
	}
}

func TestSelection(t *testing.T) {
	s := mustParse(t, `
name: sel
duration: 1m
devices:
  - count: 1000
    idPattern: "s-{index}"
    tags: {building: [43, 44]}
timeline:
  - at: 1s
    disconnect: {fraction: 0.5, condition: "tags.building = 43", for: 1s}
  - at: 2s
    connectStorm: {fraction: 0.25}
`)
	wave := s.Actions()[0].(DisconnectAction)
	storm := s.Actions()[1].(ConnectStormAction)
	var nWave, nStorm int
	for d := range s.DeviceSpecs(0, 1) {
		if wave.Selects(s.Seed, d) {
			nWave++
			if d.Tags["building"] != 43.0 {
				t.Fatalf("%s selected outside building 43", d.ID)
			}
		}
		if storm.Selects(s.Seed, d) {
			nStorm++
		}
	}
	if nWave < 200 || nWave > 300 || nStorm < 200 || nStorm > 300 {
		t.Errorf("wave selected %d (want ~250), storm %d (want ~250)", nWave, nStorm)
	}
}

// TestJSONSchema fails when scenario.schema.json is not what JSONSchema
// generates; go test -update rewrites it.
func TestJSONSchema(t *testing.T) {
	got := JSONSchema()
	if *update {
		if err := os.WriteFile("scenario.schema.json", got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile("scenario.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("scenario.schema.json is stale: run go test ./scenarios -update")
	}
	for _, key := range []string{`"$schema": "https://json-schema.org/draft/2020-12/schema"`, `"idPattern"`, `"minSuccessRate"`, `"percentiles"`, `"$weighted"`} {
		if !bytes.Contains(got, []byte(key)) {
			t.Errorf("schema lacks %s", key)
		}
	}
}

// FuzzParse checks that Parse never panics or hangs and that it returns
// either a scenario or a *ParseError with positioned problems.
func FuzzParse(f *testing.F) {
	for _, suffix := range []string{".good.yaml", ".bad.yaml"} {
		for _, file := range fixtures(f, suffix) {
			data, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(data)
		}
	}
	for _, name := range Names() {
		data, _ := embedded.ReadFile("files/" + name + ".yaml")
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		watchdog := time.AfterFunc(10*time.Second, func() {
			debug.SetTraceback("all")
			panic(fmt.Sprintf("Parse took over 10s on %q", data))
		})
		defer watchdog.Stop()
		s, err := Parse("fuzz.yaml", data)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || len(pe.Problems) == 0 {
				t.Fatalf("error %v is not a *ParseError with problems", err)
			}
			return
		}
		if s.DeviceCount() > 0 {
			_ = s.Device(0)
			_ = s.Device(s.DeviceCount() - 1)
		}
		_ = s.Actions()
	})
}

func TestScaled(t *testing.T) {
	s, err := Load("load-100k")
	if err != nil {
		t.Fatal(err)
	}
	small := s.Scaled(500)
	if small.DeviceCount() != 500 || s.DeviceCount() != 100_000 {
		t.Fatalf("scaled to %d devices, original now %d", small.DeviceCount(), s.DeviceCount())
	}
	if e := small.Expectations[0]; e.MinDevices != 500 || s.Expectations[0].MinDevices != 100_000 {
		t.Errorf("minDevices %d, original %d", e.MinDevices, s.Expectations[0].MinDevices)
	}
	if d := small.Device(499); d.ID != s.Device(499).ID || !reflect.DeepEqual(d.Tags, s.Device(499).Tags) {
		t.Errorf("scaled device 499 differs: %+v", d)
	}
	if q := must(Load("quickstart")); q.Scaled(1000) != q {
		t.Error("a scenario within the limit must come back unchanged")
	}
}

func must(s *Scenario, err error) *Scenario {
	if err != nil {
		panic(err)
	}
	return s
}

func TestJobRequest(t *testing.T) {
	s := must(Parse("r.yaml", []byte(`
name: r
duration: 1m
devices: [{count: 2, idPattern: "r-{index}"}]
timeline:
  - at: 1s
    job: {id: m, method: reset, payload: {hard: true}, condition: "tags.a = 1", startIn: 10s, maxExecutionTime: 2m, responseTimeout: 15s, connectTimeout: 5s}
  - at: 2s
    job: {id: t, twin: {tags: {a: 2}}, condition: "*"}
`)))
	now := time.Date(2026, 11, 22, 13, 0, 0, 0, time.FixedZone("x", 3600))
	acts := s.Jobs()
	m := acts[0].Request(now)
	if m.JobID != "m" || m.Type != jobs.TypeDeviceMethod || m.QueryCondition != "tags.a = 1" ||
		!m.StartTime.Equal(now.Add(10*time.Second)) || m.StartTime.Location() != time.UTC || *m.MaxExecutionTimeInSeconds != 120 {
		t.Errorf("method request %+v", m)
	}
	c := m.CloudToDeviceMethod
	if c.MethodName != "reset" || string(c.Payload) != `{"hard":true}` || *c.ResponseTimeoutInSeconds != 15 || *c.ConnectTimeoutInSeconds != 5 {
		t.Errorf("method %+v", c)
	}
	if err := c.Validate(); err != nil {
		t.Errorf("method call does not validate: %v", err)
	}
	*c.ResponseTimeoutInSeconds = 99
	c.Payload[0] = 'x'
	if again := acts[0].Request(now).CloudToDeviceMethod; *again.ResponseTimeoutInSeconds != 15 || again.Payload[0] != '{' {
		t.Error("requests share memory with the action")
	}
	tw := acts[1].Request(now)
	if tw.Type != jobs.TypeUpdateTwin || tw.CloudToDeviceMethod != nil || string(tw.UpdateTwin) != `{"etag":"*","tags":{"a":2}}` || *tw.MaxExecutionTimeInSeconds != 3600 {
		t.Errorf("twin request %+v", tw)
	}
}

func TestPacing(t *testing.T) {
	s := must(Load("s1-throttled"))
	if s.Hub.Pacing != "S1" || s.Hub.Profile.OpsPerSecond != 10 || s.Hub.Profile.MaxConcurrentJobs != 1 {
		t.Errorf("hub %+v", s.Hub)
	}
	if q := must(Load("quickstart")); q.Hub.Profile.OpsPerSecond != 0 {
		t.Errorf("quickstart hub %+v", q.Hub)
	}
}

func TestGroupAuth(t *testing.T) {
	s, err := Load(filepath.Join("testdata", "auth.good.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []Auth{AuthSAS, AuthSelfSigned, AuthCA} {
		if got := s.Groups[i].Auth; got != want {
			t.Errorf("group %d: auth %q, want %q", i, got, want)
		}
		if got := s.Device(s.Groups[i].First).Auth; got != want {
			t.Errorf("device of group %d: auth %q, want %q", i, got, want)
		}
	}
	if self, ca := s.X509Groups(); !self || !ca {
		t.Errorf("X509Groups = %v, %v", self, ca)
	}
}
