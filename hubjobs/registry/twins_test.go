package registry_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// jsonOf marshals v and decodes it again, as a client sees it.
func jsonOf(t testing.TB, v any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// at walks a path of object keys.
func at(v any, path ...string) any {
	for _, k := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

func TestNewTwinShape(t *testing.T) {
	r, _, _ := newReg(t, false)
	must[registry.Device](t)(r.CreateDevice(ctx, registry.Device{DeviceID: "d1"}))
	tw := jsonOf(t, must[registry.Twin](t)(r.GetTwin("d1")))
	for _, c := range []struct {
		path []string
		want any
	}{
		{[]string{"deviceId"}, "d1"},
		{[]string{"etag"}, "AAAAAAAAAAE="},
		{[]string{"version"}, 2.0},
		{[]string{"status"}, "enabled"},
		{[]string{"statusUpdateTime"}, "0001-01-01T00:00:00Z"},
		{[]string{"connectionState"}, "Disconnected"},
		{[]string{"lastActivityTime"}, "0001-01-01T00:00:00Z"},
		{[]string{"authenticationType"}, "sas"},
		{[]string{"modelId"}, ""},
		{[]string{"cloudToDeviceMessageCount"}, 0.0},
		{[]string{"capabilities", "iotEdge"}, false},
		{[]string{"properties", "desired", "$version"}, 1.0},
		{[]string{"properties", "reported", "$version"}, 1.0},
	} {
		if got := at(tw, c.path...); got != c.want {
			t.Errorf("%s = %v, want %v", strings.Join(c.path, "."), got, c.want)
		}
	}
	if _, ok := tw["tags"]; ok {
		t.Error("a fresh twin has tags")
	}
	if _, ok := tw["x509Thumbprint"].(map[string]any); !ok {
		t.Error("x509Thumbprint missing")
	}
	for _, s := range []string{"desired", "reported"} {
		lu, _ := at(tw, "properties", s, "$metadata", "$lastUpdated").(string)
		if len(lu) != len("2019-12-29T00:58:49.9315265Z") || !strings.HasSuffix(lu, "Z") {
			t.Errorf("%s $lastUpdated = %q", s, lu)
		}
	}
}

func TestPatchTwin(t *testing.T) {
	r, l, _ := newReg(t, false)
	must[registry.Device](t)(r.CreateDevice(ctx, registry.Device{DeviceID: "d1"}))
	l.setOnline("d1", true)
	tw := must[registry.Twin](t)(r.GetTwin("d1"))

	// Node's job sample: etag, tags, desired, and an empty reported.
	tw2 := must[registry.Twin](t)(r.PatchTwin(ctx, "d1", []byte(`{"etag":"*","tags":{"building":"43","floor":3},
		"properties":{"desired":{"cfg":{"rate":5,"mode":"eco"}},"reported":{}}}`), `"`+tw.Etag+`"`))
	got := jsonOf(t, tw2)
	if at(got, "tags", "floor") != 3.0 || at(got, "properties", "desired", "cfg", "mode") != "eco" ||
		at(got, "properties", "desired", "$version") != 2.0 || at(got, "version") != 3.0 || tw2.Etag == tw.Etag {
		t.Fatalf("patched twin %v", got)
	}
	if v := at(got, "properties", "desired", "$metadata", "cfg", "rate", "$lastUpdatedVersion"); v != 2.0 {
		t.Errorf("desired leaf $lastUpdatedVersion = %v", v)
	}
	if v := at(got, "properties", "desired", "$metadata", "cfg", "$lastUpdated"); v == nil {
		t.Error("object node without $lastUpdated")
	}
	if _, ok := at(got, "properties", "tags", "$metadata").(map[string]any); ok {
		t.Error("tags have $metadata")
	}
	if m := l.last(); m != `d1 $iothub/twin/PATCH/properties/desired/?$version=2 {"$version":2,"cfg":{"mode":"eco","rate":5}}` {
		t.Errorf("desired push = %s", m)
	}

	// null deletes, at any depth; the push carries the null.
	tw3 := must[registry.Twin](t)(r.PatchTwin(ctx, "d1", []byte(`{"tags":{"floor":null},"properties":{"desired":{"cfg":{"mode":null}}}}`), tw2.Etag))
	got = jsonOf(t, tw3)
	if at(got, "tags", "floor") != nil || at(got, "tags", "building") != "43" || at(got, "properties", "desired", "cfg", "mode") != nil || at(got, "properties", "desired", "cfg", "rate") != 5.0 {
		t.Errorf("after null patch %v", got)
	}
	if at(got, "properties", "desired", "$metadata", "cfg", "mode") != nil {
		t.Error("deleted member kept its metadata")
	}
	if v := at(got, "properties", "desired", "$metadata", "cfg", "$lastUpdatedVersion"); v != 3.0 {
		t.Errorf("parent of a deleted member: $lastUpdatedVersion = %v", v)
	}
	if m := l.last(); m != `d1 $iothub/twin/PATCH/properties/desired/?$version=3 {"$version":3,"cfg":{"mode":null}}` {
		t.Errorf("desired push = %s", m)
	}

	// Tags only: no desired change, no push.
	n := len(l.messages())
	tw4 := must[registry.Twin](t)(r.PatchTwin(ctx, "d1", []byte(`{"tags":{"room":"1.21"}}`), "*"))
	if tw4.Properties.Desired["$version"] != int64(3) || len(l.messages()) != n || tw4.Version != tw3.Version+1 {
		t.Errorf("tags-only patch: desired $version %v, %d messages", tw4.Properties.Desired["$version"], len(l.messages())-n)
	}

	// Offline devices get nothing (not queued).
	l.setOnline("d1", false)
	must[registry.Twin](t)(r.PatchTwin(ctx, "d1", []byte(`{"properties":{"desired":{"x":1}}}`), "*"))
	if len(l.messages()) != n {
		t.Error("a desired patch was sent to an offline device")
	}

	// A fetched twin sent back whole (C# does this) is accepted.
	full, _ := json.Marshal(must[registry.Twin](t)(r.GetTwin("d1")))
	if _, err := r.PatchTwin(ctx, "d1", full, "*"); err != nil {
		t.Errorf("patch with a whole twin: %v", err)
	}
	if err := r.ForceUpdateTwin(ctx, "d1", parsePatch(t, `{"etag":"*","tags":{"job":1}}`)); err != nil {
		t.Errorf("ForceUpdateTwin: %v", err)
	}
	if err := r.ForceUpdateTwin(ctx, "nope", iothub.TwinPatch{}); code(err) != "DeviceNotFound" {
		t.Errorf("ForceUpdateTwin on unknown device: %v", err)
	}
}

// nest builds n nested objects {"a":{"a":...value...}}.
func nest(n int, value string) string {
	return strings.Repeat(`{"a":`, n) + value + strings.Repeat("}", n)
}

// parsePatch is a twin job's patch, parsed and checked as the job does.
func parsePatch(t testing.TB, patch string) iothub.TwinPatch {
	t.Helper()
	p, err := iothub.ParseTwinPatch([]byte(patch))
	if err != nil {
		t.Fatalf("ParseTwinPatch(%s): %v", patch, err)
	}
	return p
}

// TestTwinRules checks every rule of docs/iothub.md §3.5 and the preconditions
// of §3.6. Big fixtures live in testdata/.
func TestTwinRules(t *testing.T) {
	r, _, _ := newReg(t, false)
	must[registry.Device](t)(r.CreateDevice(ctx, registry.Device{DeviceID: "d1"}))
	tw := must[registry.Twin](t)(r.GetTwin("d1"))
	must[registry.Twin](t)(r.PatchTwin(ctx, "d1", []byte(`{"tags":{"v":1}}`), "*"))
	x := func(n int) string { return strings.Repeat("x", n) }
	bigTags, err := os.ReadFile(filepath.Join("testdata", "tags-over-8k.json"))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ name, patch, ifMatch, want string }{
		{"stale etag", `{"tags":{"a":1}}`, tw.Etag, "PreconditionFailed"},
		{"stale quoted etag", `{"tags":{"a":1}}`, `"` + tw.Etag + `"`, "PreconditionFailed"},
		{"star", `{"tags":{"a":1}}`, "*", "ok"},
		{"quoted star", `{"tags":{"a":1}}`, `"*"`, "ok"},
		{"dot in name", `{"tags":{"a.b":1}}`, "*", "ArgumentInvalid"},
		{"dollar in name", `{"properties":{"desired":{"$x":1}}}`, "*", "ArgumentInvalid"},
		{"space in name", `{"tags":{"a b":1}}`, "*", "ArgumentInvalid"},
		{"control character in name", `{"tags":{"a\u0001":1}}`, "*", "ArgumentInvalid"},
		{"nested bad name", `{"properties":{"desired":{"a":{"b.c":1}}}}`, "*", "ArgumentInvalid"},
		{"name over 1 KB", `{"tags":{"` + x(1025) + `":1}}`, "*", "ArgumentInvalid"},
		// IoT Hub counts the levels below the section: tags.a...a holding
		// ten objects is 10 levels.
		{"depth 10", `{"tags":` + nest(11, "1") + `}`, "*", "ok"},
		{"depth 11", `{"tags":` + nest(12, "1") + `}`, "*", "ArgumentInvalid"},
		{"desired depth 10", `{"properties":{"desired":` + nest(11, "1") + `}}`, "*", "ok"},
		{"desired depth 11", `{"properties":{"desired":` + nest(12, "1") + `}}`, "*", "ArgumentInvalid"},
		{"array at depth 10", `{"tags":` + nest(10, "[1]") + `}`, "*", "ok"},
		{"array at depth 11", `{"tags":` + nest(11, "[1]") + `}`, "*", "ArgumentInvalid"},
		{"2^53+1", `{"tags":{"big":9007199254740993}}`, "*", "ArgumentInvalid"},
		{"invalid UTF-8 in a name", "{\"tags\":{\"a\xffb\":1}}", "*", "ArgumentInvalid"},
		{"invalid UTF-8 in a string", "{\"tags\":{\"a\":\"\xc3(\"}}", "*", "ArgumentInvalid"},
		{"unpaired surrogate in a name", `{"tags":{"\ud800a":1}}`, "*", "ArgumentInvalid"},
		{"surrogate pair in a name", `{"tags":{"\ud83d\ude00":1}}`, "*", "ok"},
		{"max integer", `{"tags":{"a":4503599627370495}}`, "*", "ok"},
		{"min integer", `{"tags":{"a":-4503599627370496}}`, "*", "ok"},
		{"integer too large", `{"tags":{"a":4503599627370496}}`, "*", "ArgumentInvalid"},
		{"integer too small", `{"tags":{"a":-4503599627370497}}`, "*", "ArgumentInvalid"},
		{"fraction", `{"tags":{"a":0.5}}`, "*", "ok"},
		{"string of 4 KB", `{"tags":{"a":"` + x(4096) + `"}}`, "*", "ok"},
		{"string over 4 KB", `{"tags":{"a":"` + x(4097) + `"}}`, "*", "ArgumentInvalid"},
		{"arrays", `{"tags":{"a":[1,"b",{"c":true}]}}`, "*", "ok"},
		{"bad name inside an array", `{"tags":{"a":[{"c.d":true}]}}`, "*", "ArgumentInvalid"},
		{"tags over 8 KB", string(bigTags), "*", "ArgumentInvalid"},
		{"desired over 32 KB", `{"properties":{"desired":{"a":"` + x(4000) + `","b":"` + x(4000) + `","c":"` + x(4000) + `","d":"` + x(4000) + `","e":"` + x(4000) + `","f":"` + x(4000) + `","g":"` + x(4000) + `","h":"` + x(4000) + `","i":"` + x(1000) + `"}}}`, "*", "ArgumentInvalid"},
		{"desired under 32 KB", `{"properties":{"desired":{"a":"` + x(4000) + `","b":"` + x(4000) + `"}}}`, "*", "ok"},
		{"reported from the service", `{"properties":{"reported":{"a":1}}}`, "*", "ArgumentInvalid"},
		{"empty reported", `{"properties":{"reported":{}}}`, "*", "ok"},
		{"not JSON", `{`, "*", "ArgumentInvalid"},
		{"not an object", `[1]`, "*", "ArgumentInvalid"},
		{"tags not an object", `{"tags":[1]}`, "*", "ArgumentInvalid"},
		{"desired not an object", `{"properties":{"desired":"x"}}`, "*", "ArgumentInvalid"},
		{"two documents", `{} {}`, "*", "ArgumentInvalid"},
		{"null", `null`, "*", "ArgumentInvalid"},
		{"trailing garbage", `{"tags":{"a":1}} x`, "*", "ArgumentInvalid"},
	}
	for _, tt := range tests {
		if got := code(errOf(r.PatchTwin(ctx, "d1", []byte(tt.patch), tt.ifMatch))); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
	// The size limit applies to the result: 8 KB of tags in two patches.
	must[registry.Twin](t)(r.ReplaceTwin(ctx, "d1", []byte(`{"tags":{"a":"`+x(4000)+`"}}`), "*"))
	if got := code(errOf(r.PatchTwin(ctx, "d1", []byte(`{"tags":{"b":"`+x(4000)+`","c":"`+x(300)+`"}}`), "*"))); got != "ArgumentInvalid" {
		t.Errorf("tags growing over 8 KB: %s", got)
	}
	// A refused patch changes nothing.
	if tw := must[registry.Twin](t)(r.GetTwin("d1")); len(tw.Tags) != 1 {
		t.Errorf("refused patch left tags %v", tw.Tags)
	}
}

func TestReplaceTwin(t *testing.T) {
	r, l, _ := newReg(t, false)
	must[registry.Device](t)(r.CreateDevice(ctx, registry.Device{DeviceID: "d1"}))
	l.setOnline("d1", true)
	tw := must[registry.Twin](t)(r.PatchTwin(ctx, "d1", []byte(`{"tags":{"a":1,"b":2},"properties":{"desired":{"x":1,"y":{"z":2}}}}`), "*"))
	rep := must[registry.Twin](t)(r.ReplaceTwin(ctx, "d1", []byte(`{"tags":{"only":true,"gone":null},"properties":{"desired":{"x":2}}}`), tw.Etag))
	got := jsonOf(t, rep)
	if len(rep.Tags) != 1 || at(got, "tags", "only") != true || at(got, "properties", "desired", "x") != 2.0 ||
		at(got, "properties", "desired", "y") != nil || at(got, "properties", "desired", "$version") != 3.0 {
		t.Errorf("replaced %v", got)
	}
	if m := l.last(); m != `d1 $iothub/twin/PATCH/properties/desired/?$version=3 {"$version":3,"x":2}` {
		t.Errorf("replace push = %s", m)
	}
	if code(errOf(r.ReplaceTwin(ctx, "d1", []byte(`{}`), tw.Etag))) != "PreconditionFailed" {
		t.Error("replace with a stale etag succeeded")
	}
	// An absent section becomes empty; tags disappear from the JSON only if never set.
	rep = must[registry.Twin](t)(r.ReplaceTwin(ctx, "d1", []byte(`{}`), "*"))
	if len(rep.Tags) != 0 || len(rep.Properties.Desired) != 2 {
		t.Errorf("replace with nothing: tags %v desired %v", rep.Tags, rep.Properties.Desired)
	}
}

// TestForceUpdateTwinReusesPatch sends one parsed twin-job patch to several
// devices, as a job does, and checks that they do not share what they got:
// a later patch of one leaves the others alone.
func TestForceUpdateTwinReusesPatch(t *testing.T) {
	r, _, _ := newReg(t, false)
	ctx := t.Context()
	patch := parsePatch(t, `{"etag":"*","tags":{"site":{"room":1}},"properties":{"desired":{"cfg":{"rate":5,"list":[1,2]}}}}`)
	for _, id := range []string{"d1", "d2", "d3"} {
		must[registry.Device](t)(r.CreateDevice(ctx, registry.Device{DeviceID: id}))
		if err := r.ForceUpdateTwin(ctx, id, patch); err != nil {
			t.Fatalf("%s: %v", id, err)
		}
	}
	must[registry.Twin](t)(r.PatchTwin(ctx, "d2", []byte(`{"tags":{"site":{"room":2}},"properties":{"desired":{"cfg":{"rate":null,"x":1}}}}`), "*"))
	for _, tc := range []struct {
		id         string
		room, rate any
	}{{"d1", 1.0, 5.0}, {"d2", 2.0, nil}, {"d3", 1.0, 5.0}} {
		tw := jsonOf(t, must[registry.Twin](t)(r.GetTwin(tc.id)))
		if room, rate := at(tw, "tags", "site", "room"), at(tw, "properties", "desired", "cfg", "rate"); room != tc.room || rate != tc.rate {
			t.Errorf("%s: room %v rate %v, want %v %v", tc.id, room, rate, tc.room, tc.rate)
		}
	}
	if err := r.ForceUpdateTwin(ctx, "d1", patch); err != nil {
		t.Errorf("the patch again: %v", err)
	}
}
