package registry

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestEtagMatches(t *testing.T) {
	tests := []struct {
		ifMatch, current string
		want             bool
	}{
		{"", "AAAAAAAAAAE=", true},
		{"*", "AAAAAAAAAAE=", true},
		{`"*"`, "AAAAAAAAAAE=", true},
		{" \"*\" ", "AAAAAAAAAAE=", true},
		{"AAAAAAAAAAE=", "AAAAAAAAAAE=", true},
		{`"AAAAAAAAAAE="`, "AAAAAAAAAAE=", true},
		{`"AAAAAAAAAAI="`, "AAAAAAAAAAE=", false},
		{`"`, "AAAAAAAAAAE=", false},
		{`""`, "AAAAAAAAAAE=", true},
	}
	for _, tt := range tests {
		if got := etagMatches(tt.ifMatch, tt.current); got != tt.want {
			t.Errorf("etagMatches(%q, %q) = %v", tt.ifMatch, tt.current, got)
		}
	}
}

func TestEtagsAndTimes(t *testing.T) {
	tests := []struct{ got, want string }{
		{twinEtag(1), "AAAAAAAAAAE="},
		{twinEtag(7), "AAAAAAAAAAc="},
		{deviceEtag(580089003), "NTgwMDg5MDAz"},
		{formatTime(time.Time{}), "0001-01-01T00:00:00Z"},
		{formatTime(time.Date(2019, 12, 29, 0, 58, 49, 931526500, time.UTC)), "2019-12-29T00:58:49.9315265Z"},
		{formatTime(time.Date(2019, 12, 29, 1, 0, 0, 0, time.FixedZone("x", 3600))), "2019-12-29T00:00:00.0000000Z"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %s, want %s", tt.got, tt.want)
		}
	}
}

// TestMergeCopyOnWrite checks that merge and mergeMeta never change their
// inputs: published sections are shared with readers.
func TestMergeCopyOnWrite(t *testing.T) {
	t0, t1 := time.Unix(100, 0), time.Unix(200, 0)
	dst := map[string]any{"a": map[string]any{"b": 1.0, "c": 2.0}, "keep": map[string]any{"x": 1.0}}
	m := newMeta(dst, t0, 1)
	before, beforeMeta := fmt.Sprint(dst), fmt.Sprint(metaJSON(m, true))
	patch := map[string]any{"a": map[string]any{"b": nil, "d": 3.0}, "e": "new"}
	out := merge(dst, patch)
	om := mergeMeta(m, patch, t1, 2)
	if fmt.Sprint(dst) != before || fmt.Sprint(metaJSON(m, true)) != beforeMeta {
		t.Fatal("merge changed its input")
	}
	if got := fmt.Sprint(out); got != "map[a:map[c:2 d:3] e:new keep:map[x:1]]" {
		t.Errorf("merged %s", got)
	}
	if out["keep"].(map[string]any)["x"] != dst["keep"].(map[string]any)["x"] || om.Children["keep"] != m.Children["keep"] {
		t.Error("untouched subtrees are not shared")
	}
	mj := metaJSON(om, true)
	a := mj["a"].(map[string]any)
	if a["$lastUpdatedVersion"] != int64(2) || a["b"] != nil || a["c"].(map[string]any)["$lastUpdatedVersion"] != int64(1) ||
		a["d"].(map[string]any)["$lastUpdatedVersion"] != int64(2) || mj["$lastUpdatedVersion"] != int64(2) {
		t.Errorf("metadata %v", mj)
	}
}

func TestIDList(t *testing.T) {
	present := map[string]bool{}
	var l idList
	apply := func(ops string) string {
		for _, op := range strings.Fields(ops) {
			id := op[1:]
			if op[0] == '+' {
				present[id] = true
				l.add(id)
			} else {
				delete(present, id)
				l.remove()
			}
		}
		l.mergeLocked(func(id string) bool { return present[id] })
		return strings.Join(l.sorted, ",")
	}
	for _, tt := range []struct{ ops, want string }{
		{"+c +a +b", "a,b,c"},
		{"-b +d", "a,c,d"},
		{"-a +a +aa", "a,aa,c,d"},
		{"-d +d -d", "a,aa,c"},
		{"", "a,aa,c"},
	} {
		if got := apply(tt.ops); got != tt.want {
			t.Errorf("after %q: %s, want %s", tt.ops, got, tt.want)
		}
	}
}
