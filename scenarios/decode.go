package scenarios

import (
	"cmp"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// Limits that keep a hostile or broken file from taking the process down.
const (
	maxDepth      = 64      // nesting of YAML collections
	maxNodeVisits = 1 << 18 // nodes walked, counting alias expansions and merged keys
)

// pos is a 1-based line and column in the scenario file.
type pos struct{ line, col int }

func nodePos(n *yaml.Node) pos { return pos{n.Line, n.Column} }

// decoder turns a yaml.Node tree into the schema structs by reflection,
// strictly: unknown keys, wrong types and missing required keys are all
// collected as problems with their positions, and decoding goes on so that
// one run reports everything. It remembers where every value came from (at),
// keyed by a pointer to the decoded value, for the validation pass.
type decoder struct {
	file     string
	problems []Problem
	at       map[any]*yaml.Node
	lines    []string // the file's lines, to place errors inside a scalar
	visits   int
	depth    int
	tooBig   bool

	// failed holds the paths of values that did not decode; the validation
	// pass (validating) stays quiet about them and everything below them,
	// so that one mistake gives one problem.
	failed     map[string]bool
	failedHere map[string]bool // as failed, but not below: a struct with an unknown key
	validating bool
}

func newDecoder(file string) *decoder {
	return &decoder{file: file, at: map[any]*yaml.Node{}, failed: map[string]bool{}, failedHere: map[string]bool{}}
}

// nodeDecoder is implemented (on the pointer) by schema types with their own
// YAML forms, such as Duration and Distribution.
type nodeDecoder interface {
	decodeNode(d *decoder, n *yaml.Node, path string)
}

func (d *decoder) problem(p pos, path, format string, args ...any) {
	if d.validating {
		if d.failedHere[path] {
			return
		}
		for q := path; ; q = parentPath(q) {
			if d.failed[q] {
				return
			}
			if q == "" {
				break
			}
		}
	}
	d.problems = append(d.problems, Problem{File: d.file, Line: p.line, Col: p.col, Path: path, Msg: fmt.Sprintf(format, args...)})
}

// errorf records a decoding problem: the value at path did not decode.
func (d *decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	d.failed[path] = true
	d.problem(nodePos(n), path, format, args...)
}

// keyError records a problem with a key of the mapping at path (unknown,
// repeated or missing): the mapping itself decoded.
func (d *decoder) keyError(n *yaml.Node, path, format string, args ...any) {
	d.failedHere[path] = true
	d.problem(nodePos(n), path, format, args...)
}

// posOf returns where the value behind ptr was decoded from.
func (d *decoder) posOf(ptr any) (pos, bool) {
	if n, ok := d.at[ptr]; ok {
		return nodePos(n), true
	}
	return pos{}, false
}

// where returns the position of the first of ptrs that was decoded from
// the file, or line 1 column 1.
func (d *decoder) where(ptrs ...any) pos {
	for _, p := range ptrs {
		if n, ok := d.at[p]; ok {
			return nodePos(n)
		}
	}
	return pos{1, 1}
}

// sortProblems puts the problems in file order, keeping the order of
// problems at the same position.
func (d *decoder) sortProblems() {
	slices.SortStableFunc(d.problems, func(a, b Problem) int {
		if c := cmp.Compare(a.Line, b.Line); c != 0 {
			return c
		}
		return cmp.Compare(a.Col, b.Col)
	})
}

// resolve follows aliases and documents and charges the walk budget; nil
// means stop (a problem has been recorded).
func (d *decoder) resolve(n *yaml.Node, path string) *yaml.Node {
	for range 32 {
		switch {
		case n == nil:
			return nil
		case n.Kind == yaml.AliasNode:
			n = n.Alias
			continue
		case n.Kind == yaml.DocumentNode:
			if len(n.Content) == 0 {
				return nil
			}
			n = n.Content[0]
			continue
		}
		d.visits++
		if d.visits > maxNodeVisits {
			if !d.tooBig {
				d.tooBig = true
				d.errorf(n, path, "the document is too large once its aliases are expanded")
			}
			return nil
		}
		return n
	}
	d.errorf(n, path, "aliases nest too deeply")
	return nil
}

func isNull(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null"
}

// describe names what a node is, for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return "null"
		case "!!bool":
			return "the boolean " + n.Value
		case "!!int", "!!float":
			return "the number " + n.Value
		}
		return strconv.Quote(n.Value)
	}
	return "an unsupported YAML node"
}

func (d *decoder) wrongType(n *yaml.Node, path, want string) {
	d.errorf(n, path, "want %s, got %s", want, describe(n))
}

// decode fills v from n.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	if n = d.resolve(n, path); n == nil {
		return
	}
	if d.depth >= maxDepth {
		d.errorf(n, path, "nested more than %d levels deep", maxDepth)
		return
	}
	d.depth++
	defer func() { d.depth-- }()
	if v.CanAddr() {
		ptr := v.Addr().Interface()
		d.at[ptr] = n
		if nd, ok := ptr.(nodeDecoder); ok {
			nd.decodeNode(d, n, path)
			return
		}
	}
	switch v.Kind() {
	case reflect.Pointer:
		if isNull(n) {
			v.SetZero()
			return
		}
		p := reflect.New(v.Type().Elem())
		d.decode(n, p.Elem(), path)
		v.Set(p)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			d.wrongType(n, path, "a list")
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		v.Set(s)
		for i, c := range n.Content {
			ip := fmt.Sprintf("%s[%d]", path, i)
			d.decode(c, s.Index(i), ip)
			if e := s.Index(i); e.Kind() == reflect.Pointer && e.IsNil() {
				// A null entry: report it, and decode on as an empty one.
				if c := d.resolve(c, ip); c != nil {
					d.wrongType(c, ip, "an entry")
				}
				e.Set(reflect.New(e.Type().Elem()))
			}
		}
	case reflect.Map:
		d.decodeMap(n, v, path)
	case reflect.Interface:
		if x := d.value(n, path); x != nil {
			v.Set(reflect.ValueOf(x))
		}
	default:
		d.decodeScalar(n, v, path)
	}
}

// pairs returns the key/value pairs of a mapping, with YAML merge keys
// ("<<: *base") expanded: explicit keys win over merged ones.
func (d *decoder) pairs(n *yaml.Node, path string) [][2]*yaml.Node {
	var own, merged [][2]*yaml.Node
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			src := d.resolve(val, path)
			if src == nil {
				continue
			}
			var maps []*yaml.Node
			switch src.Kind {
			case yaml.MappingNode:
				maps = append(maps, src)
			case yaml.SequenceNode:
				for _, m := range src.Content {
					if m = d.resolve(m, path); m != nil && m.Kind == yaml.MappingNode {
						maps = append(maps, m)
					} else if m != nil {
						d.wrongType(m, path, "a mapping to merge")
					}
				}
			default:
				d.wrongType(src, path, "a mapping to merge")
			}
			for _, m := range maps {
				if d.depth >= maxDepth {
					d.errorf(m, path, "merges nest too deeply")
					continue
				}
				d.depth++
				more := d.pairs(m, path)
				d.depth--
				if d.visits += len(more); d.visits > maxNodeVisits {
					if !d.tooBig {
						d.tooBig = true
						d.errorf(m, path, "the document is too large once its merge keys are expanded")
					}
					return own
				}
				merged = append(merged, more...)
			}
			continue
		}
		own = append(own, [2]*yaml.Node{k, val})
	}
	if len(merged) == 0 {
		return own
	}
	explicit := map[string]bool{}
	for _, p := range own {
		explicit[p[0].Value] = true
	}
	out := own
	seen := map[string]bool{}
	for _, p := range merged {
		if !explicit[p[0].Value] && !seen[p[0].Value] {
			seen[p[0].Value] = true
			out = append(out, p)
		}
	}
	return out
}

// keyName checks that a mapping key is a plain scalar and returns it.
func (d *decoder) keyName(k *yaml.Node, path string) (string, bool) {
	if k = d.resolve(k, path); k == nil {
		return "", false
	}
	if k.Kind != yaml.ScalarNode || isNull(k) {
		d.errorf(k, path, "a key must be a string, got %s", describe(k))
		return "", false
	}
	return k.Value, true
}

func (d *decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.wrongType(n, path, "a mapping")
		return
	}
	info := structInfo(v.Type())
	seen := map[string]bool{}    // keys given, for duplicates
	present := map[string]bool{} // keys given a non-null value
	for _, p := range d.pairs(n, path) {
		name, ok := d.keyName(p[0], path)
		if !ok {
			continue
		}
		f, ok := info.byName[name]
		if !ok {
			msg := fmt.Sprintf("unknown key %q", name)
			if s := suggest(name, info.names); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
			d.keyError(p[0], path, "%s", msg)
			continue
		}
		if seen[name] {
			d.keyError(p[0], path, "key %q appears twice", name)
			continue
		}
		seen[name] = true
		val := d.resolve(p[1], join(path, name))
		if val == nil || isNull(val) {
			continue
		}
		present[name] = true
		d.decode(val, v.Field(f.index), join(path, name))
	}
	for _, f := range info.fields {
		if f.required && !present[f.name] {
			d.problem(nodePos(n), path, "missing required key %q", f.name)
			d.failed[join(path, f.name)] = true
		}
	}
}

func (d *decoder) decodeMap(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.MappingNode {
		d.wrongType(n, path, "a mapping")
		return
	}
	m := reflect.MakeMap(v.Type())
	v.Set(m)
	seen := map[string]bool{}
	kt, et := v.Type().Key(), v.Type().Elem()
	for _, p := range d.pairs(n, path) {
		name, ok := d.keyName(p[0], path)
		if !ok {
			continue
		}
		if seen[name] {
			d.errorf(p[0], path, "key %q appears twice", name)
			continue
		}
		seen[name] = true
		key := reflect.New(kt).Elem()
		switch kt.Kind() {
		case reflect.String:
			key.SetString(name)
		case reflect.Int:
			i, err := strconv.Atoi(name)
			if err != nil {
				d.errorf(p[0], path, "key %q is not an integer", name)
				continue
			}
			key.SetInt(int64(i))
		default:
			panic("scenarios: unsupported map key type " + kt.String())
		}
		// Decode into an addressable element so that positions are kept,
		// then store it; the position key of a map element is the element
		// copy, so record it under the map and key too.
		elem := reflect.New(et)
		d.decode(p[1], elem.Elem(), join(path, name))
		if et.Kind() == reflect.Pointer && elem.Elem().IsNil() {
			// A null value means the element's defaults ({ping: } is a
			// method with default behaviour, a null tag is a null value).
			elem.Elem().Set(reflect.New(et.Elem()))
		}
		m.SetMapIndex(key, elem.Elem())
		d.at[mapKey{m.UnsafePointer(), name}] = p[0]
	}
}

// mapKey locates a map entry's key for posOf.
type mapKey struct {
	m   any // mapPointer of the map
	key string
}

// mapPointer identifies a map for mapKey.
func mapPointer(m any) any { return reflect.ValueOf(m).UnsafePointer() }

func (d *decoder) decodeScalar(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.wrongType(n, path, kindName(v.Kind()))
		return
	}
	tag := n.ShortTag()
	switch v.Kind() {
	case reflect.String:
		switch tag {
		case "!!str", "!!int", "!!float":
			v.SetString(n.Value)
		default:
			d.wrongType(n, path, "a string")
		}
	case reflect.Bool:
		if tag != "!!bool" {
			d.wrongType(n, path, "true or false")
			return
		}
		var b bool
		if err := n.Decode(&b); err != nil {
			d.wrongType(n, path, "true or false")
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		i, ok := scalarInt(n)
		if !ok {
			d.wrongType(n, path, "an integer")
			return
		}
		if v.OverflowInt(i) {
			d.errorf(n, path, "%s is out of range", n.Value)
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		f, ok := scalarFloat(n)
		if !ok {
			d.wrongType(n, path, "a number")
			return
		}
		v.SetFloat(f)
	default:
		panic("scenarios: unsupported field kind " + v.Kind().String())
	}
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Float64:
		return "a number"
	}
	return "a value"
}

// scalarInt reads an integer scalar; an integral float such as 1e5 counts.
func scalarInt(n *yaml.Node) (int64, bool) {
	switch n.ShortTag() {
	case "!!int":
		var i int64
		if err := n.Decode(&i); err != nil {
			return 0, false
		}
		return i, true
	case "!!float":
		f, ok := scalarFloat(n)
		if !ok || f != math.Trunc(f) || math.Abs(f) > 1<<53 {
			return 0, false
		}
		return int64(f), true
	}
	return 0, false
}

func scalarFloat(n *yaml.Node) (float64, bool) {
	switch n.ShortTag() {
	case "!!int", "!!float":
		var f float64
		if err := n.Decode(&f); err != nil {
			return 0, false
		}
		return f, true
	}
	return 0, false
}

// value turns free-form YAML (payloads, desired properties) into the types
// encoding/json produces: map[string]any, []any, string, float64, bool, nil.
func (d *decoder) value(n *yaml.Node, path string) any {
	if n = d.resolve(n, path); n == nil {
		return nil
	}
	if d.depth >= maxDepth {
		d.errorf(n, path, "nested more than %d levels deep", maxDepth)
		return nil
	}
	d.depth++
	defer func() { d.depth-- }()
	switch n.Kind {
	case yaml.MappingNode:
		m := map[string]any{}
		for _, p := range d.pairs(n, path) {
			k, ok := d.keyName(p[0], path)
			if !ok {
				continue
			}
			if _, dup := m[k]; dup {
				d.errorf(p[0], path, "key %q appears twice", k)
				continue
			}
			m[k] = d.value(p[1], join(path, k))
		}
		return m
	case yaml.SequenceNode:
		s := make([]any, len(n.Content))
		for i, c := range n.Content {
			s[i] = d.value(c, fmt.Sprintf("%s[%d]", path, i))
		}
		return s
	case yaml.ScalarNode:
		switch n.ShortTag() {
		case "!!null":
			return nil
		case "!!bool":
			var b bool
			if err := n.Decode(&b); err == nil {
				return b
			}
		case "!!int", "!!float":
			f, ok := scalarFloat(n)
			if ok && !math.IsInf(f, 0) && !math.IsNaN(f) {
				return f
			}
			d.errorf(n, path, "%s is not a number JSON can carry", n.Value)
			return nil
		}
		return n.Value
	}
	d.wrongType(n, path, "a value")
	return nil
}

// parentPath strips the last key or index of a path: a.b[2].c → a.b[2] →
// a.b → a → "".
func parentPath(path string) string {
	i := strings.LastIndexAny(path, ".[")
	if i < 0 {
		return ""
	}
	return path[:i]
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// fieldInfo describes one schema struct field.
type fieldInfo struct {
	name     string
	index    int
	required bool
	doc      string
}

type structDesc struct {
	fields []fieldInfo
	byName map[string]fieldInfo
	names  []string
}

var structCache sync.Map // reflect.Type → *structDesc

// structInfo reads the yaml, required and doc tags of a schema struct.
func structInfo(t reflect.Type) *structDesc {
	if s, ok := structCache.Load(t); ok {
		return s.(*structDesc)
	}
	s := &structDesc{byName: map[string]fieldInfo{}}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name == "" || name == "-" || !f.IsExported() {
			continue
		}
		fi := fieldInfo{name: name, index: i, required: f.Tag.Get("required") == "true", doc: f.Tag.Get("doc")}
		s.fields = append(s.fields, fi)
		s.byName[name] = fi
		s.names = append(s.names, name)
	}
	structCache.Store(t, s)
	return s
}

// suggest returns the candidate closest to name when it is close enough to
// be a likely typo: equal ignoring case, within an edit distance of a
// third of the name's length (at least 1, at most 3), or one a prefix of
// the other.
func suggest(name string, candidates []string) string {
	best, bestDist := "", math.MaxInt
	limit := min(max(len(name)/3, 1), 3)
	for _, c := range candidates {
		if strings.EqualFold(c, name) {
			return c
		}
		ln, lc := strings.ToLower(name), strings.ToLower(c)
		dist := editDistance(ln, lc)
		if dist > limit && min(len(lc), len(ln)) >= 4 && (strings.HasPrefix(ln, lc) || strings.HasPrefix(lc, ln)) {
			dist = limit // "methodName" for "method"
		}
		if dist <= limit && dist < bestDist {
			best, bestDist = c, dist
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, capped at 64
// characters of input to stay cheap on hostile keys.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
