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
func checkParsed(t *testing.T, s string, q *Query, err error, parse func(string) (*Query, error), fx fixtures) {
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
	src, idx := fx.src[q.From()], fx.idx[q.From()]
	scan, _ := runAll(t, q, src, nil, 1000)
	indexed, _ := runAll(t, q, src, idx, 1000)
	paged, _ := runAll(t, q, src, idx, 2)
	if a, b, c := jsonOf(scan), jsonOf(indexed), jsonOf(paged); a != b || a != c {
		t.Fatalf("%q: results differ\nscan    %s\nindexed %s\npaged   %s", s, a, b, c)
	}
}

// fixtures are the sources and indexes of every collection.
type fixtures struct {
	src map[Collection]*memSource
	idx map[Collection]*Index
}

func allFixtures(f *testing.F) fixtures {
	fx := fixtures{src: map[Collection]*memSource{}, idx: map[Collection]*Index{}}
	for _, c := range []Collection{Devices, Modules, Jobs} {
		fx.src[c] = fixture(f, c)
		fx.idx[c] = fx.src[c].index()
	}
	return fx
}

func FuzzParse(f *testing.F) {
	for _, s := range seeds() {
		f.Add(s)
	}
	fx := allFixtures(f)
	f.Fuzz(func(t *testing.T, s string) {
		q, err := Parse(s)
		checkParsed(t, s, q, err, Parse, fx)
	})
}

func FuzzCondition(f *testing.F) {
	for _, s := range seeds() {
		f.Add(s)
	}
	fx := allFixtures(f)
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseCondition(s)
		checkParsed(t, s, q, err, ParseCondition, fx)
		if err == nil {
			src, idx := fx.src[q.From()], fx.idx[q.From()]
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
