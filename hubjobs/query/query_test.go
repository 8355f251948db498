package query

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// memSource is a Source over documents in key order (test fixture).
type memSource struct {
	keys []string
	docs map[string]map[string]any
}

func newMem(docs []map[string]any, keyOf func(map[string]any) string) *memSource {
	s := &memSource{docs: map[string]map[string]any{}}
	for _, d := range docs {
		k := keyOf(d)
		s.keys = append(s.keys, k)
		s.docs[k] = d
	}
	slices.Sort(s.keys)
	return s
}

func (s *memSource) Scan(after string, fn func(string, map[string]any) bool) {
	for _, k := range s.keys {
		if k > after && !fn(k, s.docs[k]) {
			return
		}
	}
}

func (s *memSource) Get(k string) (map[string]any, bool) { d, ok := s.docs[k]; return d, ok }

func fixture(t testing.TB) (*memSource, *Index) {
	b, err := os.ReadFile("testdata/twins.json")
	if err != nil {
		t.Fatal(err)
	}
	var docs []map[string]any
	if err := json.Unmarshal(b, &docs); err != nil {
		t.Fatal(err)
	}
	src := newMem(docs, func(d map[string]any) string { return d["deviceId"].(string) })
	idx := NewIndex()
	for _, k := range src.keys {
		idx.Update(k, nil, src.docs[k])
	}
	return src, idx
}

func ids(t *testing.T, q string, src Source, idx *Index) []string {
	t.Helper()
	parsed, err := Parse(q)
	if err != nil {
		t.Fatalf("Parse(%q): %v", q, err)
	}
	page, err := parsed.Execute(src, idx, 1000, "")
	if err != nil {
		t.Fatalf("Execute(%q): %v", q, err)
	}
	var out []string
	for _, it := range page.Items {
		out = append(out, it.(map[string]any)["deviceId"].(string))
	}
	return out
}

func TestConditions(t *testing.T) {
	src, idx := fixture(t)
	tests := []struct {
		where string
		want  string
	}{
		// Examples from iothub.md §6.
		{"tags.location.region = 'US'", "MyDevice1 MyDevice2"},
		{"tags.location.region = 'US' AND properties.reported.telemetryConfig.sendFrequencyInSecs >= 60", "MyDevice1"},
		{"is_defined(properties.reported.connectivity)", "MyDevice1 MyDevice2"},
		{"properties.reported.connectivity IN ['wired', 'wifi']", "MyDevice1 MyDevice2"},
		{"deviceId IN ['MyDevice1','MyDevice2']", "MyDevice1 MyDevice2"},
		{"deviceId IN ['MyDevice1']", "MyDevice1"},
		{"status = 'enabled' AND connectionState = 'Disconnected'", "MyDevice2"},
		{"DeviceId = 'MyDevice3'", "MyDevice3"},
		{"Properties.Reported.battery > 50", "MyDevice1"},
		// Operators.
		{"tags.floor = 3", "MyDevice1 MyDevice3"},
		{"tags.floor != 3", "MyDevice2"},
		{"tags.floor <> 3", "MyDevice2"},
		{"tags.floor < 3", "MyDevice2"},
		{"tags.floor <= 3", "MyDevice1 MyDevice2 MyDevice3"},
		{"tags.floor > 1", "MyDevice1 MyDevice3"},
		{"tags.floor >= 1 AND tags.floor < 3", "MyDevice2"},
		{"tags.building = '43' AND tags.floor = 3", "MyDevice1"},
		{"tags.building = '43' OR tags.building = '44'", "MyDevice1 MyDevice2 MyDevice3"},
		{"NOT (tags.building = '43')", "MyDevice3"},
		{"NOT tags.building = '43'", "MyDevice3"},
		{"tags.building NIN ['43']", "MyDevice3"},
		{"tags.floor + 1 = 4", "MyDevice1 MyDevice3"},
		{"tags.floor * 2 - 1 = 5", "MyDevice1 MyDevice3"},
		{"tags.floor / 2 = 1.5", "MyDevice1 MyDevice3"},
		{"tags.floor % 2 = 1", "MyDevice1 MyDevice2 MyDevice3"},
		{"-tags.floor = -1", "MyDevice2"},
		{"tags.floor = 0x3", "MyDevice1 MyDevice3"},
		{"properties.reported.battery = 1.55e1", "MyDevice3"},
		{`tags.kind = "sensor"`, "MyDevice2"},
		{`deviceId = 'test-\u0064evice'`, "test-device"},
		{`'it\'s' = "it's" AND deviceId = 'MyDevice1'`, "MyDevice1"},
		// Type rules: only boolean true selects; cross-type comparisons are undefined.
		{"tags.building = 43", ""},
		{"tags.location = 'US'", ""},
		{"tags.floor", ""},
		{"NOT (tags.building = 43)", ""},
		{"tags.nope = 1 OR deviceId = 'MyDevice2'", "MyDevice2"},
		{"properties.reported.battery = null", "MyDevice2"},
		{"true", "MyDevice1 MyDevice2 MyDevice3 test-device"},
		{"false OR undefined", ""},
		// Functions.
		{"IS_NULL(properties.reported.battery)", "MyDevice2"},
		{"is_defined(properties.reported.battery)", "MyDevice1 MyDevice2 MyDevice3"},
		{"IS_NUMBER(properties.reported.battery)", "MyDevice1 MyDevice3"},
		{"IS_STRING(tags.building)", "MyDevice1 MyDevice2 MyDevice3"},
		{"IS_BOOL(tags.floor)", ""},
		{"IS_ARRAY(tags.list)", "MyDevice3"},
		{"IS_OBJECT(tags.location)", "MyDevice1 MyDevice2 MyDevice3"},
		{"IS_PRIMITIVE(tags.location)", ""},
		{"STARTSWITH(deviceId, 'MyDev')", "MyDevice1 MyDevice2 MyDevice3"},
		{"ENDSWITH(deviceId, '2')", "MyDevice2"},
		{"CONTAINS(tags.location.plant, 'mond')", "MyDevice1"},
		{"ARRAY_CONTAINS(tags.list, 'b')", "MyDevice3"},
		{"LOWER(deviceId) = 'mydevice1'", "MyDevice1"},
		{"UPPER(tags.kind) = 'SENSOR'", "MyDevice2"},
		{"LENGTH(deviceId) = 11", "test-device"},
		{"CONCAT(tags.building, '-', tags.kind) = '43-sensor'", "MyDevice2"},
		{"SUBSTRING(deviceId, 0, 4) = 'test'", "test-device"},
		{"INDEX_OF(deviceId, 'Device') = 2", "MyDevice1 MyDevice2 MyDevice3"},
		{"ABS(-tags.floor) = 3", "MyDevice1 MyDevice3"},
		{"FLOOR(properties.reported.battery) = 15", "MyDevice3"},
		{"CEILING(properties.reported.battery) = 16", "MyDevice3"},
		{"SQUARE(tags.floor) = 9 AND SQRT(9) = 3 AND POWER(2, 3) = 8", "MyDevice1 MyDevice3"},
		{"SIGN(tags.floor) = 1 AND EXP(0) = 1", "MyDevice1 MyDevice2 MyDevice3"},
		{"AS_NUMBER(tags.building) = 44", "MyDevice3"},
	}
	for _, tt := range tests {
		for _, useIdx := range []bool{false, true} {
			var ix *Index
			if useIdx {
				ix = idx
			}
			got := strings.Join(ids(t, "SELECT * FROM devices WHERE "+tt.where, src, ix), " ")
			if got != tt.want {
				t.Errorf("WHERE %s (index %v) = %q, want %q", tt.where, useIdx, got, tt.want)
			}
		}
	}
}

func TestProjectionsAndAggregates(t *testing.T) {
	src, idx := fixture(t)
	run := func(q string) string {
		parsed, err := Parse(q)
		if err != nil {
			t.Fatalf("Parse(%q): %v", q, err)
		}
		page, err := parsed.Execute(src, idx, 100, "")
		if err != nil {
			t.Fatal(err)
		}
		if page.ItemType != "Raw" {
			t.Errorf("%s: item type %s", q, page.ItemType)
		}
		b, _ := json.Marshal(page.Items)
		return string(b)
	}
	tests := []struct{ q, want string }{
		{"SELECT COUNT() AS totalNumberOfDevices FROM devices", `[{"totalNumberOfDevices":4}]`},
		{"SELECT DeviceId, LastActivityTime FROM devices WHERE status = 'enabled' AND connectionState = 'Disconnected'",
			`[{"deviceId":"MyDevice2","lastActivityTime":"2026-10-01T10:00:00Z"}]`},
		{"SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS numberOfDevices FROM devices GROUP BY properties.reported.telemetryConfig.status",
			`[{"numberOfDevices":1,"status":"Error"},{"numberOfDevices":1,"status":"Pending"},{"numberOfDevices":2,"status":"Success"}]`},
		{"SELECT AVG(tags.floor) AS a, SUM(tags.floor) AS s, MIN(tags.floor) AS lo, MAX(tags.floor) AS hi FROM devices", `[{"a":2.3333333333333335,"hi":3,"lo":1,"s":7}]`},
		{"SELECT COUNT() AS n FROM devices WHERE tags.building = 'none'", `[{"n":0}]`},
		{"SELECT TOP 2 deviceId FROM devices", `[{"deviceId":"MyDevice1"},{"deviceId":"MyDevice2"}]`},
		{"SELECT deviceId AS id, tags.floor + 1 AS next FROM devices WHERE deviceId = 'MyDevice3'", `[{"id":"MyDevice3","next":4}]`},
	}
	for _, tt := range tests {
		if got := run(tt.q); got != tt.want {
			t.Errorf("%s\n got %s\nwant %s", tt.q, got, tt.want)
		}
	}
}

func TestErrors(t *testing.T) {
	tests := []struct{ q, want string }{
		{"SELECT * FROM devices WHERE (tags.x = 1", "column 40: expected ')' but found end of query"},
		{"SELECT * FORM devices", "column 10: expected FROM but found 'FORM'"},
		{"SELECT * FROM things", "column 15: expected devices, devices.modules or devices.jobs after FROM but found 'things'"},
		{"SELECT * FROM devices WHERE STARTS_WITH(deviceId, 'a')", "column 29: unknown function STARTS_WITH: twin and job queries spell it STARTSWITH"},
		{"SELECT * FROM devices WHERE deviceId = 'abc", "column 40: string literal is not closed"},
		{"SELECT * FROM devices WHERE deviceId IN 'a'", "column 41: IN needs an array of constants such as ['a', 'b']"},
		{"SELECT * FROM devices WHERE a = 1 b", "column 35: unexpected 'b'"},
		{"SELECT * FROM devices WHERE deviceId ! 'a'", "column 38: unexpected '!': use != or NOT"},
		{"SELECT * FROM devices WHERE x = 12abc", "column 33: malformed number \"12a\""},
		{"SELECT * FROM devices WHERE LOWER(a, b) = 'x'", "column 29: LOWER takes 1 argument, got 2"},
		{"SELECT * FROM devices WHERE NOPE(a)", "column 29: unknown function NOPE"},
		{"SELECT TOP x * FROM devices", "column 12: TOP needs a whole number, found 'x'"},
		{"SELECT deviceId FROM devices.jobs", "devices.jobs queries support only SELECT *"},
		{"SELECT deviceId, COUNT() AS n FROM devices", "deviceId is neither an aggregate nor the GROUP BY property"},
		{"SELECT * FROM devices WHERE x = 'é' AND @", "column 41: unexpected character '@'"},
		{"SELECT * FROM devices WHERE " + strings.Repeat("a", 8200), "the limit is 8192"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.q)
		if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrInvalidQuery) {
			t.Errorf("Parse(%.60q) error = %v, want it to contain %q", tt.q, err, tt.want)
		}
	}
}

func TestParseCondition(t *testing.T) {
	src, idx := fixture(t)
	tests := []struct {
		cond, want string
		from       Collection
		err        string
	}{
		{cond: "*", want: "MyDevice1 MyDevice2 MyDevice3 test-device", from: Devices},
		{cond: " * ", want: "MyDevice1 MyDevice2 MyDevice3 test-device", from: Devices},
		{cond: "tags.building = '43' AND tags.floor = 3", want: "MyDevice1", from: Devices},
		{cond: "IS_DEFINED(DeviceId)", want: "MyDevice1 MyDevice2 MyDevice3 test-device", from: Devices},
		{cond: "FROM devices.modules WHERE moduleId = 'x'", from: Modules},
		{cond: "FROM devices WHERE deviceId = 'MyDevice2'", want: "MyDevice2", from: Devices},
		{cond: "SELECT * FROM devices", err: "not a whole query"},
		{cond: "", err: "the condition is empty"},
		{cond: "deviceId = ", err: "expected a value"},
		{cond: "FROM devices.jobs WHERE jobId = 'x'", err: "not devices.jobs"},
	}
	for _, tt := range tests {
		q, err := ParseCondition(tt.cond)
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("ParseCondition(%q) = %v, want %q", tt.cond, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("ParseCondition(%q): %v", tt.cond, err)
		}
		if q.From() != tt.from {
			t.Errorf("%q: from %s", tt.cond, q.From())
		}
		if tt.from != Devices {
			continue
		}
		var got []string
		_ = q.Select(src, idx, func(k string) bool { got = append(got, k); return true })
		if g := strings.Join(got, " "); g != tt.want {
			t.Errorf("ParseCondition(%q) selects %q, want %q", tt.cond, g, tt.want)
		}
	}
}

func synthetic(n int) (*memSource, *Index) {
	docs := make([]map[string]any, n)
	for i := range docs {
		docs[i] = map[string]any{
			"deviceId":   fmt.Sprintf("dev-%06d", i),
			"status":     "enabled",
			"tags":       map[string]any{"building": fmt.Sprint(40 + i%5), "floor": float64(1 + i%7)},
			"properties": map[string]any{"reported": map[string]any{"fw": "1.0", "n": float64(i)}, "desired": map[string]any{}},
		}
	}
	src := newMem(docs, func(d map[string]any) string { return d["deviceId"].(string) })
	idx := NewIndex()
	for _, k := range src.keys {
		idx.Update(k, nil, src.docs[k])
	}
	return src, idx
}

func TestPagingAndIndexConsistency(t *testing.T) {
	src, idx := synthetic(250)
	for _, q := range []string{"SELECT * FROM devices", "SELECT * FROM devices WHERE status = 'enabled'", "SELECT deviceId FROM devices WHERE tags.floor >= 1"} {
		parsed, _ := Parse(q)
		var sizes []int
		cont := ""
		seen := map[string]bool{}
		for {
			page, err := parsed.Execute(src, idx, 100, cont)
			if err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, len(page.Items))
			for _, it := range page.Items {
				id := it.(map[string]any)["deviceId"].(string)
				if seen[id] {
					t.Fatalf("%s: %s returned twice", q, id)
				}
				seen[id] = true
			}
			if page.Continuation == "" {
				break
			}
			cont = page.Continuation
		}
		if fmt.Sprint(sizes) != "[100 100 50]" {
			t.Errorf("%s: page sizes %v", q, sizes)
		}
	}
	top, _ := Parse("SELECT TOP 150 * FROM devices")
	p1, _ := top.Execute(src, idx, 100, "")
	p2, _ := top.Execute(src, idx, 100, p1.Continuation)
	if len(p1.Items) != 100 || len(p2.Items) != 50 || p2.Continuation != "" {
		t.Errorf("TOP 150 paged %d + %d, last continuation %q", len(p1.Items), len(p2.Items), p2.Continuation)
	}
	other, _ := Parse("SELECT * FROM devices WHERE status = 'x'")
	if _, err := other.Execute(src, idx, 10, p1.Continuation); !errors.Is(err, ErrInvalidQuery) {
		t.Errorf("foreign continuation accepted: %v", err)
	}
	// Index updates follow document changes.
	old := src.docs["dev-000001"]
	changed := map[string]any{"deviceId": "dev-000001", "tags": map[string]any{"building": "99"}}
	src.docs["dev-000001"] = changed
	idx.Update("dev-000001", old, changed)
	q, _ := Parse("SELECT * FROM devices WHERE tags.building = '99'")
	if p, _ := q.Execute(src, idx, 10, ""); len(p.Items) != 1 {
		t.Errorf("updated index finds %d", len(p.Items))
	}
	q, _ = Parse("SELECT * FROM devices WHERE tags.building = '41' AND deviceId = 'dev-000001'")
	if p, _ := q.Execute(src, idx, 10, ""); len(p.Items) != 0 {
		t.Errorf("stale index entry still matches")
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"SELECT * FROM devices WHERE tags.a = 1", "SELECT COUNT() AS n FROM devices GROUP BY tags.x",
		"SELECT TOP 3 deviceId, tags.floor + 1 AS f FROM devices WHERE deviceId IN ['a', \"b\"] AND NOT IS_DEFINED(x)",
		"SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'j'", "*", "tags.building = '43' AND tags.floor = 3", "'\\u00e9'", "0x1F"} {
		f.Add(s)
	}
	src, idx := fixture(f)
	f.Fuzz(func(t *testing.T, s string) {
		if q, err := Parse(s); err == nil {
			_, _ = q.Execute(src, idx, 10, "")
		} else if !errors.Is(err, ErrInvalidQuery) {
			t.Fatalf("Parse(%q) error %v is not ErrInvalidQuery", s, err)
		}
		if q, err := ParseCondition(s); err == nil {
			_ = q.Select(src, idx, func(string) bool { return true })
		}
	})
}

func BenchmarkScan(b *testing.B) {
	for _, n := range []int{1000, 10000, 100000} {
		src, _ := synthetic(n)
		q, _ := ParseCondition("properties.reported.n >= 0 AND tags.floor > 2 AND STARTSWITH(deviceId, 'dev')")
		b.Run(fmt.Sprintf("twins=%d", n), func(b *testing.B) {
			for b.Loop() {
				_ = q.Select(src, nil, func(string) bool { return true })
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "evals/s")
		})
	}
}

func BenchmarkIndexedLookup(b *testing.B) {
	src, idx := synthetic(100000)
	for _, cond := range []string{"tags.building = '43' AND tags.floor = 3", "deviceId IN ['dev-000010', 'dev-050000', 'dev-099999']"} {
		q, _ := ParseCondition(cond)
		b.Run(cond, func(b *testing.B) {
			for b.Loop() {
				_ = q.Select(src, idx, func(string) bool { return true })
			}
		})
	}
}
