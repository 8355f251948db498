package query

import (
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
)

// synthetic builds n twins: dev-000000..; building "40".."44"; floor 1..7;
// reported n = i.
func synthetic(n int) *memSource {
	docs := make([]map[string]any, n)
	for i := range docs {
		docs[i] = syntheticTwin(i)
	}
	return newMem(docs, func(d map[string]any) string { return d["deviceId"].(string) })
}

func syntheticTwin(i int) map[string]any {
	return map[string]any{
		"deviceId":         fmt.Sprintf("dev-%06d", i),
		"status":           "enabled",
		"connectionState":  []string{"Connected", "Disconnected"}[i%2],
		"lastActivityTime": "2026-11-01T10:00:00Z",
		"version":          float64(2 + i%3),
		"tags":             map[string]any{"building": fmt.Sprint(40 + i%5), "floor": float64(1 + i%7), "site": map[string]any{"zone": fmt.Sprint("z", i%11)}},
		"properties": map[string]any{
			"reported": map[string]any{"fw": "1.0", "n": float64(i), "$version": float64(1)},
			"desired":  map[string]any{"$version": float64(1)},
		},
	}
}

func TestPaging(t *testing.T) {
	src := synthetic(250)
	idx := src.index()
	for _, text := range []string{
		"SELECT * FROM devices",
		"SELECT * FROM devices WHERE status = 'enabled'",
		"SELECT * FROM devices WHERE status = 'enabled' AND version >= 2",
		"SELECT deviceId FROM devices WHERE tags.floor >= 1",
		"SELECT properties.reported.n AS n, COUNT() AS c FROM devices GROUP BY properties.reported.n",
		"SELECT TOP 250 * FROM devices",
		"SELECT TOP 1000 deviceId FROM devices",
	} {
		q, err := Parse(text)
		if err != nil {
			t.Fatal(err)
		}
		for _, ix := range []*Index{nil, idx} {
			var sizes []int
			cont := ""
			seen := map[string]bool{}
			for range 10 {
				page, err := q.Execute(src, ix, 100, cont)
				if err != nil {
					t.Fatal(err)
				}
				sizes = append(sizes, len(page.Items))
				for _, it := range page.Items {
					k := jsonOf(it.(map[string]any)["deviceId"]) + jsonOf(it.(map[string]any)["n"])
					if seen[k] {
						t.Fatalf("%s: %s returned twice", text, k)
					}
					seen[k] = true
				}
				if page.Continuation == "" {
					break
				}
				cont = page.Continuation
			}
			if fmt.Sprint(sizes) != "[100 100 50]" {
				t.Errorf("%s (index %v): page sizes %v", text, ix != nil, sizes)
			}
		}
	}
}

func TestPagingTopAndSizes(t *testing.T) {
	src := synthetic(250)
	tests := []struct {
		q        string
		pageSize int
		want     string
	}{
		{"SELECT TOP 150 * FROM devices", 100, "[100 50]"},
		{"SELECT TOP 200 * FROM devices", 100, "[100 100]"},
		{"SELECT TOP 7 * FROM devices", 3, "[3 3 1]"},
		{"SELECT TOP 0 * FROM devices", 3, "[0]"},
		{"SELECT * FROM devices", 0, "[100 100 50]"},
		{"SELECT * FROM devices", -5, "[100 100 50]"},
		{"SELECT * FROM devices", 5000, "[250]"},
		{"SELECT * FROM devices WHERE tags.nope = 1", 10, "[0]"},
		{"SELECT COUNT() AS n FROM devices", 1, "[1]"},
		{"SELECT TOP 3 tags.floor, COUNT() AS n FROM devices GROUP BY tags.floor", 2, "[2 1]"},
	}
	for _, tt := range tests {
		q, err := Parse(tt.q)
		if err != nil {
			t.Fatal(err)
		}
		var sizes []int
		cont := ""
		for range 10 {
			page, err := q.Execute(src, nil, tt.pageSize, cont)
			if err != nil {
				t.Fatal(err)
			}
			sizes = append(sizes, len(page.Items))
			if cont = page.Continuation; cont == "" {
				break
			}
		}
		if got := fmt.Sprint(sizes); got != tt.want {
			t.Errorf("%s with page size %d: pages %s, want %s", tt.q, tt.pageSize, got, tt.want)
		}
	}
	big := synthetic(2500)
	q, _ := Parse("SELECT * FROM devices")
	if p, _ := q.Execute(big, nil, 5000, ""); len(p.Items) != MaxPageSize || p.Continuation == "" {
		t.Errorf("page size is not capped at %d: %d items", MaxPageSize, len(p.Items))
	}
}

// Pages continue after the last key returned, whatever changed in between.
func TestPagingIsStableUnderChanges(t *testing.T) {
	src := synthetic(30)
	idx := src.index()
	for _, ix := range []*Index{nil, idx} {
		q, _ := Parse("SELECT * FROM devices WHERE status = 'enabled'")
		p1, _ := q.Execute(src, ix, 10, "")
		// Insert before the cursor, delete the next row, add one after it.
		for _, i := range []int{1000, 2000} {
			d := syntheticTwin(i)
			k := d["deviceId"].(string)
			if i == 1000 {
				k = "dev-000000a"
				d["deviceId"] = k
			}
			src.put(k, d)
			idx.Update(k, nil, d)
		}
		src.del("dev-000010")
		idx.Remove("dev-000010", nil)
		rest, _ := runAll(t, q, src, ix, 10)
		_ = p1
		var got []string
		for _, it := range rest {
			got = append(got, it.(map[string]any)["deviceId"].(string))
		}
		page2, _ := q.Execute(src, ix, 10, p1.Continuation)
		first := page2.Items[0].(map[string]any)["deviceId"]
		if first != "dev-000011" {
			t.Errorf("index %v: page 2 starts at %v, want dev-000011", ix != nil, first)
		}
		if !slices.Contains(got, "dev-002000") || slices.Contains(got, "dev-000010") {
			t.Errorf("index %v: rows %v", ix != nil, got)
		}
		src = synthetic(30)
		idx = src.index()
	}
}

func TestContinuationErrors(t *testing.T) {
	src := synthetic(30)
	q, _ := Parse("SELECT TOP 20 * FROM devices")
	p1, err := q.Execute(src, nil, 10, "")
	if err != nil || p1.Continuation == "" {
		t.Fatal(err)
	}
	// The same query text (even spelled differently) accepts the token.
	same, _ := Parse("select top 20 * from DEVICES")
	if p, err := same.Execute(src, nil, 10, p1.Continuation); err != nil || len(p.Items) != 10 {
		t.Errorf("equivalent query: %v, %d items", err, len(p.Items))
	}
	other, _ := Parse("SELECT * FROM devices WHERE status = 'x'")
	forged := base64.RawURLEncoding.EncodeToString([]byte(fmt.Sprintf(`{"h":%q,"n":50}`, q.hash())))
	for _, tt := range []struct {
		q     *Query
		token string
		want  string
	}{
		{q, "not base64!", "continuation token is malformed"},
		{q, base64.RawURLEncoding.EncodeToString([]byte("{not json")), "continuation token is malformed"},
		{other, p1.Continuation, "continuation token belongs to a different query"},
		{q, forged, "continuation token is not valid"},
	} {
		_, err := tt.q.Execute(src, nil, 10, tt.token)
		var qe *Error
		if !errors.Is(err, ErrInvalidQuery) || !errors.As(err, &qe) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("token %q: error %v, want %q", tt.token, err, tt.want)
		}
	}
}

// The index follows inserts, updates (even when the caller passes no old
// document) and removals.
func TestIndexMaintenance(t *testing.T) {
	src := synthetic(100)
	idx := src.index()
	count := func(cond string) int {
		t.Helper()
		q, err := ParseCondition(cond)
		if err != nil {
			t.Fatal(err)
		}
		if _, ok := idx.candidates(q.where); !ok {
			t.Fatalf("%s is not answered by the index", cond)
		}
		n := 0
		_ = q.Select(src, idx, func(string) bool { n++; return true })
		return n
	}
	if n := count("tags.building = '43' AND tags.floor = 3"); n != 3 {
		t.Errorf("building 43 floor 3: %d", n)
	}
	old := src.docs["dev-000001"]
	changed := map[string]any{"deviceId": "dev-000001", "status": "disabled", "tags": map[string]any{"building": "99", "flag": true, "zero": 0.0}}
	src.put("dev-000001", changed)
	idx.Update("dev-000001", nil, changed) // no old document: the index remembers
	for cond, want := range map[string]int{
		"tags.building = '99'":                               1,
		"tags.building = '41'":                               19,
		"status = 'disabled'":                                1,
		"status = 'enabled'":                                 99,
		"tags.flag = true":                                   1,
		"tags.zero = -0":                                     1,
		"tags.site.zone = 'z1'":                              8,
		"deviceId IN ['dev-000001', 'dev-000002', 'nope']":   2,
		"deviceId = 'dev-000001' OR tags.building = '99'":    1,
		"deviceId = 'dev-000002' OR deviceId = 'dev-000003'": 2,
		"tags.building = '41' AND deviceId = 'dev-000001'":   0,
		"tags.building = 41":                                 0,
		"tags.building = null":                               0,
	} {
		if n := count(cond); n != want {
			t.Errorf("%s: %d, want %d", cond, n, want)
		}
	}
	idx.Update("dev-000001", changed, old)
	src.put("dev-000001", old)
	if n := count("tags.building = '99'"); n != 0 {
		t.Errorf("restored document still indexed under 99: %d", n)
	}
	idx.Remove("dev-000002", nil)
	src.del("dev-000002")
	if n := count("deviceId IN ['dev-000001', 'dev-000002']"); n != 1 || idx.Len() != 99 {
		t.Errorf("after remove: %d selected, %d indexed", n, idx.Len())
	}
	idx.Update("dev-000003", src.docs["dev-000003"], nil)
	if idx.Len() != 98 {
		t.Errorf("Update with nil new leaves %d keys", idx.Len())
	}
}

// The index is only a shortcut: for any condition the results with and
// without it are the same, including after random changes.
func TestIndexAgreesWithScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	src := synthetic(400)
	idx := src.index()
	conds := []string{
		"tags.building = '43'", "tags.floor = 3 AND tags.building IN ['40', '41']", "deviceId IN ['dev-000005', 'dev-000399', 'x']",
		"tags.floor = 2 OR tags.building = '44'", "tags.floor = 2 OR version = 3", "status = 'enabled' AND NOT tags.floor = 1",
		"tags.site.zone = 'z3' AND properties.reported.n > 100", "tags.building = '40' AND (tags.floor = 1 OR tags.floor = 2)",
		"tags.new = true", "tags.building = '43' AND false", "status = 'disabled'",
	}
	for round := range 5 {
		for i := range 60 {
			k := fmt.Sprintf("dev-%06d", rng.IntN(450))
			old := src.docs[k]
			switch rng.IntN(3) {
			case 0:
				if old != nil {
					src.del(k)
					idx.Remove(k, old)
				}
			default:
				d := syntheticTwin(rng.IntN(1000))
				d["deviceId"] = k
				if rng.IntN(2) == 0 {
					d["status"] = "disabled"
					d["tags"].(map[string]any)["new"] = true
				}
				src.put(k, d)
				idx.Update(k, old, d)
			}
			_ = i
		}
		for _, c := range conds {
			q, _ := Parse("SELECT deviceId FROM devices WHERE " + c)
			a, _ := runAll(t, q, src, nil, 37)
			b, _ := runAll(t, q, src, idx, 37)
			if jsonOf(a) != jsonOf(b) {
				t.Errorf("round %d, %s: index gives %d rows, scan %d", round, c, len(b), len(a))
			}
		}
	}
}

// Readers running beside writers always see the keys whose indexed values
// did not change.
func TestIndexConcurrentUse(t *testing.T) {
	src := synthetic(500)
	idx := src.index()
	q, _ := ParseCondition("tags.building = '42' AND tags.floor IN [1, 2, 3]")
	want := 0
	_ = q.Select(src, idx, func(string) bool { want++; return true })
	var wg sync.WaitGroup
	bad := make([]int, 4)
	for w := range 4 {
		wg.Go(func() {
			for i := range 300 {
				if w%2 == 0 {
					// Move a building-40 twin to building 41 and back.
					k := fmt.Sprintf("dev-%06d", (i*5+w*50)%500)
					d := src.docs[k]
					moved := syntheticTwin(1)
					idx.Update(k, d, moved)
					idx.Update(k, moved, d)
					continue
				}
				n := 0
				_ = q.Select(src, idx, func(string) bool { n++; return true })
				if n != want {
					bad[w]++
				}
			}
		})
	}
	wg.Wait()
	if bad[1]+bad[3] != 0 {
		t.Errorf("readers saw a wrong result %d times", bad[1]+bad[3])
	}
}

func TestIntersectUnion(t *testing.T) {
	a := []string{"a", "c", "e", "g"}
	b := []string{"b", "c", "d", "g", "h"}
	if got := intersect(a, b); fmt.Sprint(got) != "[c g]" {
		t.Errorf("intersect = %v", got)
	}
	long := make([]string, 1000)
	for i := range long {
		long[i] = fmt.Sprintf("k%04d", i)
	}
	if got := intersect([]string{"k0003", "k0500", "x"}, long); fmt.Sprint(got) != "[k0003 k0500]" {
		t.Errorf("intersect short/long = %v", got)
	}
	if got := union(a, b, nil); fmt.Sprint(got) != "[a b c d e g h]" {
		t.Errorf("union = %v", got)
	}
	if got := intersect(nil, b); len(got) != 0 {
		t.Errorf("intersect with empty = %v", got)
	}
}

// TestAddKeysMatchesUpdate: AddKeys leaves the index exactly as Update key
// by key would, whether its keys are new or indexed already, in order or
// not, and whether their entries' postings exist, are small or are large.
func TestAddKeysMatchesUpdate(t *testing.T) {
	doc := func(i, version int) map[string]any {
		d := syntheticTwin(i)
		if version > 0 {
			d["tags"].(map[string]any)["building"] = fmt.Sprint("changed", i%3)
		}
		return d
	}
	key := func(i int) string { return fmt.Sprintf("dev-%06d", i) }
	type batch struct {
		ids     []int
		version int
	}
	var first, reversed, mixed []int
	for i := range 120 {
		first = append(first, i)
	}
	for i := 199; i >= 120; i-- {
		reversed = append(reversed, i)
	}
	for i := 0; i < 200; i += 7 {
		mixed = append(mixed, i) // all indexed already, with changed tags
	}
	batches := []batch{{first, 0}, {reversed, 0}, {mixed, 1}, {[]int{3}, 0}}

	byUpdate, byAddKeys := NewIndex(), NewIndex()
	for _, b := range batches {
		keys := make([]string, len(b.ids))
		for n, i := range b.ids {
			keys[n] = key(i)
			byUpdate.Update(key(i), nil, doc(i, b.version))
		}
		byAddKeys.AddKeys(keys, func(n int) map[string]any { return doc(b.ids[n], b.version) })
	}
	if len(byUpdate.posts) != len(byAddKeys.posts) || !maps.EqualFunc(byUpdate.byKey, byAddKeys.byKey, slices.Equal) {
		t.Fatalf("%d postings and %d keys, want %d and %d", len(byAddKeys.posts), len(byAddKeys.byKey), len(byUpdate.posts), len(byUpdate.byKey))
	}
	for e, p := range byUpdate.posts {
		q := byAddKeys.posts[e]
		if q == nil {
			t.Errorf("%v: no posting", e)
			continue
		}
		if want, got := p.keys(), q.keys(); !slices.Equal(got, want) || q.n != p.n {
			t.Errorf("%v: keys %v (n %d), want %v (n %d)", e, got, q.n, want, p.n)
		}
	}
}
