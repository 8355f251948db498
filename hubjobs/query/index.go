package query

import (
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Index maps the values of indexed properties to the keys of the documents
// holding them, so that a condition with a selective equality or IN does not
// scan every document. Indexed: deviceId, moduleId, jobId, jobType, status,
// and every primitive value under tags (at any depth).
//
// The index keeps its own copy of what it indexed under each key, so Update
// and Remove do not depend on the caller passing the exact old document.
// It is safe for concurrent use.
type Index struct {
	names []string // the top-level names indexed besides tags
	mu    sync.RWMutex
	posts map[entry]*posting
	byKey map[string][]entry // sorted entries of each key
}

// entry is one (path, value) pair; val is a typed encoding of the value.
type entry struct{ path, val string }

func entryLess(a, b entry) int {
	if c := strings.Compare(a.path, b.path); c != 0 {
		return c
	}
	return strings.Compare(a.val, b.val)
}

// posting holds the keys of one entry as a sorted snapshot plus pending
// changes, merged on the next lookup. Pending maps change only under the
// index's write lock; readers merge them under mu.
type posting struct {
	mu     sync.Mutex
	sorted []string // read-only once published
	adds   map[string]struct{}
	dels   map[string]struct{}
	n      int
}

// NewIndex returns an empty index.
func NewIndex() *Index { return NewIndexOn(indexedNames...) }

// NewIndexOn returns an empty index of the top-level names given (they
// must be among deviceId, moduleId, jobId, jobType and status) and of tags.
// A name left out is never looked up here: conditions on it scan. The jobs
// engine leaves out status, which changes twice for every device job.
func NewIndexOn(names ...string) *Index {
	return &Index{names: names, posts: map[entry]*posting{}, byKey: map[string][]entry{}}
}

// indexedNames are the top-level names indexed besides tags.
var indexedNames = []string{"deviceId", "moduleId", "jobId", "jobType", "status"}

// entriesOf lists doc's index entries, sorted and unique.
func (ix *Index) entriesOf(doc map[string]any) []entry {
	if doc == nil {
		return nil
	}
	var out []entry
	for _, k := range ix.names {
		if v, ok := doc[k]; ok {
			if val, ok := valueKey(v); ok {
				out = append(out, entry{k, val})
			}
		}
	}
	if tags, ok := doc["tags"].(map[string]any); ok {
		var walk func(prefix string, m map[string]any, depth int)
		walk = func(prefix string, m map[string]any, depth int) {
			for k, v := range m {
				if sub, ok := v.(map[string]any); ok {
					if depth < 32 {
						walk(prefix+"."+k, sub, depth+1)
					}
				} else if val, ok := valueKey(v); ok {
					out = append(out, entry{prefix + "." + k, val})
				}
			}
		}
		walk("tags", tags, 0)
	}
	slices.SortFunc(out, entryLess)
	return slices.Compact(out)
}

// valueKey encodes a primitive so that values equal under = (docs/iothub.md §6)
// have the same key.
func valueKey(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return "s" + x, true
	case bool:
		if x {
			return "t", true
		}
		return "f", true
	case nil:
		return "z", true
	}
	f, ok := toNumber(v)
	if !ok || math.IsNaN(f) {
		return "", false
	}
	if f == 0 {
		f = 0 // -0 = 0
	}
	return "n" + strconv.FormatFloat(f, 'g', -1, 64), true
}

// Update records key's new document; old is the previous one (nil on
// insert). The index diffs against what it stored for key, so only changed
// entries are touched; a nil new removes key.
func (ix *Index) Update(key string, old, new map[string]any) {
	_ = old // the index keeps its own record of key's entries
	next := ix.entriesOf(new)
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.setLocked(key, next)
}

// AddKeys indexes the documents of keys at once, doc(i) being keys[i]'s:
// what Update(keys[i], nil, doc(i)) does for each, under one lock. Entries
// that no key held before, such as the jobId and jobType of a job's new
// rows, get their keys as one sorted list instead of one by one.
func (ix *Index) AddKeys(keys []string, doc func(i int) map[string]any) {
	entries := make([][]entry, len(keys))
	for i := range keys {
		entries[i] = ix.entriesOf(doc(i))
	}
	ix.mu.Lock()
	defer ix.mu.Unlock()
	fresh := map[*posting]bool{} // created here: their sorted lists are still private
	for i, key := range keys {
		if _, ok := ix.byKey[key]; ok || len(entries[i]) == 0 {
			ix.setLocked(key, entries[i])
			continue
		}
		ix.byKey[key] = entries[i]
		for _, e := range entries[i] {
			p := ix.posts[e]
			switch {
			case p == nil:
				p = &posting{sorted: []string{key}, n: 1}
				ix.posts[e] = p
				fresh[p] = true
			case fresh[p]:
				p.sorted = append(p.sorted, key)
				p.n++
			default:
				ix.addLocked(e, key)
			}
		}
	}
	for p := range fresh {
		if !slices.IsSorted(p.sorted) {
			slices.Sort(p.sorted)
		}
	}
}

// Remove drops key from the index. doc is the removed document (it may be
// nil: the index knows what it stored under key).
func (ix *Index) Remove(key string, doc map[string]any) {
	_ = doc
	ix.mu.Lock()
	defer ix.mu.Unlock()
	ix.setLocked(key, nil)
}

// Len returns the number of keys indexed.
func (ix *Index) Len() int {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	return len(ix.byKey)
}

func (ix *Index) setLocked(key string, next []entry) {
	prev := ix.byKey[key]
	i, j := 0, 0
	for i < len(prev) || j < len(next) {
		var c int
		switch {
		case i == len(prev):
			c = 1
		case j == len(next):
			c = -1
		default:
			c = entryLess(prev[i], next[j])
		}
		switch {
		case c == 0:
			i++
			j++
		case c < 0:
			ix.delLocked(prev[i], key)
			i++
		default:
			ix.addLocked(next[j], key)
			j++
		}
	}
	if len(next) == 0 {
		delete(ix.byKey, key)
	} else {
		ix.byKey[key] = next
	}
}

// smallPosting is the size below which a posting takes a new key into a
// fresh sorted copy instead of its pending map (a device's deviceId posting
// holds one row per job).
const smallPosting = 16

func (ix *Index) addLocked(e entry, key string) {
	p := ix.posts[e]
	if p == nil {
		// No reader has seen this posting yet: start its snapshot directly
		// (most deviceId postings stay at one key and never need a map).
		ix.posts[e] = &posting{sorted: []string{key}, n: 1}
		return
	}
	p.n++
	if _, ok := p.dels[key]; ok {
		delete(p.dels, key)
		return
	}
	if p.adds == nil && p.dels == nil && len(p.sorted) < smallPosting {
		// A copy of a few keys costs less than a map; readers may hold the
		// old slice, so it is replaced, not changed.
		at, _ := slices.BinarySearch(p.sorted, key)
		p.sorted = slices.Insert(slices.Clip(p.sorted), at, key)
		return
	}
	if p.adds == nil {
		p.adds = map[string]struct{}{}
	}
	p.adds[key] = struct{}{}
}

func (ix *Index) delLocked(e entry, key string) {
	p := ix.posts[e]
	if p == nil {
		return
	}
	p.n--
	if p.n <= 0 {
		delete(ix.posts, e)
		return
	}
	if _, ok := p.adds[key]; ok {
		delete(p.adds, key)
		return
	}
	if p.dels == nil {
		p.dels = map[string]struct{}{}
	}
	p.dels[key] = struct{}{}
}

// keys returns the posting's sorted keys, merging pending changes first.
// Callers hold ix.mu for reading; the result must not be modified.
func (p *posting) keys() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.adds) == 0 && len(p.dels) == 0 {
		return p.sorted
	}
	adds := make([]string, 0, len(p.adds))
	for k := range p.adds {
		adds = append(adds, k)
	}
	slices.Sort(adds)
	out := make([]string, 0, p.n)
	i := 0
	for _, k := range p.sorted {
		if _, gone := p.dels[k]; gone {
			continue
		}
		for i < len(adds) && adds[i] < k {
			out = append(out, adds[i])
			i++
		}
		out = append(out, k)
	}
	out = append(out, adds[i:]...)
	p.sorted, p.adds, p.dels = out, nil, nil
	return out
}

// lookup returns the sorted keys holding any of values at path.
func (ix *Index) lookup(path string, values []any) []string {
	ix.mu.RLock()
	defer ix.mu.RUnlock()
	var lists [][]string
	for _, v := range values {
		val, ok := valueKey(v)
		if !ok {
			continue
		}
		if p := ix.posts[entry{path, val}]; p != nil {
			lists = append(lists, p.keys())
		}
	}
	switch len(lists) {
	case 0:
		return nil
	case 1:
		return lists[0]
	}
	return union(lists...)
}

// indexedPath returns the index path of p, if it is indexed.
func (ix *Index) indexedPath(p *pathExpr) (string, bool) {
	if len(p.segs) == 1 && slices.Contains(ix.names, p.segs[0]) {
		return p.segs[0], true
	}
	if len(p.segs) >= 2 && p.segs[0] == "tags" {
		return p.String(), true
	}
	return "", false
}

// candidates returns a sorted superset of the keys the condition can
// select, when the index can narrow it: an equality or IN on an indexed
// path, AND (intersection, using whichever sides are indexed) and OR (union,
// when both sides are). ok is false when every document must be scanned.
func (ix *Index) candidates(e expr) (keys []string, ok bool) {
	if ix == nil || e == nil {
		return nil, false
	}
	switch x := e.(type) {
	case *logicExpr:
		l, lok := ix.candidates(x.l)
		r, rok := ix.candidates(x.r)
		switch {
		case x.and && lok && rok:
			return intersect(l, r), true
		case x.and && lok:
			return l, true
		case x.and && rok:
			return r, true
		case lok && rok:
			return union(l, r), true
		}
	case *cmpExpr:
		if x.op != opEq {
			return nil, false
		}
		pe, lit := asPathLiteral(x.l, x.r)
		if pe == nil {
			return nil, false
		}
		if path, ok := ix.indexedPath(pe); ok {
			return ix.lookup(path, []any{lit.v}), true
		}
	case *inExpr:
		pe, ok := x.x.(*pathExpr)
		if !ok || x.neg {
			return nil, false
		}
		if path, ok := ix.indexedPath(pe); ok {
			return ix.lookup(path, x.list), true
		}
	case *literal:
		if b, isBool := x.v.(bool); !isBool || !b {
			return nil, true // never true: nothing matches
		}
	}
	return nil, false
}

func asPathLiteral(a, b expr) (*pathExpr, *literal) {
	if pe, ok := a.(*pathExpr); ok {
		if lit, ok := b.(*literal); ok {
			return pe, lit
		}
	}
	if pe, ok := b.(*pathExpr); ok {
		if lit, ok := a.(*literal); ok {
			return pe, lit
		}
	}
	return nil, nil
}

// intersect returns the keys in both sorted lists.
func intersect(a, b []string) []string {
	if len(a) > len(b) {
		a, b = b, a
	}
	out := make([]string, 0, len(a))
	if len(a) == 0 {
		return out
	}
	// Binary search when one list is much shorter, else merge.
	if len(a)*(bitsLen(len(b))+1) < len(a)+len(b) {
		lo := 0
		for _, k := range a {
			i, found := slices.BinarySearch(b[lo:], k)
			lo += i
			if found {
				out = append(out, k)
			}
		}
		return out
	}
	i, j := 0, 0
	for i < len(a) && j < len(b) {
		switch c := strings.Compare(a[i], b[j]); {
		case c == 0:
			out = append(out, a[i])
			i++
			j++
		case c < 0:
			i++
		default:
			j++
		}
	}
	return out
}

func bitsLen(n int) int {
	b := 0
	for n > 0 {
		n >>= 1
		b++
	}
	return b
}

// union returns the keys in any of the sorted lists, sorted and unique.
func union(lists ...[]string) []string {
	n := 0
	for _, l := range lists {
		n += len(l)
	}
	out := make([]string, 0, n)
	for _, l := range lists {
		out = append(out, l...)
	}
	slices.Sort(out)
	return slices.Compact(out)
}
