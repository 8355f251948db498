package query

import (
	"encoding/base64"
	"encoding/json"
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
)

// Source is what a query runs over: documents under ordered keys. The
// registry implements it for twins (key deviceId) and module twins (key
// "deviceId/moduleId"), the jobs engine for device-job rows (key
// "jobId/deviceId"). Documents are JSON values as encoding/json decodes them,
// with canonical top-level names; queries never modify them.
type Source interface {
	// Scan calls fn for each document in ascending key order, starting
	// strictly after key after ("" = from the start), until fn returns false.
	Scan(after string, fn func(key string, doc map[string]any) bool)
	// Get returns the document stored under key.
	Get(key string) (map[string]any, bool)
}

// Page is one page of results (docs/iothub.md §4.5).
type Page struct {
	// Items are the documents (SELECT *), projected objects or aggregate rows.
	Items []any
	// Continuation is the x-ms-continuation token for the next page; "" on
	// the last page (the header must then be omitted).
	Continuation string
	// ItemType is the x-ms-item-type header value, as Query.ItemType.
	ItemType string
}

// DefaultPageSize and MaxPageSize bound x-ms-max-item-count (docs/iothub.md §4.5).
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

// cursor is the content of a continuation token.
type cursor struct {
	Hash  string `json:"h"`           // hash of the query's canonical text
	After string `json:"a,omitempty"` // last key returned (row queries)
	Done  int    `json:"n"`           // rows returned so far (TOP, aggregates)
}

func (q *Query) hash() string {
	h := fnv.New64a()
	h.Write([]byte(q.canon))
	return strconv.FormatUint(h.Sum64(), 36)
}

func (q *Query) encodeCursor(c cursor) string {
	c.Hash = q.hash()
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (q *Query) decodeCursor(s string) (cursor, error) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s, "="))
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	switch {
	case err != nil:
		return cursor{}, &Error{Pos: 1, Msg: "the continuation token is malformed"}
	case c.Hash != q.hash():
		return cursor{}, &Error{Pos: 1, Msg: "the continuation token belongs to a different query"}
	case c.Done < 0 || q.top >= 0 && c.Done > q.top:
		return cursor{}, &Error{Pos: 1, Msg: "the continuation token is not valid"}
	}
	return c, nil
}

// Execute runs q over src and returns one page. idx may be nil (then the
// condition is evaluated over every document). pageSize <= 0 means
// DefaultPageSize; it is capped at MaxPageSize. continuation is "" or the
// Continuation of a previous page of the same query; a token that does not
// decode, or belongs to another query, is an *Error (ErrInvalidQuery).
//
// Rows come out in key order, so a page picks up after the last key of the
// previous one even when documents were added or removed in between.
// Aggregates are computed over the whole result for every page.
func (q *Query) Execute(src Source, idx *Index, pageSize int, continuation string) (Page, error) {
	if pageSize <= 0 {
		pageSize = DefaultPageSize
	}
	pageSize = min(pageSize, MaxPageSize)
	var c cursor
	if continuation != "" {
		var err error
		if c, err = q.decodeCursor(continuation); err != nil {
			return Page{}, err
		}
	}
	page := Page{Items: []any{}, ItemType: q.ItemType()}
	if q.agg {
		rows := q.aggregate(src, idx)
		if q.top >= 0 && len(rows) > q.top {
			rows = rows[:q.top]
		}
		start := min(c.Done, len(rows))
		end := min(start+pageSize, len(rows))
		page.Items = append(page.Items, rows[start:end]...)
		if end < len(rows) {
			page.Continuation = q.encodeCursor(cursor{Done: end})
		}
		return page, nil
	}
	limit := pageSize
	if q.top >= 0 {
		limit = min(limit, q.top-c.Done)
		if limit <= 0 {
			return page, nil
		}
	}
	var lastKey string
	more := false
	q.each(src, idx, c.After, func(key string, doc map[string]any) bool {
		if len(page.Items) == limit {
			more = true
			return false
		}
		page.Items = append(page.Items, q.project(doc))
		lastKey = key
		return true
	})
	done := c.Done + len(page.Items)
	if more && (q.top < 0 || done < q.top) {
		page.Continuation = q.encodeCursor(cursor{After: lastKey, Done: done})
	}
	return page, nil
}

// Select calls fn with the key of every document the condition selects, in
// key order, until fn returns false. Projections, TOP and aggregates are
// ignored: it is how a job turns its queryCondition into a device set. The
// error is always nil today; it is there for sources that may fail.
func (q *Query) Select(src Source, idx *Index, fn func(key string) bool) error {
	q.each(src, idx, "", func(key string, _ map[string]any) bool { return fn(key) })
	return nil
}

// each visits the matching documents after key after, in key order, through
// the index when the condition allows it.
func (q *Query) each(src Source, idx *Index, after string, fn func(key string, doc map[string]any) bool) {
	if keys, ok := idx.candidates(q.where); ok {
		start := 0
		if after != "" {
			start, _ = slices.BinarySearch(keys, after)
			if start < len(keys) && keys[start] == after {
				start++
			}
		}
		for _, k := range keys[start:] {
			if doc, ok := src.Get(k); ok && q.Match(doc) && !fn(k, doc) {
				return
			}
		}
		return
	}
	if q.where == nil {
		src.Scan(after, fn)
		return
	}
	src.Scan(after, func(key string, doc map[string]any) bool {
		if !q.Match(doc) {
			return true
		}
		return fn(key, doc)
	})
}

// project shapes one result: the document itself for SELECT *, else an
// object keyed by alias; undefined values are left out.
func (q *Query) project(doc map[string]any) any {
	if q.star {
		return doc
	}
	out := make(map[string]any, len(q.proj))
	for _, p := range q.proj {
		if v := p.e.eval(doc); !isUndef(v) {
			out[p.alias] = v
		}
	}
	return out
}

type group struct {
	key  any // GROUP BY value; undefined when absent
	n    []float64
	sum  []float64
	best []any // MIN / MAX so far (nil: none)
	cnt  float64
}

// aggregate computes the aggregate rows: one per GROUP BY value (documents
// without the property form their own group, which has no key field), or
// a single row. Groups come out ordered by value: absent, null, booleans,
// numbers, strings, then arrays and objects.
func (q *Query) aggregate(src Source, idx *Index) []any {
	groups := map[string]*group{}
	newGroup := func(key any) *group {
		n := len(q.proj)
		return &group{key: key, n: make([]float64, n), sum: make([]float64, n), best: make([]any, n)}
	}
	q.each(src, idx, "", func(_ string, doc map[string]any) bool {
		var gk any = undefined
		id := ""
		if q.groupBy != nil {
			gk = normalize(q.groupBy.eval(doc))
			if !isUndef(gk) {
				b, _ := json.Marshal(gk)
				id = string(b)
			}
		}
		g := groups[id]
		if g == nil {
			g = newGroup(gk)
			groups[id] = g
		}
		g.cnt++
		for i, p := range q.proj {
			switch p.agg {
			case "SUM", "AVG":
				if v, ok := num(p.e.eval(doc)); ok {
					g.sum[i] += v
					g.n[i]++
				}
			case "MIN", "MAX":
				v := normalize(p.e.eval(doc))
				if v == nil || !isPrimitive(v) {
					continue
				}
				if g.best[i] == nil {
					g.best[i] = v
					continue
				}
				c := typedCompare(v, g.best[i])
				if p.agg == "MIN" && c < 0 || p.agg == "MAX" && c > 0 {
					g.best[i] = v
				}
			}
		}
		return true
	})
	if q.groupBy == nil && len(groups) == 0 {
		groups[""] = newGroup(undefined)
	}
	list := make([]*group, 0, len(groups))
	for _, g := range groups {
		list = append(list, g)
	}
	slices.SortFunc(list, func(a, b *group) int { return typedCompare(a.key, b.key) })
	rows := make([]any, 0, len(list))
	for _, g := range list {
		row := map[string]any{}
		for i, p := range q.proj {
			switch p.agg {
			case "":
				if !isUndef(g.key) {
					row[p.alias] = g.key
				}
			case "COUNT":
				row[p.alias] = g.cnt
			case "SUM":
				row[p.alias] = g.sum[i]
			case "AVG":
				if g.n[i] > 0 {
					row[p.alias] = g.sum[i] / g.n[i]
				}
			case "MIN", "MAX":
				if g.best[i] != nil {
					row[p.alias] = g.best[i]
				}
			}
		}
		rows = append(rows, row)
	}
	return rows
}

// typeRank orders values of different types: undefined, null, booleans,
// numbers, strings, arrays, objects.
func typeRank(v any) int {
	switch v.(type) {
	case undefinedT:
		return 0
	case nil:
		return 1
	case bool:
		return 2
	case float64:
		return 3
	case string:
		return 4
	case []any:
		return 5
	}
	return 6
}

// typedCompare is a total order over normalized JSON values.
func typedCompare(a, b any) int {
	ra, rb := typeRank(a), typeRank(b)
	if ra != rb {
		return ra - rb
	}
	if c, ok := order(a, b); ok {
		return c
	}
	if ra <= 1 {
		return 0
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	return strings.Compare(string(ja), string(jb))
}
