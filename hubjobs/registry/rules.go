package registry

import (
	"encoding/base64"
	"encoding/binary"
	"maps"
	"strconv"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

func argInvalid(format string, args ...any) error {
	return iothub.Errorf(iothub.CodeArgumentInvalid, format, args...)
}

// checkSize refuses a section an operation would leave over its limit.
func checkSize(s iothub.TwinSection, v map[string]any) error {
	return iothub.CheckTwinSize(s, v)
}

// merge applies patch to dst and returns the result without changing dst:
// null deletes, objects merge recursively, anything else replaces
// (docs/iothub.md §3.3, §3.5). Only the maps along patched paths are copied; the
// rest is shared, which is safe because published sections are never
// modified; patch must not be modified afterwards either. mergeMeta gives
// the metadata tree of the result.
func merge(dst, patch map[string]any) map[string]any {
	out := make(map[string]any, len(dst)+len(patch))
	maps.Copy(out, dst)
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(out, k)
		case map[string]any:
			cur, _ := out[k].(map[string]any)
			out[k] = merge(cur, pv)
		default:
			out[k] = v
		}
	}
	return out
}

// mergeMeta returns the metadata tree after patch: every node on a patched
// path gets $lastUpdated now (and $lastUpdatedVersion version when version >
// 0, i.e. for desired properties); deleted members lose their node
// (docs/iothub.md §3.1). m is not changed.
func mergeMeta(m *meta, patch map[string]any, now time.Time, version int64) *meta {
	out := &meta{Updated: now, Version: version}
	if m != nil && version == 0 {
		out.Version = m.Version
	}
	out.Children = make(map[string]*meta, len(patch))
	if m != nil {
		maps.Copy(out.Children, m.Children)
	}
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			delete(out.Children, k)
		case map[string]any:
			var cur *meta
			if m != nil {
				cur = m.Children[k]
			}
			out.Children[k] = mergeMeta(cur, pv, now, version)
		default:
			out.Children[k] = &meta{Updated: now, Version: version}
		}
	}
	if len(out.Children) == 0 {
		out.Children = nil
	}
	return out
}

// newMeta builds the metadata tree of a freshly written section.
func newMeta(v map[string]any, now time.Time, version int64) *meta {
	m := &meta{Updated: now, Version: version}
	if len(v) > 0 {
		m.Children = make(map[string]*meta, len(v))
	}
	for k, e := range v {
		if o, ok := e.(map[string]any); ok {
			m.Children[k] = newMeta(o, now, version)
		} else {
			m.Children[k] = &meta{Updated: now, Version: version}
		}
	}
	return m
}

// withoutNulls copies a section dropping null members: a replacement (PUT)
// may contain them and they mean "absent".
func withoutNulls(v map[string]any) map[string]any {
	out := make(map[string]any, len(v))
	for k, e := range v {
		switch x := e.(type) {
		case nil:
		case map[string]any:
			out[k] = withoutNulls(x)
		default:
			out[k] = x
		}
	}
	return out
}

// metaJSON renders a metadata tree as IoT Hub's $metadata object: every
// object node has $lastUpdated, desired nodes also $lastUpdatedVersion.
func metaJSON(m *meta, withVersion bool) map[string]any {
	out := make(map[string]any, len(m.Children)+2)
	out["$lastUpdated"] = formatTime(m.Updated)
	if withVersion && m.Version > 0 {
		out["$lastUpdatedVersion"] = m.Version
	}
	for k, c := range m.Children {
		out[k] = metaJSON(c, withVersion)
	}
	return out
}

// formatTime writes IoT Hub's ISO-8601 UTC with 7 fractional digits, or the
// unset time "0001-01-01T00:00:00Z" (docs/iothub.md §3.1).
func formatTime(t time.Time) string {
	if t.IsZero() {
		return zeroTime
	}
	return t.UTC().Format("2006-01-02T15:04:05.0000000Z")
}

// twinEtag is base64 of an 8-byte big-endian counter: 1 is "AAAAAAAAAAE=" (docs/iothub.md §3.1).
func twinEtag(n int64) string {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(n))
	return base64.StdEncoding.EncodeToString(b[:])
}

// deviceEtag is base64 of a decimal string: "NTgwMDg5MDAz" is 580089003 (docs/iothub.md §3.1, §4.3).
func deviceEtag(n int64) string {
	return base64.StdEncoding.EncodeToString(strconv.AppendInt(nil, n, 10))
}

// etagMatches reports whether an If-Match value allows a write to an entity
// whose etag is current: empty, * and "*" match anything; other values are
// compared with their quotes stripped (docs/iothub.md §3.6).
func etagMatches(ifMatch, current string) bool {
	v := trimSpace(ifMatch)
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		v = v[1 : len(v)-1]
	}
	return v == "" || v == "*" || v == current
}

func trimSpace(s string) string {
	for len(s) > 0 && (s[0] == ' ' || s[0] == '\t') {
		s = s[1:]
	}
	for len(s) > 0 && (s[len(s)-1] == ' ' || s[len(s)-1] == '\t') {
		s = s[:len(s)-1]
	}
	return s
}

// dotNetEpochTicks is 1970-01-01 in .NET ticks (100 ns since 0001-01-01):
// generation ids look like ticks (docs/iothub.md §4.3).
const dotNetEpochTicks = 621355968000000000

func ticks(t time.Time) int64 { return t.UnixNano()/100 + dotNetEpochTicks }
