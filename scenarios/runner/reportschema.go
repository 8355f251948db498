package runner

import (
	"encoding/json"
	"reflect"
	"strings"
	"time"
)

// ReportSchemaID is the $id of the JSON Schema of report.json.
const ReportSchemaID = "https://github.com/fleetsim/fleetsim/scenarios/runner/report.schema.json"

// ReportJSONSchema returns a JSON Schema (draft 2020-12) of a Report as
// report.json holds it, generated from the Report types by reflection: key
// names from the json tags, every key without omitempty or omitzero
// required, no other keys allowed. Durations are numbers of milliseconds.
// The committed copy is scenarios/runner/report.schema.json.
func ReportJSONSchema() []byte {
	g := &reportSchemaGen{defs: map[string]any{}}
	root := g.object(reflect.TypeFor[Report]())
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["$id"] = ReportSchemaID
	root["title"] = "fleetsim report"
	root["description"] = "The outcome of a fleetsim scenario run (report.json): the fleet's figures, each job's statistics, latency and failures, and each expectation judged. Durations are numbers of milliseconds, in keys that end in Ms."
	root["$defs"] = g.defs
	b, err := json.MarshalIndent(root, "", "  ")
	if err != nil {
		panic("runner: report JSON schema: " + err.Error())
	}
	return append(b, '\n')
}

type reportSchemaGen struct {
	defs map[string]any
}

func (g *reportSchemaGen) schemaOf(t reflect.Type) map[string]any {
	switch t {
	case reflect.TypeFor[time.Time]():
		return map[string]any{"type": "string", "format": "date-time"}
	case reflect.TypeFor[Duration]():
		return map[string]any{"type": "number", "minimum": 0, "description": "milliseconds"}
	}
	switch t.Kind() {
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return map[string]any{"type": "integer"}
	case reflect.Float32, reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Slice, reflect.Array:
		return map[string]any{"type": []any{"array", "null"}, "items": g.schemaOf(t.Elem())}
	case reflect.Map:
		s := map[string]any{"type": "object", "additionalProperties": g.schemaOf(t.Elem())}
		if k := t.Key().Kind(); k >= reflect.Int && k <= reflect.Uint64 {
			s["propertyNames"] = map[string]any{"pattern": "^-?[0-9]+$"}
		}
		return s
	case reflect.Pointer:
		return g.schemaOf(t.Elem())
	case reflect.Struct:
		name := t.Name()
		if _, ok := g.defs[name]; !ok {
			g.defs[name] = map[string]any{} // placeholder for recursive types
			g.defs[name] = g.object(t)
		}
		return map[string]any{"$ref": "#/$defs/" + name}
	}
	panic("runner: report JSON schema: no schema for " + t.String())
}

// object is the schema of a struct's JSON object.
func (g *reportSchemaGen) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	required := []any{}
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		props[name] = g.schemaOf(f.Type)
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			required = append(required, name)
		}
	}
	return map[string]any{"type": "object", "properties": props, "required": required, "additionalProperties": false}
}
