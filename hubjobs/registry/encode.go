package registry

import (
	"encoding/base64"
	"encoding/json"
	"strconv"
	"time"
	"unicode/utf8"
)

// appendRecord appends rec's stored form, the JSON that encodeRecord used to
// get from encoding/json (decodeRecord reads both), without reflection or
// sorted map keys: every twin write encodes a whole record, and
// encoding/json made that a tenth of a twin job's CPU. Values inside the
// sections are what JSON decoding produces (nil, bool, float64, string,
// []any, map[string]any); anything else goes through encoding/json.
func appendRecord(b []byte, rec *record) ([]byte, error) {
	b = append(b, `{"f":`...)
	b = strconv.AppendInt(b, recordFormat, 10)
	b = appendKey(b, "id")
	b = appendString(b, rec.ID)
	if rec.Module != "" {
		b = appendKey(b, "module")
		b = appendString(b, rec.Module)
	}
	if rec.ManagedBy != "" {
		b = appendKey(b, "managedBy")
		b = appendString(b, rec.ManagedBy)
	}
	b = appendKey(b, "gen")
	b = appendString(b, rec.Generation)
	b = appendKey(b, "etag")
	b = strconv.AppendInt(b, rec.Etag, 10)
	b = appendKey(b, "status")
	b = appendString(b, rec.Status)
	if rec.StatusReason != nil {
		b = appendKey(b, "statusReason")
		b = appendString(b, *rec.StatusReason)
	}
	b = appendKey(b, "statusUpdated")
	b = appendTime(b, rec.StatusUpdated)
	b = appendKey(b, "primary")
	b = appendBytes(b, rec.Primary)
	b = appendKey(b, "secondary")
	b = appendBytes(b, rec.Secondary)
	b = appendAuth(b, rec)
	if rec.IotEdge {
		b = append(b, `,"iotEdge":true`...)
	}
	b = appendKey(b, "twinVersion")
	b = strconv.AppendInt(b, rec.TwinVersion, 10)
	b = appendKey(b, "twinEtag")
	b = strconv.AppendInt(b, rec.TwinEtag, 10)
	var err error
	if len(rec.Tags) > 0 {
		b = appendKey(b, "tags")
		if b, err = appendValue(b, rec.Tags); err != nil {
			return nil, err
		}
	}
	b = appendKey(b, "desired")
	if b, err = appendValue(b, rec.Desired); err != nil {
		return nil, err
	}
	b = appendKey(b, "reported")
	if b, err = appendValue(b, rec.Reported); err != nil {
		return nil, err
	}
	b = appendKey(b, "desiredVersion")
	b = strconv.AppendInt(b, rec.DesiredVersion, 10)
	b = appendKey(b, "reportedVersion")
	b = strconv.AppendInt(b, rec.ReportedVersion, 10)
	b = appendKey(b, "desiredMeta")
	b = appendMeta(b, rec.DesiredMeta)
	b = appendKey(b, "reportedMeta")
	b = appendMeta(b, rec.ReportedMeta)
	return append(b, '}'), nil
}

// appendKey appends `,"key":`; keys here need no escaping.
func appendKey(b []byte, key string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	return append(b, '"', ':')
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

func appendBytes(b []byte, p []byte) []byte {
	if p == nil {
		return append(b, "null"...)
	}
	b = append(b, '"')
	b = base64.StdEncoding.AppendEncode(b, p)
	return append(b, '"')
}

func appendMeta(b []byte, m *meta) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	b = append(b, `{"u":`...)
	b = appendTime(b, m.Updated)
	if m.Version != 0 {
		b = append(b, `,"v":`...)
		b = strconv.AppendInt(b, m.Version, 10)
	}
	if len(m.Children) > 0 {
		b = append(b, `,"c":{`...)
		first := true
		for k, c := range m.Children {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendString(b, k)
			b = append(b, ':')
			b = appendMeta(b, c)
		}
		b = append(b, '}')
	}
	return append(b, '}')
}

// appendValue appends a decoded JSON value.
func appendValue(b []byte, v any) ([]byte, error) {
	var err error
	switch x := v.(type) {
	case nil:
		return append(b, "null"...), nil
	case bool:
		return strconv.AppendBool(b, x), nil
	case string:
		return appendString(b, x), nil
	case float64:
		return appendFloat(b, x)
	case map[string]any:
		if x == nil {
			return append(b, "null"...), nil
		}
		b = append(b, '{')
		first := true
		for k, e := range x {
			if !first {
				b = append(b, ',')
			}
			first = false
			b = appendString(b, k)
			b = append(b, ':')
			if b, err = appendValue(b, e); err != nil {
				return nil, err
			}
		}
		return append(b, '}'), nil
	case []any:
		if x == nil {
			return append(b, "null"...), nil
		}
		b = append(b, '[')
		for i, e := range x {
			if i > 0 {
				b = append(b, ',')
			}
			if b, err = appendValue(b, e); err != nil {
				return nil, err
			}
		}
		return append(b, ']'), nil
	}
	j, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(b, j...), nil
}

// appendFloat writes f so that decoding gives f back; like encoding/json it
// refuses NaN and the infinities.
func appendFloat(b []byte, f float64) ([]byte, error) {
	if f != f || f > 1.7976931348623157e308 || f < -1.7976931348623157e308 {
		return nil, &json.UnsupportedValueError{Str: strconv.FormatFloat(f, 'g', -1, 64)}
	}
	return strconv.AppendFloat(b, f, 'g', -1, 64), nil
}

// appendString appends s as a JSON string. Invalid UTF-8 becomes U+FFFD,
// as encoding/json does.
func appendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
