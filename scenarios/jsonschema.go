package scenarios

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
)

// SchemaID is the $id of the generated JSON Schema.
const SchemaID = "https://github.com/fleetsim/fleetsim/scenarios/scenario.schema.json"

// JSONSchema returns a JSON Schema (draft 2020-12) of scenario files,
// generated from the schema structs by reflection: key names from the yaml
// tags, descriptions from the doc tags, required keys, enums and bounds.
// Editors use it to complete and check scenario files; the committed copy is
// scenarios/scenario.schema.json. The schema checks shape and types; the
// cross-checks of Parse (job references, id collisions, conditions) need
// fleetsim itself (fleetsim scenarios check).
func JSONSchema() []byte {
	g := &schemaGen{defs: map[string]any{}}
	root := g.structSchema(reflect.TypeFor[File]())
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["$id"] = SchemaID
	root["title"] = "fleetsim scenario"
	root["description"] = "A fleetsim scenario: a simulated device fleet, a timeline of IoT Hub jobs and disturbances, and the expectations that decide the exit code."
	root["$defs"] = g.defs
	b, err := json.MarshalIndent(root, "", "  ")
	if err != nil {
		panic("scenarios: JSON schema: " + err.Error())
	}
	return append(b, '\n')
}

type schemaGen struct {
	defs map[string]any
}

// schemaer is implemented by schema types with their own YAML forms.
type schemaer interface {
	jsonSchema(g *schemaGen) map[string]any
}

const durationPattern = `^(0|([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+)$`

func (g *schemaGen) ref(name string, def func() map[string]any) map[string]any {
	if _, ok := g.defs[name]; !ok {
		g.defs[name] = map[string]any{} // placeholder for recursive types
		g.defs[name] = def()
	}
	return map[string]any{"$ref": "#/$defs/" + name}
}

func (Duration) jsonSchema(g *schemaGen) map[string]any {
	return g.ref("Duration", func() map[string]any {
		return map[string]any{
			"description": `A duration such as "500ms", "5s", "2m30s" or "1h".`,
			"anyOf": []any{
				map[string]any{"type": "string", "pattern": durationPattern},
				map[string]any{"const": 0},
			},
		}
	})
}

func (Distribution) jsonSchema(g *schemaGen) map[string]any {
	return g.ref("Distribution", func() map[string]any {
		obj := g.structSchema(reflect.TypeFor[Distribution]())
		obj["minProperties"] = 1
		obj["maxProperties"] = 1
		props := obj["properties"].(map[string]any)
		props["uniform"].(map[string]any)["minItems"] = 2
		props["uniform"].(map[string]any)["maxItems"] = 2
		props["percentiles"].(map[string]any)["propertyNames"] = map[string]any{"pattern": `^p(100|[0-9]{1,2}(\.[0-9]+)?)$`}
		return map[string]any{
			"description": `A random duration: a plain duration ("50ms") is a constant; otherwise exactly one of constant, uniform, normal, lognormal, exponential, percentiles.`,
			"anyOf":       []any{Duration(0).jsonSchema(g), obj},
		}
	})
}

func (TagSpec) jsonSchema(g *schemaGen) map[string]any {
	return g.ref("TagValue", func() map[string]any {
		self := map[string]any{"$ref": "#/$defs/TagValue"}
		return map[string]any{
			"description": "A tag rule: a constant; a list dealt round robin by device index; \"lo..hi\", an integer drawn per device; {$random: [...]}; {$weighted: {value: weight}}; or a mapping of nested tags.",
			"anyOf": []any{
				map[string]any{"type": []any{"string", "number", "boolean", "null"}},
				map[string]any{"type": "array", "minItems": 1},
				map[string]any{"type": "object", "properties": map[string]any{"$random": map[string]any{"type": "array", "minItems": 1}}, "required": []any{"$random"}, "additionalProperties": false},
				map[string]any{"type": "object", "properties": map[string]any{"$weighted": map[string]any{"type": "object", "minProperties": 1, "additionalProperties": map[string]any{"type": "number", "minimum": 0}}}, "required": []any{"$weighted"}, "additionalProperties": false},
				map[string]any{"type": "object", "propertyNames": map[string]any{"pattern": "^[^.$ ]+$"}, "additionalProperties": self},
			},
		}
	})
}

var schemaerType = reflect.TypeFor[schemaer]()

// schemaOf returns the schema of a Go type.
func (g *schemaGen) schemaOf(t reflect.Type) map[string]any {
	if t.Kind() == reflect.Pointer {
		return g.schemaOf(t.Elem())
	}
	if t.Implements(schemaerType) {
		return reflect.Zero(t).Interface().(schemaer).jsonSchema(g)
	}
	switch t.Kind() {
	case reflect.Struct:
		return g.ref(t.Name(), func() map[string]any { return g.structSchema(t) })
	case reflect.Slice:
		return map[string]any{"type": "array", "items": g.schemaOf(t.Elem())}
	case reflect.Map:
		m := map[string]any{"type": "object", "additionalProperties": g.schemaOf(t.Elem())}
		if t.Key().Kind() == reflect.Int {
			m["propertyNames"] = map[string]any{"pattern": "^[0-9]+$"}
		}
		return m
	case reflect.String:
		return map[string]any{"type": "string"}
	case reflect.Int, reflect.Int64, reflect.Int32:
		return map[string]any{"type": "integer"}
	case reflect.Float64:
		return map[string]any{"type": "number"}
	case reflect.Bool:
		return map[string]any{"type": "boolean"}
	case reflect.Interface:
		return map[string]any{}
	}
	panic("scenarios: no JSON schema for " + t.String())
}

// structSchema describes a struct: its properties from the yaml tags, with
// doc, enum, pattern and bound tags applied.
func (g *schemaGen) structSchema(t reflect.Type) map[string]any {
	props := map[string]any{}
	var required []any
	for _, f := range structInfo(t).fields {
		sf := t.Field(f.index)
		p := map[string]any{}
		for k, v := range g.schemaOf(sf.Type) {
			p[k] = v
		}
		if f.doc != "" {
			p["description"] = f.doc
		}
		if e := sf.Tag.Get("enum"); e != "" {
			var vals []any
			for _, v := range strings.Split(e, ",") {
				if n, err := strconv.Atoi(v); err == nil && p["type"] == "integer" {
					vals = append(vals, n)
				} else {
					vals = append(vals, v)
				}
			}
			p["enum"] = vals
		}
		if pat := sf.Tag.Get("pattern"); pat != "" {
			p["pattern"] = pat
		}
		switch sf.Tag.Get("bounds") {
		case "probability":
			p["minimum"], p["maximum"] = 0, 1
		case "nonnegative":
			p["minimum"] = 0
		case "positive":
			p["minimum"] = 1
		}
		props[f.name] = p
		if f.required {
			required = append(required, f.name)
		}
	}
	s := map[string]any{"type": "object", "properties": props, "additionalProperties": false}
	if len(required) > 0 {
		s["required"] = required
	}
	if t == reflect.TypeFor[ActionSpec]() {
		// at plus exactly one of job, cancel, disconnect, connectStorm.
		s["minProperties"], s["maxProperties"] = 2, 2
	}
	return s
}
