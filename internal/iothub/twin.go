package iothub

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// The integer range of twin values: IoT Hub refuses a whole number outside
// it. Numbers are held as float64, which represents every integer of this
// range exactly, so the check is exact for integers written as integers.
const (
	MinTwinInteger = -4503599627370496
	MaxTwinInteger = 4503599627370495
)

// TwinSection is one of a twin's three property sections, each with its own
// size limit.
type TwinSection uint8

// The twin's sections.
const (
	TwinTags TwinSection = iota + 1
	TwinDesired
	TwinReported
)

// String is the section's path in a twin document, as error messages name it.
func (s TwinSection) String() string {
	switch s {
	case TwinTags:
		return "tags"
	case TwinDesired:
		return "properties.desired"
	case TwinReported:
		return "properties.reported"
	}
	return "twin section " + strconv.Itoa(int(s))
}

// MaxBytes is the section's size limit, as TwinSize counts.
func (s TwinSection) MaxBytes() int {
	switch s {
	case TwinTags:
		return MaxTagsBytes
	case TwinReported:
		return MaxReportedBytes
	}
	return MaxDesiredBytes
}

func twinErr(format string, args ...any) *Error {
	return Errorf(CodeArgumentInvalid, format, args...)
}

// DecodeTwinJSON decodes one JSON value of a twin document or patch into
// what encoding/json produces (nil, bool, float64, string, []any,
// map[string]any). Unlike encoding/json it refuses text that is not valid
// UTF-8, and \u escapes that are unpaired surrogates, instead of replacing
// them with U+FFFD: a key or string IoT Hub cannot store is an error, not a
// different key. Errors are ArgumentInvalid.
func DecodeTwinJSON(raw []byte) (any, error) {
	if err := CheckJSONText(raw); err != nil {
		return nil, err
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil { // trailing data is an error too
		return nil, twinErr("the twin JSON is malformed: %v", err)
	}
	return v, nil
}

// CheckJSONText refuses what encoding/json would silently replace with
// U+FFFD: bytes that are not UTF-8, and \u escapes of surrogates that do not
// form a pair. It leaves every other syntax question to the decoder; in
// JSON text a backslash only occurs inside strings, so every one starts an
// escape. Errors are ArgumentInvalid.
func CheckJSONText(raw []byte) error {
	if !utf8.Valid(raw) {
		at := 0
		for at < len(raw) {
			r, n := utf8.DecodeRune(raw[at:])
			if r == utf8.RuneError && n == 1 {
				break
			}
			at += n
		}
		return twinErr("the JSON text is not valid UTF-8 (byte 0x%02x at offset %d)", raw[at], at)
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		if i+1 >= len(raw) || raw[i+1] != 'u' {
			i++ // a two-character escape such as \\ or \"
			continue
		}
		r, ok := hex4(raw, i+2)
		if !ok {
			continue // malformed; the decoder reports it
		}
		switch {
		case r >= 0xDC00 && r <= 0xDFFF:
			return twinErr("the JSON text has an unpaired surrogate \\u%04x at offset %d", r, i)
		case r >= 0xD800 && r <= 0xDBFF:
			lo, ok := rune(0), false
			if i+7 < len(raw) && raw[i+6] == '\\' && raw[i+7] == 'u' {
				lo, ok = hex4(raw, i+8)
			}
			if !ok || lo < 0xDC00 || lo > 0xDFFF {
				return twinErr("the JSON text has an unpaired surrogate \\u%04x at offset %d", r, i)
			}
			i += 11
		default:
			i += 5
		}
	}
	return nil
}

// hex4 reads four hex digits at raw[at:].
func hex4(raw []byte, at int) (rune, bool) {
	if at+4 > len(raw) {
		return 0, false
	}
	var r rune
	for _, c := range raw[at : at+4] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// CheckTwinSection checks a decoded section (or a patch of one) against IoT
// Hub's twin rules: every key a valid property name (ValidPropertyName);
// values null, boolean, string, number, object or array; strings valid
// UTF-8 of at most MaxStringValueBytes; whole numbers within
// MinTwinInteger..MaxTwinInteger, other numbers finite; and objects and
// arrays nested at most MaxTwinDepth levels below the section, which IoT
// Hub counts as level 0 (its docs' example tags.one.two...ten.property is
// valid). Nulls are allowed: in a patch they delete. It does not check the
// section's size, which applies to the result of an operation (TwinSize).
// Errors are ArgumentInvalid.
func CheckTwinSection(s TwinSection, v map[string]any) error {
	return checkTwinObject(s.String(), v, 0)
}

func checkTwinObject(path string, obj map[string]any, depth int) error {
	if depth > MaxTwinDepth {
		return twinErr("%s: nesting is deeper than %d levels", path, MaxTwinDepth)
	}
	for k, v := range obj {
		if err := ValidPropertyName(k); err != nil {
			return twinErr("%s: %v", path, err)
		}
		if err := checkTwinValue(path+"."+k, v, depth); err != nil {
			return err
		}
	}
	return nil
}

// checkTwinValue checks v, a member of a container at depth.
func checkTwinValue(path string, v any, depth int) error {
	switch x := v.(type) {
	case nil, bool:
	case string:
		if len(x) > MaxStringValueBytes {
			return twinErr("%s: the string is %d bytes; the limit is %d", path, len(x), MaxStringValueBytes)
		}
		if !utf8.ValidString(x) {
			return twinErr("%s: the string is not valid UTF-8", path)
		}
	case float64:
		if math.IsInf(x, 0) || math.IsNaN(x) {
			return twinErr("%s: %v is not a JSON number", path, x)
		}
		if x == math.Trunc(x) && (x > MaxTwinInteger || x < MinTwinInteger) {
			return twinErr("%s: %s is a whole number outside %d..%d", path, strconv.FormatFloat(x, 'g', -1, 64), int64(MinTwinInteger), int64(MaxTwinInteger))
		}
	case map[string]any:
		return checkTwinObject(path, x, depth+1)
	case []any:
		if depth+1 > MaxTwinDepth {
			return twinErr("%s: nesting is deeper than %d levels", path, MaxTwinDepth)
		}
		for i, e := range x {
			if err := checkTwinValue(path+"["+strconv.Itoa(i)+"]", e, depth+1); err != nil {
				return err
			}
		}
	default:
		return twinErr("%s: unsupported value of type %T", path, v)
	}
	return nil
}

// TwinSize is what IoT Hub charges a section against its limit: the sum
// over its members of the key's length plus the value's, strings and keys
// counted in characters other than control characters, numbers as 8 bytes,
// booleans as 4, objects and arrays by what they hold. A null member counts
// nothing: it deletes, and a stored section holds none.
func TwinSize(v any) int {
	switch x := v.(type) {
	case map[string]any:
		n := 0
		for k, e := range x {
			if e != nil {
				n += charCount(k) + TwinSize(e)
			}
		}
		return n
	case []any:
		n := 0
		for _, e := range x {
			n += TwinSize(e)
		}
		return n
	case string:
		return charCount(x)
	case float64:
		return 8
	case bool:
		return 4
	}
	return 0
}

func charCount(s string) int {
	n := 0
	for _, r := range s {
		if !unicode.IsControl(r) {
			n++
		}
	}
	return n
}

// CheckTwinSize refuses a section larger than its limit. The limit applies
// to the section an operation leaves; a patch alone over the limit leaves
// a section over it too, whatever the twin held, since every member it sets
// ends up in the result.
func CheckTwinSize(s TwinSection, v map[string]any) error {
	if n := TwinSize(v); n > s.MaxBytes() {
		return twinErr("%s would be %d bytes; the limit is %d bytes", s, n, s.MaxBytes())
	}
	return nil
}

// ParseTwinSection decodes and checks a patch of one section, such as a
// device's reported-properties patch: one JSON object that passes
// CheckTwinSection and is not alone over the section's limit.
func ParseTwinSection(s TwinSection, raw []byte) (map[string]any, error) {
	v, err := DecodeTwinJSON(raw)
	if err != nil {
		return nil, err
	}
	m, ok := v.(map[string]any)
	if !ok || m == nil {
		return nil, twinErr("the %s patch must be one JSON object", s)
	}
	if err := checkSection(s, m); err != nil {
		return nil, err
	}
	return m, nil
}

func checkSection(s TwinSection, m map[string]any) error {
	if err := CheckTwinSection(s, m); err != nil {
		return err
	}
	return CheckTwinSize(s, m)
}

// TwinPatch is a service-side twin patch or replacement whose sections have
// passed the twin rules: tags and desired properties. Only ParseTwinPatch
// makes a non-empty one, so whoever holds one may apply it without checking
// it again; the zero TwinPatch changes nothing. Its maps are shared and
// must only be read: whoever applies it copies what it keeps.
type TwinPatch struct {
	tags, desired map[string]any
}

// Tags is the tags patch, nil if the patch has none.
func (p TwinPatch) Tags() map[string]any { return p.tags }

// Desired is the desired-properties patch, nil if the patch has none.
func (p TwinPatch) Desired() map[string]any { return p.desired }

// ParseTwinPatch reads a service twin patch or replacement,
// {"tags":{...},"properties":{"desired":{...}}}, and checks both sections
// (CheckTwinSection, and CheckTwinSize of the patch alone). Other members
// (deviceId, etag, status, ... when an SDK sends a whole twin) are ignored,
// as are the read-only $metadata and $version of a fetched twin sent back.
// An empty or $-only "reported" is tolerated, since the Node SDK's job
// sample sends one; anything else in it is refused: reported properties
// belong to the device. Errors are ArgumentInvalid.
func ParseTwinPatch(raw []byte) (TwinPatch, error) {
	v, err := DecodeTwinJSON(raw)
	if err != nil {
		return TwinPatch{}, err
	}
	doc, ok := v.(map[string]any)
	if !ok || doc == nil {
		return TwinPatch{}, twinErr("the twin patch must be one JSON object")
	}
	var p TwinPatch
	if v := doc["tags"]; v != nil {
		if p.tags, ok = v.(map[string]any); !ok {
			return TwinPatch{}, twinErr("tags must be a JSON object")
		}
	}
	if v := doc["properties"]; v != nil {
		props, ok := v.(map[string]any)
		if !ok {
			return TwinPatch{}, twinErr("properties must be a JSON object")
		}
		if v := props["desired"]; v != nil {
			if p.desired, ok = v.(map[string]any); !ok {
				return TwinPatch{}, twinErr("properties.desired must be a JSON object")
			}
			p.desired = withoutReadOnly(p.desired)
		}
		if v := props["reported"]; v != nil {
			rep, ok := v.(map[string]any)
			if !ok || len(withoutReadOnly(rep)) > 0 {
				return TwinPatch{}, twinErr("properties.reported can only be changed by the device")
			}
		}
	}
	return NewTwinPatch(p.tags, p.desired)
}

// NewTwinPatch checks already decoded tags and desired patches, either of
// which may be nil, as ParseTwinPatch does, and returns them as a
// TwinPatch. The maps then belong to the patch and must not be changed.
// Strings that a decoder has already repaired cannot be seen here: decode
// twin JSON with DecodeTwinJSON.
func NewTwinPatch(tags, desired map[string]any) (TwinPatch, error) {
	if tags != nil {
		if err := checkSection(TwinTags, tags); err != nil {
			return TwinPatch{}, err
		}
	}
	if desired != nil {
		if err := checkSection(TwinDesired, desired); err != nil {
			return TwinPatch{}, err
		}
	}
	return TwinPatch{tags: tags, desired: desired}, nil
}

// withoutReadOnly drops the read-only $metadata and $version members.
func withoutReadOnly(m map[string]any) map[string]any {
	_, a := m["$metadata"]
	_, b := m["$version"]
	if !a && !b {
		return m
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		if k != "$metadata" && k != "$version" {
			out[k] = v
		}
	}
	return out
}

// CheckJobCharacters applies the jobs rule on top of the twin rules: in a
// twin job, property names and non-empty string values may only hold
// US-ASCII printable characters other than $ ( ) < > @ , ; : \ " / [ ] ? =
// { } space and tab, the characters ValidMethodName allows. Errors are
// ArgumentInvalid.
func (p TwinPatch) CheckJobCharacters() error {
	if err := jobCharacters(TwinTags.String(), p.tags); err != nil {
		return err
	}
	return jobCharacters(TwinDesired.String(), p.desired)
}

func jobCharacters(path string, v any) error {
	const allowed = "only US-ASCII printable characters except $ ( ) < > @ , ; : \\ \" / [ ] ? = { } space and tab"
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			if ValidMethodName(k) != nil {
				return twinErr("%s: property name %q has a character a job may not use: %s", path, k, allowed)
			}
			if err := jobCharacters(path+"."+k, e); err != nil {
				return err
			}
		}
	case []any:
		for i, e := range x {
			if err := jobCharacters(fmt.Sprintf("%s[%d]", path, i), e); err != nil {
				return err
			}
		}
	case string:
		if x != "" && ValidMethodName(x) != nil {
			return twinErr("%s: value %q has a character a job may not use: %s", path, x, allowed)
		}
	}
	return nil
}
