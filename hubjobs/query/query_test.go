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
		s.put(keyOf(d), d)
	}
	return s
}

func (s *memSource) put(k string, d map[string]any) {
	if _, ok := s.docs[k]; !ok {
		i, _ := slices.BinarySearch(s.keys, k)
		s.keys = slices.Insert(s.keys, i, k)
	}
	s.docs[k] = d
}

func (s *memSource) del(k string) {
	if i, ok := slices.BinarySearch(s.keys, k); ok {
		s.keys = slices.Delete(s.keys, i, i+1)
	}
	delete(s.docs, k)
}

func (s *memSource) Scan(after string, fn func(string, map[string]any) bool) {
	i := 0
	if after != "" {
		i, _ = slices.BinarySearch(s.keys, after)
		if i < len(s.keys) && s.keys[i] == after {
			i++
		}
	}
	for _, k := range s.keys[i:] {
		if !fn(k, s.docs[k]) {
			return
		}
	}
}

func (s *memSource) Get(k string) (map[string]any, bool) { d, ok := s.docs[k]; return d, ok }

func (s *memSource) index() *Index {
	idx := NewIndex()
	for _, k := range s.keys {
		idx.Update(k, nil, s.docs[k])
	}
	return idx
}

func loadDocs(t testing.TB, name string) []map[string]any {
	t.Helper()
	b, err := os.ReadFile("testdata/" + name)
	if err != nil {
		t.Fatal(err)
	}
	var docs []map[string]any
	if err := json.Unmarshal(b, &docs); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return docs
}

func str(d map[string]any, k string) string { s, _ := d[k].(string); return s }

// fixture returns the source for a collection, keyed as the registry and the
// jobs engine key them.
func fixture(t testing.TB, c Collection) *memSource {
	switch c {
	case Modules:
		return newMem(loadDocs(t, "modules.json"), func(d map[string]any) string { return str(d, "deviceId") + "/" + str(d, "moduleId") })
	case Jobs:
		return newMem(loadDocs(t, "jobs.json"), func(d map[string]any) string { return str(d, "jobId") + "/" + str(d, "deviceId") })
	}
	return newMem(loadDocs(t, "twins.json"), func(d map[string]any) string { return str(d, "deviceId") })
}

// runAll executes q over every page and returns all items and the item type.
func runAll(t testing.TB, q *Query, src Source, idx *Index, pageSize int) ([]any, string) {
	t.Helper()
	var items []any
	cont, typ := "", ""
	for range 10000 {
		page, err := q.Execute(src, idx, pageSize, cont)
		if err != nil {
			t.Fatalf("Execute(%s): %v", q, err)
		}
		items = append(items, page.Items...)
		typ = page.ItemType
		if page.Continuation == "" {
			return items, typ
		}
		cont = page.Continuation
	}
	t.Fatalf("%s: paging does not end", q)
	return nil, ""
}

// rowKeys names each item by deviceId (and moduleId / jobId when present).
func rowKeys(items []any) string {
	var out []string
	for _, it := range items {
		m, _ := it.(map[string]any)
		k := str(m, "deviceId")
		if id := str(m, "moduleId"); id != "" {
			k += "/" + id
		}
		if id := str(m, "jobId"); id != "" {
			k = id + "/" + k
		}
		out = append(out, k)
	}
	return strings.Join(out, " ")
}

func jsonOf(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "!" + err.Error()
	}
	return string(b)
}

const all = "MyDevice1 MyDevice2 MyDevice3 test-device"

// conditionTests are WHERE conditions over testdata/twins.json and the
// device ids they select.
var conditionTests = []struct{ where, want string }{
	// Examples from docs/iothub.md §5.2 and §6.
	{"tags.location.region = 'US'", "MyDevice1 MyDevice2"},
	{"tags.location.region = 'US' AND properties.reported.telemetryConfig.sendFrequencyInSecs >= 60", "MyDevice1"},
	{"is_defined(properties.reported.connectivity)", "MyDevice1 MyDevice2"},
	{"properties.reported.connectivity IN ['wired', 'wifi']", "MyDevice1 MyDevice2"},
	{"deviceId IN ['MyDevice1','MyDevice2']", "MyDevice1 MyDevice2"},
	{"deviceId IN ['MyDevice1']", "MyDevice1"},
	{"deviceId = 'MyDevice1'", "MyDevice1"},
	{"deviceId in ['MyDevice3', 'nope']", "MyDevice3"},
	{"status = 'enabled' AND connectionState = 'Disconnected'", "MyDevice2"},
	{"IS_DEFINED(DeviceId)", all},
	// System names are case-insensitive, names below tags/desired/reported are not.
	{"DeviceId = 'MyDevice3'", "MyDevice3"},
	{"DEVICEID = 'MyDevice3'", "MyDevice3"},
	{"Properties.Reported.battery > 50", "MyDevice1"},
	{"Tags.Building = '43'", ""},
	{"TAGS.building = '43'", "MyDevice1 MyDevice2"},
	{"properties.reported.Battery > 50", ""},
	{"Capabilities.iotEdge = true", "MyDevice1"},
	{"CAPABILITIES.IotEdge = true", ""},
	{"properties.reported.$version > 1", "MyDevice1 MyDevice3"},
	{"Version >= 4", "MyDevice1 MyDevice3"},
	// Keywords are case-insensitive.
	{"tags.floor = 3 and not (deviceId = 'MyDevice1') Or deviceId = 'test-device'", "MyDevice3 test-device"},
	// Comparison operators.
	{"tags.floor = 3", "MyDevice1 MyDevice3"},
	{"tags.floor != 3", "MyDevice2"},
	{"tags.floor <> 3", "MyDevice2"},
	{"tags.floor < 3", "MyDevice2"},
	{"tags.floor <= 3", "MyDevice1 MyDevice2 MyDevice3"},
	{"tags.floor > 1", "MyDevice1 MyDevice3"},
	{"tags.floor >= 1 AND tags.floor < 3", "MyDevice2"},
	{"3 = tags.floor", "MyDevice1 MyDevice3"},
	{"'43' = tags.building AND 3 = tags.floor", "MyDevice1"},
	{"deviceId < 'MyDevice2'", "MyDevice1"},
	{"deviceId > 'a'", "test-device"}, // ordinal: 'M' < 'a' < 't'
	{"deviceId >= 'MyDevice3' AND deviceId <= 'test-device'", "MyDevice3 test-device"},
	{"capabilities.iotEdge = false", "MyDevice2 MyDevice3"},
	{"capabilities.iotEdge > false", "MyDevice1"},
	{"lastActivityTime > '2026-10-15'", "MyDevice1 test-device"},
	// Logical operators and precedence.
	{"tags.building = '43' AND tags.floor = 3", "MyDevice1"},
	{"tags.building = '43' OR tags.building = '44'", "MyDevice1 MyDevice2 MyDevice3"},
	{"deviceId = 'MyDevice1' OR tags.building = '44'", "MyDevice1 MyDevice3"},
	{"deviceId = 'MyDevice1' OR deviceId = 'MyDevice2' AND tags.floor = 3", "MyDevice1"},
	{"(deviceId = 'MyDevice1' OR deviceId = 'MyDevice2') AND tags.floor = 1", "MyDevice2"},
	{"NOT (tags.building = '43')", "MyDevice3"},
	{"NOT tags.building = '43'", "MyDevice3"},
	{"NOT NOT tags.building = '44'", "MyDevice3"},
	{"((((deviceId = 'MyDevice2'))))", "MyDevice2"},
	{"tags.building NIN ['43']", "MyDevice3"},
	{"tags.building IN ('44', '45')", "MyDevice3"},
	{"deviceId IN ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'MyDevice2']", "MyDevice2"},
	{"deviceId NIN ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'MyDevice2']", "MyDevice1 MyDevice3 test-device"},
	{"tags.floor IN [1, 2]", "MyDevice2"},
	{"tags.floor IN [3.0]", "MyDevice1 MyDevice3"},
	// Arithmetic.
	{"tags.floor + 1 = 4", "MyDevice1 MyDevice3"},
	{"tags.floor * 2 - 1 = 5", "MyDevice1 MyDevice3"},
	{"tags.floor / 2 = 1.5", "MyDevice1 MyDevice3"},
	{"tags.floor % 2 = 1", "MyDevice1 MyDevice2 MyDevice3"},
	{"-tags.floor = -1", "MyDevice2"},
	{"tags.floor - -1 = 2", "MyDevice2"},
	{"2 + 2 * tags.floor = 8", "MyDevice1 MyDevice3"},
	{"(2 + 2) * tags.floor = 4", "MyDevice2"},
	// Literal forms.
	{"tags.floor = 0x3", "MyDevice1 MyDevice3"},
	{"tags.floor = 0X03", "MyDevice1 MyDevice3"},
	{"tags.floor = 3.0", "MyDevice1 MyDevice3"},
	{"tags.floor = 30e-1", "MyDevice1 MyDevice3"},
	{"properties.reported.battery = 1.55e1", "MyDevice3"},
	{"properties.reported.battery = 155E-1", "MyDevice3"},
	{`tags.kind = "sensor"`, "MyDevice2"},
	{`deviceId = 'test-\u0064evice'`, "test-device"},
	{`deviceId = "test-\u0064evice"`, "test-device"},
	{`'it\'s' = "it's" AND deviceId = 'MyDevice1'`, "MyDevice1"},
	{`"say \"hi\"" = 'say "hi"' AND deviceId = 'MyDevice1'`, "MyDevice1"},
	{`'a\\b' = "a\\b" AND LENGTH('a\\b') = 3 AND deviceId = 'MyDevice1'`, "MyDevice1"},
	// Type rules (docs/iothub.md §6): only boolean true selects; comparisons between
	// different types, objects or arrays are undefined; undefined propagates.
	{"tags.building = 43", ""},
	{"tags.building != 43", ""},
	{"tags.location = 'US'", ""},
	{"tags.list = ['a', 'b']", ""},
	{"tags.location != tags.location", ""},
	{"tags.floor", ""},
	{"deviceId", ""},
	{"'true'", ""},
	{"1", ""},
	{"null", ""},
	{"NOT (tags.building = 43)", ""},
	{"tags.nope = 1 OR deviceId = 'MyDevice2'", "MyDevice2"},
	{"tags.nope != 1", ""},
	{"NOT (tags.nope = 1)", ""},
	{"tags.nope = undefined", ""},
	{"tags.building NIN [43]", ""},
	{"tags.nope NIN ['x']", "" /* undefined NIN: undefined */},
	{"properties.reported.battery = null", "MyDevice2"},
	{"properties.reported.battery != null", ""},
	{"properties.reported.battery IN [null]", "MyDevice2"},
	{"true", all},
	{"TRUE AND true", all},
	{"false OR undefined", ""},
	{"NOT false", all},
	{"1 = 1", all},
	// Functions.
	{"IS_NULL(properties.reported.battery)", "MyDevice2"},
	{"is_defined(properties.reported.battery)", "MyDevice1 MyDevice2 MyDevice3"},
	{"NOT IS_DEFINED(tags)", "test-device"},
	{"IS_NUMBER(properties.reported.battery)", "MyDevice1 MyDevice3"},
	{"IS_STRING(tags.building)", "MyDevice1 MyDevice2 MyDevice3"},
	{"IS_BOOL(capabilities.iotEdge)", "MyDevice1 MyDevice2 MyDevice3"},
	{"IS_BOOL(tags.floor)", ""},
	{"IS_ARRAY(tags.list)", "MyDevice3"},
	{"IS_OBJECT(tags.location)", "MyDevice1 MyDevice2 MyDevice3"},
	{"IS_PRIMITIVE(tags.location)", ""},
	{"IS_PRIMITIVE(properties.reported.battery)", "MyDevice1 MyDevice2 MyDevice3"},
	{"STARTSWITH(deviceId, 'MyDev')", "MyDevice1 MyDevice2 MyDevice3"},
	{"startswith(deviceId, 'mydev', true)", "MyDevice1 MyDevice2 MyDevice3"},
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

func TestConditions(t *testing.T) {
	src := fixture(t, Devices)
	idx := src.index()
	for _, tt := range conditionTests {
		q, err := Parse("SELECT * FROM devices WHERE " + tt.where)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.where, err)
			continue
		}
		for _, ix := range []*Index{nil, idx} {
			items, typ := runAll(t, q, src, ix, 0)
			if got := rowKeys(items); got != tt.want {
				t.Errorf("WHERE %s (index %v) = %q, want %q", tt.where, ix != nil, got, tt.want)
			}
			if typ != ItemTwin {
				t.Errorf("WHERE %s: item type %q", tt.where, typ)
			}
		}
		// The same condition as a job's queryCondition selects the same keys.
		c, err := ParseCondition(tt.where)
		if err != nil {
			t.Errorf("ParseCondition(%q): %v", tt.where, err)
			continue
		}
		var got []string
		_ = c.Select(src, idx, func(k string) bool { got = append(got, k); return true })
		if g := strings.Join(got, " "); g != tt.want {
			t.Errorf("ParseCondition(%q) selects %q, want %q", tt.where, g, tt.want)
		}
	}
}

// specTests are the query examples of docs/iothub.md §4.5, §5.2, §5.5, §5.6 and §6.
var specTests = []struct {
	q        string
	from     Collection
	itemType string
	want     string // row keys, or JSON of the items for Raw results
}{
	{"SELECT * FROM devices", Devices, ItemTwin, all},
	{"SELECT * FROM devices WHERE tags.location.region = 'US'", Devices, ItemTwin, "MyDevice1 MyDevice2"},
	{"SELECT * FROM devices WHERE tags.location.region = 'US' AND properties.reported.telemetryConfig.sendFrequencyInSecs >= 60", Devices, ItemTwin, "MyDevice1"},
	{"SELECT * FROM devices WHERE is_defined(properties.reported.connectivity)", Devices, ItemTwin, "MyDevice1 MyDevice2"},
	{"SELECT * FROM devices WHERE properties.reported.connectivity IN ['wired', 'wifi']", Devices, ItemTwin, "MyDevice1 MyDevice2"},
	{"SELECT * FROM devices WHERE deviceId IN ['MyDevice1','MyDevice2']", Devices, ItemTwin, "MyDevice1 MyDevice2"},
	{"SELECT COUNT() AS totalNumberOfDevices FROM devices", Devices, ItemRaw, `[{"totalNumberOfDevices":4}]`},
	{"SELECT DeviceId, LastActivityTime FROM devices WHERE status = 'enabled' AND connectionState = 'Disconnected'", Devices, ItemRaw,
		`[{"deviceId":"MyDevice2","lastActivityTime":"2026-10-01T10:00:00Z"}]`},
	{"SELECT properties.reported.telemetryConfig.status AS status, COUNT() AS numberOfDevices FROM devices GROUP BY properties.reported.telemetryConfig.status", Devices, ItemRaw,
		`[{"numberOfDevices":1,"status":"Error"},{"numberOfDevices":1,"status":"Pending"},{"numberOfDevices":2,"status":"Success"}]`},
	{"SELECT * FROM devices.modules WHERE properties.reported.status = 'scanning' AND deviceId IN ['device1','device2']", Modules, ItemTwin, "device1/scanner device2/scanner"},
	{"SELECT * FROM devices.jobs WHERE devices.jobs.deviceId = 'myDeviceId'", Jobs, ItemDeviceJob, "methodJob/myDeviceId myJobId/myDeviceId oldTwinJob/myDeviceId"},
	{"SELECT * FROM devices.jobs WHERE devices.jobs.deviceId = 'myDeviceId' AND devices.jobs.jobType = 'scheduleUpdateTwin' AND devices.jobs.status = 'completed' AND devices.jobs.createdTimeUtc > '2016-09-01'", Jobs, ItemDeviceJob, "myJobId/myDeviceId"},
	{"SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'myJobId'", Jobs, ItemDeviceJob, "myJobId/myDeviceId myJobId/otherDevice"},
}

func TestSpecExamples(t *testing.T) {
	for _, tt := range specTests {
		q, err := Parse(tt.q)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.q, err)
			continue
		}
		if q.From() != tt.from || q.ItemType() != tt.itemType {
			t.Errorf("%s: From %s ItemType %s, want %s %s", tt.q, q.From(), q.ItemType(), tt.from, tt.itemType)
		}
		src := fixture(t, tt.from)
		for _, idx := range []*Index{nil, src.index()} {
			items, typ := runAll(t, q, src, idx, 0)
			got := rowKeys(items)
			if typ == ItemRaw {
				got = jsonOf(items)
			}
			if got != tt.want || typ != tt.itemType {
				t.Errorf("%s (index %v)\n got %s %s\nwant %s %s", tt.q, idx != nil, typ, got, tt.itemType, tt.want)
			}
		}
	}
}

// rawTests are projections and aggregates over testdata/twins.json.
var rawTests = []struct{ q, want string }{
	{"SELECT COUNT() AS n FROM devices WHERE tags.building = 'none'", `[{"n":0}]`},
	{"SELECT COUNT() FROM devices", `[{"count":4}]`},
	{"SELECT AVG(tags.floor) AS a, SUM(tags.floor) AS s, MIN(tags.floor) AS lo, MAX(tags.floor) AS hi FROM devices", `[{"a":2.3333333333333335,"hi":3,"lo":1,"s":7}]`},
	{"SELECT MIN(deviceId) AS lo, MAX(deviceId) AS hi FROM devices", `[{"hi":"test-device","lo":"MyDevice1"}]`},
	{"SELECT AVG(tags.nope) AS a, SUM(tags.nope) AS s, MIN(tags.nope) AS lo FROM devices", `[{"s":0}]`},
	{"SELECT tags.building AS b, COUNT() AS n FROM devices GROUP BY tags.building", `[{"n":1},{"b":"43","n":2},{"b":"44","n":1}]`},
	{"SELECT tags.floor, COUNT() AS n, MAX(properties.reported.battery) AS best FROM devices WHERE IS_DEFINED(tags) GROUP BY tags.floor", `[{"floor":1,"n":1},{"best":80,"floor":3,"n":2}]`},
	{"SELECT Status FROM devices GROUP BY status", `[{"status":"disabled"},{"status":"enabled"}]`},
	{"SELECT TOP 1 status, COUNT() AS n FROM devices GROUP BY status", `[{"n":1,"status":"disabled"}]`},
	{"SELECT TOP 2 deviceId FROM devices", `[{"deviceId":"MyDevice1"},{"deviceId":"MyDevice2"}]`},
	{"SELECT TOP 0 deviceId FROM devices", `[]`},
	{"SELECT deviceId AS id, tags.floor + 1 AS next FROM devices WHERE deviceId = 'MyDevice3'", `[{"id":"MyDevice3","next":4}]`},
	{"SELECT deviceId, tags.nope, tags.location.region FROM devices WHERE tags.floor = 1", `[{"deviceId":"MyDevice2","region":"US"}]`},
	{"SELECT tags.location FROM devices WHERE deviceId = 'MyDevice2'", `[{"location":{"region":"US"}}]`},
	{"SELECT properties.Reported.$version FROM devices WHERE deviceId = 'MyDevice2'", `[{"$version":1}]`},
	{"SELECT deviceId, UPPER(deviceId), tags.floor * 10 FROM devices WHERE deviceId = 'MyDevice2'", `[{"$2":"MYDEVICE2","$3":10,"deviceId":"MyDevice2"}]`},
}

func TestProjectionsAndAggregates(t *testing.T) {
	src := fixture(t, Devices)
	for _, tt := range rawTests {
		q, err := Parse(tt.q)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.q, err)
			continue
		}
		for _, idx := range []*Index{nil, src.index()} {
			items, typ := runAll(t, q, src, idx, 1)
			if typ != ItemRaw {
				t.Errorf("%s: item type %s", tt.q, typ)
			}
			if items == nil {
				items = []any{}
			}
			if got := jsonOf(items); got != tt.want {
				t.Errorf("%s (index %v)\n got %s\nwant %s", tt.q, idx != nil, got, tt.want)
			}
		}
	}
}

func TestModulesAndJobs(t *testing.T) {
	tests := []struct {
		q    string
		from Collection
		want string
	}{
		{"SELECT * FROM devices.modules", Modules, "device1/scanner device1/uploader device2/scanner device3/AwareMonitoring"},
		{"SELECT * FROM Devices.Modules WHERE ModuleId = 'scanner'", Modules, "device1/scanner device2/scanner"},
		{"select * from devices.modules where devices.modules.moduleId = 'uploader'", Modules, "device1/uploader"},
		{"SELECT * FROM devices.modules WHERE tags.role = 'edge'", Modules, "device1/scanner"},
		{"SELECT * FROM devices.jobs WHERE status = 'failed'", Jobs, "myJobId/otherDevice"},
		{"SELECT * FROM devices.jobs WHERE devices.jobs.error.code = 'DeviceNotOnline'", Jobs, "myJobId/otherDevice"},
		{"SELECT * FROM devices.jobs WHERE outcome.deviceMethodResponse.status = 500", Jobs, "methodJob/myDeviceId"},
		{"SELECT * FROM devices.jobs WHERE CreatedDateTimeUtc < '2016-09-01' AND JOBTYPE = 'scheduleUpdateTwin'", Jobs, "oldTwinJob/myDeviceId"},
		{"SELECT * FROM devices.jobs WHERE createdTimeUtc < '2016-08-10'", Jobs, "methodJob/myDeviceId"},
		{"SELECT * FROM devices.jobs WHERE jobId IN ['methodJob', 'oldTwinJob'] AND deviceId = 'myDeviceId'", Jobs, "methodJob/myDeviceId oldTwinJob/myDeviceId"},
		{"SELECT TOP 1 * FROM devices.jobs", Jobs, "methodJob/myDeviceId"},
	}
	for _, tt := range tests {
		q, err := Parse(tt.q)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.q, err)
			continue
		}
		src := fixture(t, tt.from)
		for _, idx := range []*Index{nil, src.index()} {
			items, _ := runAll(t, q, src, idx, 2)
			if got := rowKeys(items); got != tt.want || q.From() != tt.from {
				t.Errorf("%s (index %v) = %s from %s, want %s from %s", tt.q, idx != nil, got, q.From(), tt.want, tt.from)
			}
		}
	}
}

// conditionOnlyTests are job queryConditions (docs/iothub.md §5.2).
var conditionOnlyTests = []struct {
	cond string
	from Collection
	want string
}{
	{"*", Devices, all},
	{" * ", Devices, all},
	{"deviceId = 'MyDevice1'", Devices, "MyDevice1"},
	{"deviceId IN ['MyDevice1','MyDevice2']", Devices, "MyDevice1 MyDevice2"},
	{"tags.building = '43' AND tags.floor = 3", Devices, "MyDevice1"},
	{"IS_DEFINED(DeviceId)", Devices, all},
	{"WHERE tags.floor = 1", Devices, "MyDevice2"},
	{"FROM devices WHERE deviceId = 'MyDevice2'", Devices, "MyDevice2"},
	{"FROM devices", Devices, all},
	{"FROM devices.modules WHERE ModuleId = 'AwareMonitoring'", Modules, "device3/AwareMonitoring"},
	{"FROM devices.modules WHERE properties.reported.status = 'scanning' AND deviceId IN ['device1','device2']", Modules, "device1/scanner device2/scanner"},
	{"FROM devices.modules", Modules, "device1/scanner device1/uploader device2/scanner device3/AwareMonitoring"},
}

func TestParseCondition(t *testing.T) {
	for _, tt := range conditionOnlyTests {
		q, err := ParseCondition(tt.cond)
		if err != nil {
			t.Errorf("ParseCondition(%q): %v", tt.cond, err)
			continue
		}
		if q.From() != tt.from || q.ItemType() != ItemTwin {
			t.Errorf("%q: From %s ItemType %s", tt.cond, q.From(), q.ItemType())
		}
		src := fixture(t, tt.from)
		var got []string
		_ = q.Select(src, src.index(), func(k string) bool { got = append(got, k); return true })
		if g := strings.Join(got, " "); g != tt.want {
			t.Errorf("ParseCondition(%q) selects %q, want %q", tt.cond, g, tt.want)
		}
		// Match agrees with Select.
		n := 0
		for _, k := range src.keys {
			if q.Match(src.docs[k]) {
				n++
			}
		}
		if n != len(got) {
			t.Errorf("%q: Match selects %d, Select %d", tt.cond, n, len(got))
		}
	}
}

func TestStringIsCanonical(t *testing.T) {
	tests := []struct{ in, want string }{
		{"select  *  from DEVICES where DeviceId='a'", "SELECT * FROM devices WHERE deviceId = 'a'"},
		{"SELECT * FROM devices WHERE a <> 1 and (b = 2 or c = 3)", "SELECT * FROM devices WHERE a != 1 AND (b = 2 OR c = 3)"},
		{"SELECT * FROM devices WHERE (a = 1 AND b = 2) OR c = 3", "SELECT * FROM devices WHERE a = 1 AND b = 2 OR c = 3"},
		{"SELECT * FROM devices WHERE not (a = 1)", "SELECT * FROM devices WHERE NOT a = 1"},
		{"SELECT * FROM devices WHERE NOT (a = 1 OR b = 1)", "SELECT * FROM devices WHERE NOT (a = 1 OR b = 1)"},
		{"SELECT * FROM devices WHERE a - (b - c) = 1 - 2 - 3", "SELECT * FROM devices WHERE a - (b - c) = -4"},
		{"SELECT * FROM devices WHERE -(a + b) * c = 0x10", "SELECT * FROM devices WHERE -(a + b) * c = 16"},
		{`SELECT * FROM devices WHERE x = "it's \u00e9" AND y IN ("a", 1, true, null)`, `SELECT * FROM devices WHERE x = 'it\'s é' AND y IN ['a', 1, true, null]`},
		{"SELECT * FROM devices WHERE is_defined(Properties.Reported.x)", "SELECT * FROM devices WHERE IS_DEFINED(properties.reported.x)"},
		{"SELECT * FROM devices WHERE UPPER('a') = x", "SELECT * FROM devices WHERE 'A' = x"},
		{"SELECT top 5 DeviceId AS id, count() AS n FROM devices GROUP BY deviceid", "SELECT TOP 5 deviceId AS id, COUNT() AS n FROM devices GROUP BY deviceId"},
		{"SELECT * FROM devices.jobs WHERE devices.jobs.createdTimeUtc > '2016'", "SELECT * FROM devices.jobs WHERE createdDateTimeUtc > '2016'"},
		{" * ", "*"},
		{"WHERE deviceId='a'", "deviceId = 'a'"},
		{"FROM devices.modules WHERE ModuleId = 'x'", "FROM devices.modules WHERE moduleId = 'x'"},
		{"FROM devices.modules", "FROM devices.modules"},
	}
	for _, tt := range tests {
		parse := Parse
		if !strings.Contains(strings.ToUpper(tt.in), "SELECT") {
			parse = ParseCondition
		}
		q, err := parse(tt.in)
		if err != nil {
			t.Errorf("parse(%q): %v", tt.in, err)
			continue
		}
		if got := q.String(); got != tt.want {
			t.Errorf("String(%q)\n got %s\nwant %s", tt.in, got, tt.want)
		}
		if q.Text() != tt.in {
			t.Errorf("Text = %q", q.Text())
		}
		checkCanonical(t, q, parse)
	}
	for _, s := range seeds() {
		if q, err := Parse(s); err == nil {
			checkCanonical(t, q, Parse)
		}
		if q, err := ParseCondition(s); err == nil {
			checkCanonical(t, q, ParseCondition)
		}
	}
}

// checkCanonical asserts that the canonical text parses to the same text.
func checkCanonical(t *testing.T, q *Query, parse func(string) (*Query, error)) {
	t.Helper()
	q2, err := parse(q.String())
	if err != nil {
		if !strings.Contains(err.Error(), "the limit is") {
			t.Errorf("canonical text %q of %q does not parse: %v", q.String(), q.Text(), err)
		}
		return
	}
	if q2.String() != q.String() {
		t.Errorf("canonical text is not stable: %q → %q", q.String(), q2.String())
	}
}

func TestErrorType(t *testing.T) {
	_, err := Parse("SELECT * FROM devices WHERE (tags.x = 1 AND")
	var qe *Error
	if !errors.As(err, &qe) || !errors.Is(err, ErrInvalidQuery) {
		t.Fatalf("error %v (%T) is not a *Error matching ErrInvalidQuery", err, err)
	}
	wrapped := fmt.Errorf("run job: %w", err)
	if !errors.Is(wrapped, ErrInvalidQuery) {
		t.Error("wrapped error does not match ErrInvalidQuery")
	}
	if qe.Pos != 44 || qe.Error() != "query: line 1, column 44: unexpected end of query: expected a value" {
		t.Errorf("error = %d %q", qe.Pos, qe.Error())
	}
	_, err = Parse("SELECT * FROM devices WHERE (tags.x = 1 AND tags.y = 2")
	if err == nil || err.Error() != "query: line 1, column 55: expected ')' but found end of query" {
		t.Errorf("error = %v", err)
	}
	_, err = Parse("SELECT * FROM devices WHERE (tags.x = 1 tags.y = 2)")
	if err == nil || err.Error() != "query: line 1, column 41: expected ')' but found 'tags'" {
		t.Errorf("error = %v", err)
	}
}

func TestMaxLength(t *testing.T) {
	prefix := "SELECT * FROM devices WHERE deviceId = '"
	fill := 8192 - len(prefix) - 1
	ok := prefix + strings.Repeat("é", fill) + "'" // 8192 characters, more bytes
	if _, err := Parse(ok); err != nil {
		t.Errorf("8192-character query: %v", err)
	}
	long := prefix + strings.Repeat("é", fill+1) + "'"
	var qe *Error
	if _, err := Parse(long); !errors.As(err, &qe) || qe.Pos != 8193 {
		t.Errorf("8193-character query: %v", err)
	}
	if _, err := ParseCondition(strings.Repeat(" ", 8193)); err == nil {
		t.Error("8193-character condition parses")
	}
}

func TestNestingLimit(t *testing.T) {
	ok := strings.Repeat("(", maxDepth) + "deviceId = 'MyDevice1'" + strings.Repeat(")", maxDepth)
	if q, err := ParseCondition(ok); err != nil || !q.Match(map[string]any{"deviceId": "MyDevice1"}) {
		t.Errorf("%d levels: %v", maxDepth, err)
	}
	if _, err := ParseCondition("(" + ok + ")"); err == nil || !strings.Contains(err.Error(), "levels deep") {
		t.Errorf("%d levels: %v", maxDepth+1, err)
	}
}

// TestIndexOnSomeNames: an index that leaves a name out never answers for
// it, so a condition on that name scans and sees documents as they are now,
// even though the index was never told they changed.
func TestIndexOnSomeNames(t *testing.T) {
	src := fixture(t, Jobs)
	idx := NewIndexOn("deviceId", "jobId", "jobType")
	myJob := 0
	for _, k := range src.keys {
		idx.Update(k, nil, src.docs[k])
		if src.docs[k]["jobId"] == "myJobId" {
			myJob++
		}
	}
	for _, d := range src.docs {
		d["status"] = "running" // changed behind the index's back
	}
	for _, tc := range []struct {
		query      string
		want       int
		notIndexed bool // assert the index does not answer it
	}{
		{"SELECT * FROM devices.jobs WHERE status = 'running'", len(src.keys), true},
		{"SELECT * FROM devices.jobs WHERE status = 'failed'", 0, false},
		{"SELECT * FROM devices.jobs WHERE status IN ['failed', 'running'] AND jobId = 'myJobId'", myJob, false},
	} {
		q, err := Parse(tc.query)
		if err != nil {
			t.Fatal(err)
		}
		if items, _ := runAll(t, q, src, idx, 100); len(items) != tc.want {
			t.Errorf("%s: %d rows, want %d", tc.query, len(items), tc.want)
		}
		if _, ok := idx.candidates(q.where); ok && tc.notIndexed {
			t.Errorf("%s: the index answered for a name it does not hold", tc.query)
		}
	}
}
