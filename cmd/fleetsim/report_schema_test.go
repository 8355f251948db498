package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// validateReportJSON checks report.json bytes against the committed JSON
// Schema of reports. It implements the keywords that schema uses: $ref,
// type, properties, required, additionalProperties, items, propertyNames
// with a pattern, minimum and the date-time format.
func validateReportJSON(t *testing.T, doc []byte) {
	t.Helper()
	raw, err := os.ReadFile("../../scenarios/runner/report.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var schema map[string]any
	if err := json.Unmarshal(raw, &schema); err != nil {
		t.Fatalf("report.schema.json: %v", err)
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("report.json: %v", err)
	}
	defs, _ := schema["$defs"].(map[string]any)
	for _, p := range validate(schema, defs, v, "$") {
		t.Errorf("report.json does not match its schema: %s", p)
	}
}

func validate(s, defs map[string]any, v any, at string) []string {
	if ref, ok := s["$ref"].(string); ok {
		def, _ := defs[strings.TrimPrefix(ref, "#/$defs/")].(map[string]any)
		if def == nil {
			return []string{at + ": unknown $ref " + ref}
		}
		return validate(def, defs, v, at)
	}
	var types []string
	switch ty := s["type"].(type) {
	case string:
		types = []string{ty}
	case []any:
		for _, x := range ty {
			types = append(types, x.(string))
		}
	}
	if len(types) > 0 && !slices.Contains(types, jsonType(v)) && !(jsonType(v) == "integer" && slices.Contains(types, "number")) {
		return []string{fmt.Sprintf("%s: %s, want %s", at, jsonType(v), strings.Join(types, " or "))}
	}
	var out []string
	switch v := v.(type) {
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		for _, r := range asList(s["required"]) {
			if _, ok := v[r.(string)]; !ok {
				out = append(out, fmt.Sprintf("%s: missing %q", at, r))
			}
		}
		for k, x := range v {
			if pn, ok := s["propertyNames"].(map[string]any); ok {
				if !regexp.MustCompile(pn["pattern"].(string)).MatchString(k) {
					out = append(out, fmt.Sprintf("%s: key %q does not match %s", at, k, pn["pattern"]))
				}
			}
			if ps, ok := props[k].(map[string]any); ok {
				out = append(out, validate(ps, defs, x, at+"."+k)...)
				continue
			}
			switch ap := s["additionalProperties"].(type) {
			case bool:
				if !ap {
					out = append(out, fmt.Sprintf("%s: unexpected key %q", at, k))
				}
			case map[string]any:
				out = append(out, validate(ap, defs, x, at+"."+k)...)
			}
		}
	case []any:
		if items, ok := s["items"].(map[string]any); ok {
			for i, x := range v {
				out = append(out, validate(items, defs, x, fmt.Sprintf("%s[%d]", at, i))...)
			}
		}
	case json.Number:
		if m, ok := s["minimum"].(float64); ok {
			if f, _ := v.Float64(); f < m {
				out = append(out, fmt.Sprintf("%s: %s is below %v", at, v, m))
			}
		}
	case string:
		if s["format"] == "date-time" {
			if _, err := time.Parse(time.RFC3339Nano, v); err != nil {
				out = append(out, fmt.Sprintf("%s: %q is not a date-time", at, v))
			}
		}
	}
	return out
}

func asList(v any) []any { l, _ := v.([]any); return l }

func jsonType(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	case json.Number:
		if _, err := v.Int64(); err == nil {
			return "integer"
		}
		return "number"
	}
	return fmt.Sprintf("%T", v)
}

func TestReportJSONMatchesSchema(t *testing.T) {
	b, err := renderJSON(fixtureReport(t))
	if err != nil {
		t.Fatal(err)
	}
	validateReportJSON(t, b)
	// The validator catches what the schema forbids.
	for _, bad := range []struct{ from, to string }{
		{`"p50Ms": 12`, `"p50Ms": "12ms"`},
		{`"scenario": "firmware-rollout",`, `"scenario": "firmware-rollout", "extra": 1,`},
		{`"seed": 42,`, ``},
	} {
		broken := strings.Replace(string(b), bad.from, bad.to, 1)
		if broken == string(b) {
			t.Fatalf("the fixture has no %s", bad.from)
		}
		raw, _ := os.ReadFile("../../scenarios/runner/report.schema.json")
		var schema map[string]any
		json.Unmarshal(raw, &schema)
		dec := json.NewDecoder(strings.NewReader(broken))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatal(err)
		}
		if len(validate(schema, schema["$defs"].(map[string]any), v, "$")) == 0 {
			t.Errorf("the schema accepts a report with %s changed to %q", bad.from, bad.to)
		}
	}
}
