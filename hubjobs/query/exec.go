package query

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
)

// Source is what a query runs over: documents under ordered keys. The
// registry implements it for twins and the jobs engine for device-job rows.
type Source interface {
	// Scan calls fn for each document in ascending key order, starting
	// strictly after key after ("" = from the start), until fn returns false.
	Scan(after string, fn func(key string, doc map[string]any) bool)
	// Get returns the document stored under key.
	Get(key string) (map[string]any, bool)
}

// Page is one page of results.
type Page struct {
	Items []any
	// Continuation is "" on the last page.
	Continuation string
	ItemType     string
}

// DefaultPageSize and MaxPageSize bound x-ms-max-item-count (iothub.md §4.5).
const (
	DefaultPageSize = 100
	MaxPageSize     = 1000
)

type cursor struct {
	Query string `json:"q"`
	After string `json:"a,omitempty"`
	Done  int    `json:"n"`
}

func (q *Query) encodeCursor(c cursor) string {
	c.Query = q.src
	b, _ := json.Marshal(c)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (q *Query) decodeCursor(s string) (cursor, error) {
	var c cursor
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err == nil {
		err = json.Unmarshal(b, &c)
	}
	if err != nil || c.Query != q.src || c.Done < 0 {
		return cursor{}, &Error{Pos: 1, Msg: "the continuation token is not one this query returned"}
	}
	return c, nil
}

// Execute runs q over src, one page at a time. idx may be nil. pageSize <= 0
// means DefaultPageSize; it is capped at MaxPageSize.
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

// Select calls fn with the key of every matching document in key order,
// until fn returns false.
func (q *Query) Select(src Source, idx *Index, fn func(key string) bool) error {
	q.each(src, idx, "", func(key string, _ map[string]any) bool { return fn(key) })
	return nil
}

// each visits the matching documents after key after, in key order, through
// the index when the condition allows it.
func (q *Query) each(src Source, idx *Index, after string, fn func(key string, doc map[string]any) bool) {
	if keys, ok := q.candidates(idx); ok {
		start, _ := slices.BinarySearch(keys, after)
		if after != "" && start < len(keys) && keys[start] == after {
			start++
		}
		for _, k := range keys[start:] {
			doc, ok := src.Get(k)
			if ok && q.Match(doc) && !fn(k, doc) {
				return
			}
		}
		return
	}
	src.Scan(after, func(key string, doc map[string]any) bool {
		if !q.Match(doc) {
			return true
		}
		return fn(key, doc)
	})
}

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

type aggState struct {
	key    any
	count  []float64
	sum    []float64
	n      []float64
	minmax []any
}

func (q *Query) aggregate(src Source, idx *Index) []any {
	groups := map[string]*aggState{}
	var order []string
	q.each(src, idx, "", func(_ string, doc map[string]any) bool {
		var gk any = nil
		key := ""
		if q.groupBy != nil {
			gk = q.groupBy.eval(doc)
			if isUndef(gk) {
				return true
			}
			b, _ := json.Marshal(gk)
			key = string(b)
		}
		g := groups[key]
		if g == nil {
			n := len(q.proj)
			g = &aggState{key: gk, count: make([]float64, n), sum: make([]float64, n), n: make([]float64, n), minmax: make([]any, n)}
			groups[key] = g
			order = append(order, key)
		}
		for i, p := range q.proj {
			switch p.agg {
			case "COUNT":
				g.count[i]++
			case "SUM", "AVG":
				if v, ok := p.e.eval(doc).(float64); ok {
					g.sum[i] += v
					g.n[i]++
				}
			case "MIN", "MAX":
				v := p.e.eval(doc)
				if !isPrimitive(v) || v == nil {
					continue
				}
				if g.minmax[i] == nil {
					g.minmax[i] = v
					continue
				}
				if c, ok := order2(v, g.minmax[i]); ok && ((p.agg == "MIN" && c < 0) || (p.agg == "MAX" && c > 0)) {
					g.minmax[i] = v
				}
			}
		}
		return true
	})
	if q.groupBy == nil && len(groups) == 0 {
		groups[""] = &aggState{count: make([]float64, len(q.proj)), sum: make([]float64, len(q.proj)), n: make([]float64, len(q.proj)), minmax: make([]any, len(q.proj))}
		order = append(order, "")
	}
	sort.Strings(order)
	rows := make([]any, 0, len(groups))
	for _, k := range order {
		g := groups[k]
		row := map[string]any{}
		for i, p := range q.proj {
			switch p.agg {
			case "":
				row[p.alias] = g.key
			case "COUNT":
				row[p.alias] = g.count[i]
			case "SUM":
				row[p.alias] = g.sum[i]
			case "AVG":
				if g.n[i] > 0 {
					row[p.alias] = g.sum[i] / g.n[i]
				}
			case "MIN", "MAX":
				if g.minmax[i] != nil {
					row[p.alias] = g.minmax[i]
				}
			}
		}
		rows = append(rows, row)
	}
	return rows
}

func order2(a, b any) (int, bool) { return order(a, b) }

// Index maps indexed property values to the keys of the documents holding
// them: deviceId, jobId, jobType, status and every primitive under tags.
// It is safe for concurrent use.
type Index struct {
	mu sync.RWMutex
	m  map[string]map[string]map[string]struct{} // path → value → keys
}

// NewIndex returns an empty index.
func NewIndex() *Index { return &Index{m: map[string]map[string]map[string]struct{}{}} }

func indexEntries(doc map[string]any, fn func(path, val string)) {
	for _, k := range []string{"deviceId", "jobId", "jobType", "status"} {
		if v, ok := doc[k]; ok && isPrimitive(v) {
			fn(k, valueKey(v))
		}
	}
	if tags, ok := doc["tags"].(map[string]any); ok {
		var walk func(prefix string, m map[string]any)
		walk = func(prefix string, m map[string]any) {
			for k, v := range m {
				if sub, ok := v.(map[string]any); ok {
					walk(prefix+"."+k, sub)
				} else if isPrimitive(v) {
					fn(prefix+"."+k, valueKey(v))
				}
			}
		}
		walk("tags", tags)
	}
}

func valueKey(v any) string {
	switch x := v.(type) {
	case string:
		return "s" + x
	case float64:
		return fmt.Sprintf("n%v", x)
	case bool:
		return fmt.Sprintf("b%v", x)
	}
	return "z"
}

// Update replaces key's entries: old is the previous document (nil on insert).
func (ix *Index) Update(key string, old, new map[string]any) {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if old != nil {
		ix.removeLocked(key, old)
	}
	if new != nil {
		indexEntries(new, func(path, val string) {
			byVal := ix.m[path]
			if byVal == nil {
				byVal = map[string]map[string]struct{}{}
				ix.m[path] = byVal
			}
			keys := byVal[val]
			if keys == nil {
				keys = map[string]struct{}{}
				byVal[val] = keys
			}
			keys[key] = struct{}{}
		})
	}
}

// Remove drops key's entries for doc.
func (ix *Index) Remove(key string, doc map[string]any) {
	if doc == nil {
		return
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.removeLocked(key, doc)
}

func (ix *Index) removeLocked(key string, doc map[string]any) {
	indexEntries(doc, func(path, val string) {
		if keys := ix.m[path][val]; keys != nil {
			delete(keys, key)
			if len(keys) == 0 {
				delete(ix.m[path], val)
			}
		}
	})
}

func indexable(p *pathExpr) (string, bool) {
	path := strings.Join(p.segs, ".")
	switch {
	case path == "deviceId", path == "jobId", path == "jobType", path == "status":
		return path, true
	case len(p.segs) >= 2 && p.segs[0] == "tags":
		return path, true
	}
	return "", false
}

// lookup returns the keys holding any of values at path.
func (ix *Index) lookup(path string, values []any) []string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	var out []string
	for _, v := range values {
		if !isPrimitive(v) {
			continue
		}
		for k := range ix.m[path][valueKey(v)] {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// candidates picks the most selective indexed equality or IN among the
// top-level AND-conjuncts of the condition.
func (q *Query) candidates(idx *Index) ([]string, bool) {
	if idx == nil || q.where == nil {
		return nil, false
	}
	var best []string
	found := false
	var visit func(e expr)
	visit = func(e expr) {
		var keys []string
		ok := false
		switch x := e.(type) {
		case *logicExpr:
			if x.and {
				visit(x.l)
				visit(x.r)
			}
			return
		case *cmpExpr:
			if x.op != "=" {
				return
			}
			p, lit := x.l, x.r
			if _, isLit := p.(*literal); isLit {
				p, lit = lit, p
			}
			pe, ok1 := p.(*pathExpr)
			le, ok2 := lit.(*literal)
			if !ok1 || !ok2 {
				return
			}
			if path, ok3 := indexable(pe); ok3 {
				keys, ok = idx.lookup(path, []any{le.v}), true
			}
		case *inExpr:
			pe, ok1 := x.x.(*pathExpr)
			if !ok1 || x.neg {
				return
			}
			if path, ok3 := indexable(pe); ok3 {
				keys, ok = idx.lookup(path, x.list), true
			}
		}
		if ok && (!found || len(keys) < len(best)) {
			best, found = keys, true
		}
	}
	visit(q.where)
	return best, found
}
