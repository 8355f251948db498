package iothub

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"
)

// twinFixtures reads testdata/twinrules/{accept,refuse}/*.json: twin
// patches that every twin writer (the REST API, a twin job, the registry)
// accepts, or refuses with 400 ArgumentInvalid. Other packages' tests read
// the same files.
func twinFixtures(t testing.TB, verdict string) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "twinrules", verdict, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no %s fixtures: %v", verdict, err)
	}
	out := make(map[string][]byte, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

// wantArgumentInvalid checks that err is IoT Hub's 400 ArgumentInvalid.
func wantArgumentInvalid(t *testing.T, what string, err error) {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) || e.Code != CodeArgumentInvalid || e.HTTPStatus() != 400 {
		t.Errorf("%s: %v, want 400 ArgumentInvalid", what, err)
	}
}

func TestTwinRuleFixtures(t *testing.T) {
	for name, b := range twinFixtures(t, "accept") {
		if _, err := ParseTwinPatch(b); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, b := range twinFixtures(t, "refuse") {
		_, err := ParseTwinPatch(b)
		wantArgumentInvalid(t, name, err)
	}
}

// nestJSON builds n nested objects {"a":{"a":...leaf...}}.
func nestJSON(n int, leaf string) string {
	return strings.Repeat(`{"a":`, n) + leaf + strings.Repeat("}", n)
}

// twinRuleCases are sections as JSON and whether the twin rules accept
// them; FuzzTwinPatch starts from them too.
var twinRuleCases = []struct {
	name, section string
	ok            bool
}{
	{"empty", `{}`, true},
	{"scalars", `{"b":true,"n":null,"s":"x","f":1.25,"i":-3}`, true},
	{"10 levels of objects", nestJSON(11, "1"), true},
	{"11 levels of objects", nestJSON(12, "1"), false},
	{"array at level 10", nestJSON(10, "[1]"), true},
	{"array at level 11", nestJSON(10, "[[1]]"), false},
	{"objects in arrays count", nestJSON(9, `[{"b":[1]}]`), false},
	{"max integer", `{"a":4503599627370495}`, true},
	{"min integer", `{"a":-4503599627370496}`, true},
	{"max integer + 1", `{"a":4503599627370496}`, false},
	{"min integer - 1", `{"a":-4503599627370497}`, false},
	{"2^53+1", `{"a":9007199254740993}`, false},
	{"whole number in exponent form", `{"a":4.503599627370496e15}`, false},
	{"fraction near the limit", `{"a":4503599627370495.5}`, true},
	{"tiny fraction", `{"a":1e-300}`, true},
	{"unicode key and value", `{"日本":"é","\ud83d\ude00":"\ud83d\ude00"}`, true},
	{"key with escaped newline", `{"a\nb":1}`, false},
	{"key with C1 control", `{"a` + "\u0085" + `b":1}`, false},
	{"key with DEL", `{"a\u007fb":1}`, false},
	{"key with dot", `{"a.b":1}`, false},
	{"key with dollar", `{"$a":1}`, false},
	{"key with space", `{"a b":1}`, false},
	{"empty key", `{"":1}`, false},
	{"key of 1 KB", `{"` + strings.Repeat("k", 1024) + `":1}`, true},
	{"key over 1 KB", `{"` + strings.Repeat("k", 1025) + `":1}`, false},
	{"key of 1 KB in 2-byte characters", `{"` + strings.Repeat("é", 512) + `":1}`, true},
	{"key over 1 KB in 2-byte characters", `{"` + strings.Repeat("é", 513) + `":1}`, false},
	{"string of 4 KB", `{"s":"` + strings.Repeat("x", 4096) + `"}`, true},
	{"string over 4 KB", `{"s":"` + strings.Repeat("x", 4097) + `"}`, false},
	{"string with control characters", `{"s":"a\u0001\tb"}`, true},
	{"invalid UTF-8 in a key", "{\"a\xffb\":1}", false},
	{"invalid UTF-8 in a string", "{\"s\":\"\xc3(\"}", false},
	{"UTF-8 encoded surrogate", "{\"s\":\"\xed\xa0\x80\"}", false},
	{"overlong UTF-8", "{\"s\":\"\xc0\xaf\"}", false},
	{"unpaired high surrogate", `{"s":"\ud800"}`, false},
	{"high surrogate then a letter", `{"s":"\ud800\u0041"}`, false},
	{"unpaired low surrogate", `{"s":"\udc00"}`, false},
	{"unpaired surrogate in a key", `{"\ud800":1}`, false},
	{"escaped backslash before u", `{"s":"\\ud800"}`, true},
	{"literal U+FFFD", `{"s":"` + "\uFFFD" + `"}`, true},
}

func TestCheckTwinSection(t *testing.T) {
	for _, tt := range twinRuleCases {
		for _, s := range []TwinSection{TwinTags, TwinDesired, TwinReported} {
			_, err := ParseTwinSection(s, []byte(tt.section))
			if tt.ok && err != nil {
				t.Errorf("%s in %s: %v", tt.name, s, err)
			}
			if !tt.ok {
				wantArgumentInvalid(t, tt.name+" in "+s.String(), err)
			}
		}
		// The same rules through a service patch of tags and of desired.
		for _, doc := range []string{`{"tags":` + tt.section + `}`, `{"properties":{"desired":` + tt.section + `}}`} {
			_, err := ParseTwinPatch([]byte(doc))
			if tt.ok != (err == nil) {
				t.Errorf("%s: ParseTwinPatch(%.80s): %v", tt.name, doc, err)
			}
		}
	}
}

func TestCheckJSONText(t *testing.T) {
	tests := []struct {
		text string
		ok   bool
	}{
		{`{"a":"\u00e9\n\\u"}`, true},
		{`{"a":"\uD83D\uDE00"}`, true},
		{`{"a":"\uD83D\uDE00\uD83D"}`, false},
		{`{"a":"\uDE00\uD83D"}`, false},
		{`{"a":"\uD83D\\uDE00"}`, false},
		{`{"a":"\u12"}`, true}, // malformed: left to the decoder
		{`\`, true},
		{"\xff", false},
		{"{\"a\":\"\xe2\x82\"}", false},
	}
	for _, tt := range tests {
		err := CheckJSONText([]byte(tt.text))
		if tt.ok && err != nil {
			t.Errorf("CheckJSONText(%q): %v", tt.text, err)
		}
		if !tt.ok {
			wantArgumentInvalid(t, "CheckJSONText("+tt.text+")", err)
		}
	}
}

func TestTwinSize(t *testing.T) {
	tests := []struct {
		v    map[string]any
		want int
	}{
		{map[string]any{}, 0},
		{map[string]any{"ab": "cde"}, 5},
		{map[string]any{"a": 1.0}, 9},
		{map[string]any{"a": true}, 5},
		{map[string]any{"a": nil}, 0}, // a null deletes
		{map[string]any{"é": "日本"}, 3},
		{map[string]any{"a": "x\u0001y"}, 3},
		{map[string]any{"a": map[string]any{"b": 1.0}}, 10},
		{map[string]any{"a": []any{1.0, "xy"}}, 11},
	}
	for _, tt := range tests {
		if got := TwinSize(tt.v); got != tt.want {
			t.Errorf("TwinSize(%v) = %d, want %d", tt.v, got, tt.want)
		}
	}
	if err := CheckTwinSize(TwinTags, map[string]any{"a": strings.Repeat("x", MaxTagsBytes-1)}); err != nil {
		t.Errorf("tags at the limit: %v", err)
	}
	wantArgumentInvalid(t, "tags over the limit", CheckTwinSize(TwinTags, map[string]any{"ab": strings.Repeat("x", MaxTagsBytes-1)}))
}

func TestCheckJobCharacters(t *testing.T) {
	tests := []struct {
		patch string
		ok    bool
	}{
		{`{"tags":{"ring":"canary","n":1,"e":"","l":["a",2]},"properties":{"desired":{"cfg":{"rate":"5m"}}}}`, true},
		{`{"tags":{"a":"x y"}}`, false},
		{`{"tags":{"a":["x=y"]}}`, false},
		{`{"properties":{"desired":{"a":{"b":"x;y"}}}}`, false},
		{`{"tags":{"日本":1}}`, false},
		{`{"tags":{"a-b_c":1}}`, true},
	}
	for _, tt := range tests {
		p, err := ParseTwinPatch([]byte(tt.patch))
		if err != nil {
			t.Fatalf("ParseTwinPatch(%s): %v", tt.patch, err)
		}
		err = p.CheckJobCharacters()
		if tt.ok && err != nil {
			t.Errorf("%s: %v", tt.patch, err)
		}
		if !tt.ok {
			wantArgumentInvalid(t, tt.patch, err)
		}
	}
}

// FuzzTwinPatch: ParseTwinPatch never panics; a refusal is 400
// ArgumentInvalid; text that is not UTF-8 is always refused; and an
// accepted patch, written out as the hub writes twins and read back, is
// accepted again with the same content, so a twin fetched and sent back is
// never refused.
func FuzzTwinPatch(f *testing.F) {
	for _, verdict := range []string{"accept", "refuse"} {
		for _, b := range twinFixtures(f, verdict) {
			f.Add(b)
		}
	}
	for _, tt := range twinRuleCases {
		f.Add([]byte(`{"tags":` + tt.section + `}`))
		f.Add([]byte(`{"properties":{"desired":` + tt.section + `}}`))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := ParseTwinPatch(raw)
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.Code != CodeArgumentInvalid {
				t.Fatalf("ParseTwinPatch(%q): %v, want ArgumentInvalid", raw, err)
			}
			return
		}
		if !utf8.Valid(raw) {
			t.Fatalf("ParseTwinPatch(%q) accepted text that is not UTF-8", raw)
		}
		if _, err := NewTwinPatch(p.Tags(), p.Desired()); err != nil {
			t.Fatalf("NewTwinPatch of an accepted patch %q: %v", raw, err)
		}
		doc := map[string]any{}
		if p.Tags() != nil {
			doc["tags"] = p.Tags()
		}
		if p.Desired() != nil {
			doc["properties"] = map[string]any{"desired": p.Desired()}
		}
		out, err := json.Marshal(doc)
		if err != nil {
			t.Fatalf("marshal accepted %q: %v", raw, err)
		}
		q, err := ParseTwinPatch(out)
		if err != nil {
			t.Fatalf("accepted %q, refused it written out as %s: %v", raw, out, err)
		}
		again, _ := json.Marshal(map[string]any{"tags": q.Tags(), "desired": q.Desired()})
		first, _ := json.Marshal(map[string]any{"tags": p.Tags(), "desired": p.Desired()})
		if string(again) != string(first) {
			t.Fatalf("round trip of %q changed it: %s, then %s", raw, first, again)
		}
	})
}
