package scenarios

import (
	"fmt"
	"strconv"
	"strings"
)

// idPattern is a parsed GroupSpec.IDPattern: prefix, the index padded with
// zeros to width digits, suffix.
type idPattern struct {
	prefix, suffix string
	width          int
	hasIndex       bool
}

const maxIndexWidth = 20

func parseIDPattern(s string) (idPattern, error) {
	i := strings.Index(s, "{index")
	if i < 0 {
		if strings.ContainsAny(s, "{}") {
			return idPattern{}, fmt.Errorf("%q has an unknown placeholder: only {index} and {index:0N} are supported", s)
		}
		return idPattern{prefix: s}, nil
	}
	p := idPattern{prefix: s[:i], hasIndex: true}
	rest := s[i+len("{index"):]
	end := strings.IndexByte(rest, '}')
	if end < 0 {
		return idPattern{}, fmt.Errorf("%q: {index is not closed by }", s)
	}
	spec := rest[:end]
	p.suffix = rest[end+1:]
	if spec != "" {
		w, ok := strings.CutPrefix(spec, ":0")
		n, err := strconv.Atoi(w)
		if !ok || err != nil || n < 1 || n > maxIndexWidth || strings.ContainsAny(w, "+-") {
			return idPattern{}, fmt.Errorf("%q: {index%s} is not {index} or {index:0N} with N from 1 to %d", s, spec, maxIndexWidth)
		}
		p.width = n
	}
	if strings.ContainsAny(p.prefix, "{}") || strings.ContainsAny(p.suffix, "{}") {
		return idPattern{}, fmt.Errorf("%q: only one placeholder, {index} or {index:0N}, is supported", s)
	}
	return p, nil
}

// id formats the id of the device with the given index.
func (p idPattern) id(index int) string {
	if !p.hasIndex {
		return p.prefix
	}
	n := strconv.Itoa(index)
	if pad := p.width - len(n); pad > 0 {
		n = strings.Repeat("0", pad) + n
	}
	return p.prefix + n + p.suffix
}

// index is the inverse of id: the index whose id is s, if any.
func (p idPattern) index(s string) (int, bool) {
	if !p.hasIndex {
		return 0, s == p.prefix
	}
	mid, ok := strings.CutPrefix(s, p.prefix)
	if !ok {
		return 0, false
	}
	if mid, ok = strings.CutSuffix(mid, p.suffix); !ok || mid == "" || len(mid) > 18 {
		return 0, false
	}
	for i := range len(mid) {
		if mid[i] < '0' || mid[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.Atoi(mid)
	if err != nil || p.id(n) != s {
		return 0, false
	}
	return n, true
}

// collisionBudget bounds the ids tried when looking for collisions between
// groups whose patterns could overlap, so that a hostile file cannot make
// validation slow.
const collisionBudget = 4 << 20

// collide returns an id that both index ranges produce, if any; budget is
// decremented by the work done.
func collide(a idPattern, aFrom, aCount int, b idPattern, bFrom, bCount int, budget *int) (string, bool) {
	compatible := func(x, y string, prefix bool) bool {
		if prefix {
			return strings.HasPrefix(x, y) || strings.HasPrefix(y, x)
		}
		return strings.HasSuffix(x, y) || strings.HasSuffix(y, x)
	}
	if !compatible(a.prefix, b.prefix, true) || (a.hasIndex && b.hasIndex && !compatible(a.suffix, b.suffix, false)) {
		return "", false
	}
	if bCount < aCount {
		a, aFrom, aCount, b, bFrom, bCount = b, bFrom, bCount, a, aFrom, aCount
	}
	for i := aFrom; i < aFrom+aCount && *budget > 0; i++ {
		*budget--
		id := a.id(i)
		if j, ok := b.index(id); ok && j >= bFrom && j < bFrom+bCount {
			return id, true
		}
	}
	return "", false
}
