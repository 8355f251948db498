package scenarios

import (
	"encoding/json"
	"reflect"
	"strings"
)

// Positions says where the values of a file decoded by DecodeFile came from.
type Positions struct{ d *decoder }

// Pos returns the 1-based line and column of the value behind ptr (a
// pointer to a field or element of the decoded value), or 1, 1 when it was
// not written in the file.
func (p *Positions) Pos(ptr any) (line, col int) {
	if p == nil || p.d == nil {
		return 1, 1
	}
	at := p.d.where(ptr)
	return at.line, at.col
}

// DecodeFile decodes one YAML document into v (a pointer to a struct built
// like the scenario schema: yaml, required, doc and bounds tags, Duration
// and Distribution fields) with the scenario files' strictness: unknown
// keys (with a suggestion), wrong types and missing required keys are all
// reported at once in a *ParseError with file:line:col positions. Other
// formats of fleetsim (rollout plans) use it so their files read and fail
// like scenarios.
func DecodeFile(filename string, data []byte, v any) (*Positions, error) {
	d := newDecoder(filename)
	d.lines = strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	root, ok := d.parseYAML(data)
	if ok {
		d.decode(root, reflect.ValueOf(v).Elem(), "")
	}
	if len(d.problems) > 0 {
		d.sortProblems()
		return nil, &ParseError{File: filename, Problems: d.problems}
	}
	return &Positions{d: d}, nil
}

// JSONSchemaOf returns a JSON Schema (draft 2020-12) of the files DecodeFile
// reads into a value of type t, generated as JSONSchema is.
func JSONSchemaOf(t reflect.Type, id, title, description string) []byte {
	g := &schemaGen{defs: map[string]any{}}
	root := g.structSchema(t)
	root["$schema"] = "https://json-schema.org/draft/2020-12/schema"
	root["$id"] = id
	root["title"] = title
	root["description"] = description
	root["$defs"] = g.defs
	b, err := json.MarshalIndent(root, "", "  ")
	if err != nil {
		panic("scenarios: JSON schema: " + err.Error())
	}
	return append(b, '\n')
}
