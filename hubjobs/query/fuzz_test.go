package query

import (
	"errors"
	"strings"
	"testing"
	"unicode/utf8"
)

// seeds collects every query and condition of the table tests.
func seeds() []string {
	var out []string
	for _, tt := range conditionTests {
		out = append(out, tt.where, "SELECT * FROM devices WHERE "+tt.where)
	}
	for _, tt := range specTests {
		out = append(out, tt.q)
	}
	for _, tt := range rawTests {
		out = append(out, tt.q)
	}
	for _, tt := range conditionOnlyTests {
		out = append(out, tt.cond)
	}
	for _, tt := range valueTests {
		out = append(out, tt.expr, "SELECT "+tt.expr+" AS v FROM devices")
	}
	for _, s := range errorTests {
		if len(s) < 500 {
			out = append(out, strings.TrimPrefix(s, "cond: "))
		}
	}
	return out
}

// checkParsed holds for every parse result: errors are positioned *Error
// values; a parsed query prints canonical text that parses to itself, and
// runs the same with and without the index, in one page or many.
func checkParsed(t *testing.T, s string, q *Query, err error, parse func(string) (*Query, error), src *memSource, idx *Index) {
	if err != nil {
		var qe *Error
		if !errors.As(err, &qe) || !errors.Is(err, ErrInvalidQuery) {
			t.Fatalf("%q: error %v (%T) is not a *Error matching ErrInvalidQuery", s, err, err)
		}
		if n := utf8.RuneCountInString(s); qe.Pos < 1 || qe.Pos > max(n+1, 8193) {
			t.Fatalf("%q: error position %d outside 1..%d: %v", s, qe.Pos, n+1, err)
		}
		return
	}
	canon := q.String()
	q2, err := parse(canon)
	if err != nil {
		if !strings.Contains(err.Error(), "the limit is") {
			t.Fatalf("%q: canonical text %q does not parse: %v", s, canon, err)
		}
	} else if q2.String() != canon {
		t.Fatalf("%q: canonical text is not stable: %q → %q", s, canon, q2.String())
	}
	scan, _ := runAll(t, q, src, nil, 1000)
	indexed, _ := runAll(t, q, src, idx, 1000)
	paged, _ := runAll(t, q, src, idx, 2)
	if a, b, c := jsonOf(scan), jsonOf(indexed), jsonOf(paged); a != b || a != c {
		t.Fatalf("%q: results differ\nscan    %s\nindexed %s\npaged   %s", s, a, b, c)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range seeds() {
		f.Add(s)
	}
	src := fixture(f, Devices)
	idx := src.index()
	f.Fuzz(func(t *testing.T, s string) {
		q, err := Parse(s)
		checkParsed(t, s, q, err, Parse, src, idx)
	})
}

func FuzzCondition(f *testing.F) {
	for _, s := range seeds() {
		f.Add(s)
	}
	src := fixture(f, Devices)
	idx := src.index()
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseCondition(s)
		checkParsed(t, s, q, err, ParseCondition, src, idx)
		if err == nil {
			var keys []string
			_ = q.Select(src, idx, func(k string) bool { keys = append(keys, k); return true })
			n := 0
			for _, k := range src.keys {
				if q.Match(src.docs[k]) {
					n++
				}
			}
			if n != len(keys) {
				t.Fatalf("%q: Select gives %d keys, Match %d", s, len(keys), n)
			}
		}
	})
}
