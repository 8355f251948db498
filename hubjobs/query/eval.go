package query

import (
	"encoding/json"
	"math"
	"strconv"
	"strings"
)

// undefinedT is the type of undefined: a missing property or a meaningless
// operation (docs/iothub.md §6). It is never selected and never equal to anything.
type undefinedT struct{}

var undefined any = undefinedT{}

func isUndef(v any) bool { _, ok := v.(undefinedT); return ok }

// expr is a node of a condition or projection.
type expr interface {
	// eval evaluates the node over doc (nil for constant nodes).
	eval(doc map[string]any) any
	// format writes the canonical text; prec is the binding strength the
	// context needs (parenthesise when the node binds less tightly).
	format(b *strings.Builder, prec int)
}

// Binding strengths, loosest first.
const (
	precOr = iota + 1
	precAnd
	precNot
	precCmp
	precAdd
	precMul
	precUnary
	precPrimary
)

func paren(b *strings.Builder, need, have int, body func()) {
	if have < need {
		b.WriteByte('(')
		body()
		b.WriteByte(')')
		return
	}
	body()
}

// literal is a constant, including folded constant subexpressions.
type literal struct{ v any }

func (l *literal) eval(map[string]any) any { return l.v }

func (l *literal) format(b *strings.Builder, prec int) { formatValue(b, l.v, prec) }

func formatValue(b *strings.Builder, v any, prec int) {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case undefinedT:
		b.WriteString("undefined")
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case float64:
		s := strconv.FormatFloat(x, 'g', -1, 64)
		if strings.HasPrefix(s, "-") && prec > precUnary {
			s = "(" + s + ")"
		}
		b.WriteString(s)
	case string:
		b.WriteString(quoteString(x))
	case []any:
		b.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				b.WriteString(", ")
			}
			formatValue(b, e, precOr)
		}
		b.WriteByte(']')
	default:
		j, _ := json.Marshal(x)
		b.Write(j)
	}
}

// pathExpr reads a property path (canonical names).
type pathExpr struct{ segs []string }

func (p *pathExpr) eval(doc map[string]any) any {
	if doc == nil {
		return undefined
	}
	v, ok := doc[p.segs[0]]
	if !ok {
		return undefined
	}
	for _, s := range p.segs[1:] {
		m, ok := v.(map[string]any)
		if !ok {
			return undefined
		}
		if v, ok = m[s]; !ok {
			return undefined
		}
	}
	return v
}

func (p *pathExpr) format(b *strings.Builder, _ int) { b.WriteString(p.String()) }

// String returns the dotted path.
func (p *pathExpr) String() string { return strings.Join(p.segs, ".") }

func sameExpr(a expr, b *pathExpr) bool {
	pa, ok := a.(*pathExpr)
	return ok && pa.String() == b.String()
}

// arrayExpr is an array with non-constant elements; undefined elements are
// left out, as Cosmos-style engines do.
type arrayExpr struct{ elems []expr }

func (a *arrayExpr) eval(doc map[string]any) any {
	out := make([]any, 0, len(a.elems))
	for _, e := range a.elems {
		if v := e.eval(doc); !isUndef(v) {
			out = append(out, v)
		}
	}
	return out
}

func (a *arrayExpr) format(b *strings.Builder, _ int) {
	b.WriteByte('[')
	formatList(b, a.elems)
	b.WriteByte(']')
}

func formatList(b *strings.Builder, es []expr) {
	for i, e := range es {
		if i > 0 {
			b.WriteString(", ")
		}
		e.format(b, precOr)
	}
}

// logicExpr is AND / OR in three-valued logic: false AND x is false, true OR
// x is true, anything else that is not a boolean makes the result undefined.
type logicExpr struct {
	and  bool
	l, r expr
}

func (e *logicExpr) eval(doc map[string]any) any {
	l, lok := e.l.eval(doc).(bool)
	if lok && l != e.and {
		return l // false AND _, true OR _
	}
	r, rok := e.r.eval(doc).(bool)
	if rok && r != e.and {
		return r
	}
	if lok && rok {
		return e.and
	}
	return undefined
}

func (e *logicExpr) format(b *strings.Builder, prec int) {
	own, kw := precOr, " OR "
	if e.and {
		own, kw = precAnd, " AND "
	}
	paren(b, prec, own, func() {
		e.l.format(b, own)
		b.WriteString(kw)
		e.r.format(b, own+1)
	})
}

type notExpr struct{ x expr }

func (e *notExpr) eval(doc map[string]any) any {
	if b, ok := e.x.eval(doc).(bool); ok {
		return !b
	}
	return undefined
}

func (e *notExpr) format(b *strings.Builder, prec int) {
	paren(b, prec, precNot, func() {
		b.WriteString("NOT ")
		e.x.format(b, precNot)
	})
}

type cmpOp uint8

const (
	opEq cmpOp = iota + 1
	opNe
	opLt
	opGt
	opLe
	opGe
)

var cmpText = [...]string{opEq: "=", opNe: "!=", opLt: "<", opGt: ">", opLe: "<=", opGe: ">="}

type cmpExpr struct {
	op   cmpOp
	l, r expr
}

func newCmp(op cmpOp, l, r expr) expr { return &cmpExpr{op: op, l: l, r: r} }

func (e *cmpExpr) eval(doc map[string]any) any { return compare(e.op, e.l.eval(doc), e.r.eval(doc)) }

func (e *cmpExpr) format(b *strings.Builder, prec int) {
	paren(b, prec, precCmp, func() {
		e.l.format(b, precAdd)
		b.WriteByte(' ')
		b.WriteString(cmpText[e.op])
		b.WriteByte(' ')
		e.r.format(b, precAdd)
	})
}

// compare applies op to two values. Only primitives of one type compare
// (numbers, strings ordinally, booleans false < true, null only with null);
// anything else is undefined (docs/iothub.md §6).
func compare(op cmpOp, a, b any) any {
	c, ok := order(a, b)
	if !ok {
		return undefined
	}
	switch op {
	case opEq:
		return c == 0
	case opNe:
		return c != 0
	case opLt:
		return c < 0
	case opGt:
		return c > 0
	case opLe:
		return c <= 0
	case opGe:
		return c >= 0
	}
	return undefined
}

// order compares two primitives of the same type.
func order(a, b any) (int, bool) {
	switch x := a.(type) {
	case string:
		if y, ok := b.(string); ok {
			return strings.Compare(x, y), true
		}
	case float64:
		if y, ok := b.(float64); ok {
			return cmpFloat(x, y)
		}
	case bool:
		if y, ok := b.(bool); ok {
			switch {
			case x == y:
				return 0, true
			case !x:
				return -1, true
			}
			return 1, true
		}
	case nil:
		return 0, b == nil
	}
	// Numbers of other Go types (documents built by hand rather than decoded).
	if x, ok := toNumber(a); ok {
		if y, ok := toNumber(b); ok {
			return cmpFloat(x, y)
		}
	}
	return 0, false
}

func cmpFloat(x, y float64) (int, bool) {
	switch {
	case x < y:
		return -1, true
	case x > y:
		return 1, true
	case x == y:
		return 0, true
	}
	return 0, false // NaN
}

// toNumber returns v as a float64 when it is a number of any Go type.
func toNumber(v any) (float64, bool) {
	switch x := v.(type) {
	case float64:
		return x, true
	case int:
		return float64(x), true
	case int64:
		return float64(x), true
	case int32:
		return float64(x), true
	case uint:
		return float64(x), true
	case uint64:
		return float64(x), true
	case uint32:
		return float64(x), true
	case float32:
		return float64(x), true
	case json.Number:
		f, err := x.Float64()
		return f, err == nil
	}
	return 0, false
}

// normalize maps numbers of any Go type to float64.
func normalize(v any) any {
	switch v.(type) {
	case float64, string, bool, nil:
		return v
	}
	if f, ok := toNumber(v); ok {
		return f
	}
	return v
}

func isPrimitive(v any) bool {
	switch v.(type) {
	case float64, string, bool, nil:
		return true
	}
	_, ok := toNumber(v)
	return ok
}

// inExpr is x IN [...] / x NIN [...]: the OR of x = each element (so true
// when one is equal, false when all comparisons are false, else undefined);
// NIN is its negation.
type inExpr struct {
	x     expr
	list  []any
	neg   bool
	strs  map[string]struct{} // the string elements, for long lists
	kinds uint8               // which kinds of value the list holds
}

const (
	kString uint8 = 1 << iota
	kNumber
	kBool
	kNull
	kOther
)

func kindOf(v any) uint8 {
	switch v.(type) {
	case string:
		return kString
	case float64:
		return kNumber
	case bool:
		return kBool
	case nil:
		return kNull
	}
	if _, ok := toNumber(v); ok {
		return kNumber
	}
	return kOther
}

func newIn(x expr, list []any, neg bool) expr {
	e := &inExpr{x: x, list: list, neg: neg}
	for _, v := range list {
		e.kinds |= kindOf(v)
	}
	if len(list) > 8 {
		e.strs = map[string]struct{}{}
		for _, v := range list {
			if s, ok := v.(string); ok {
				e.strs[s] = struct{}{}
			}
		}
	}
	return e
}

func (e *inExpr) eval(doc map[string]any) any {
	v := e.x.eval(doc)
	r := e.contains(v)
	if b, ok := r.(bool); ok && e.neg {
		return !b
	}
	return r
}

func (e *inExpr) contains(v any) any {
	k := kindOf(v)
	if k == kOther {
		return undefined
	}
	found := false
	if s, ok := v.(string); ok && e.strs != nil {
		_, found = e.strs[s]
	} else if e.kinds&k != 0 {
		for _, c := range e.list {
			if c, ok := order(v, c); ok && c == 0 {
				found = true
				break
			}
		}
	}
	switch {
	case found:
		return true
	case e.kinds&^k != 0:
		return undefined // some element was of another type: that comparison is undefined
	}
	return false
}

func (e *inExpr) format(b *strings.Builder, prec int) {
	paren(b, prec, precCmp, func() {
		e.x.format(b, precAdd)
		if e.neg {
			b.WriteString(" NIN ")
		} else {
			b.WriteString(" IN ")
		}
		formatValue(b, e.list, precPrimary)
	})
}

// arithExpr is + - * / % over numbers; anything else, division by zero and
// results that are not finite are undefined.
type arithExpr struct {
	op   byte
	l, r expr
}

func (e *arithExpr) eval(doc map[string]any) any {
	a, ok1 := num(e.l.eval(doc))
	b, ok2 := num(e.r.eval(doc))
	if !ok1 || !ok2 {
		return undefined
	}
	var v float64
	switch e.op {
	case '+':
		v = a + b
	case '-':
		v = a - b
	case '*':
		v = a * b
	case '/':
		if b == 0 {
			return undefined
		}
		v = a / b
	case '%':
		if b == 0 {
			return undefined
		}
		v = math.Mod(a, b)
	}
	return finite(v)
}

func (e *arithExpr) format(b *strings.Builder, prec int) {
	own := precAdd
	if e.op == '*' || e.op == '/' || e.op == '%' {
		own = precMul
	}
	paren(b, prec, own, func() {
		e.l.format(b, own)
		b.WriteByte(' ')
		b.WriteByte(e.op)
		b.WriteByte(' ')
		e.r.format(b, own+1)
	})
}

func num(v any) (float64, bool) {
	if f, ok := v.(float64); ok {
		return f, true
	}
	return toNumber(v)
}

func finite(v float64) any {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return undefined
	}
	return v
}

// negExpr is unary minus.
type negExpr struct{ x expr }

func (e *negExpr) eval(doc map[string]any) any {
	if f, ok := num(e.x.eval(doc)); ok {
		return -f
	}
	return undefined
}

func (e *negExpr) format(b *strings.Builder, prec int) {
	paren(b, prec, precUnary, func() {
		b.WriteByte('-')
		e.x.format(b, precUnary)
	})
}

// posExpr is unary plus: numbers only.
type posExpr struct{ x expr }

func (e *posExpr) eval(doc map[string]any) any {
	if f, ok := num(e.x.eval(doc)); ok {
		return f
	}
	return undefined
}

func (e *posExpr) format(b *strings.Builder, prec int) {
	paren(b, prec, precUnary, func() {
		b.WriteByte('+')
		e.x.format(b, precUnary)
	})
}

// callExpr is a function call.
type callExpr struct {
	name string
	spec *fnSpec
	args []expr
}

func (c *callExpr) eval(doc map[string]any) any {
	switch len(c.args) {
	case 1:
		if c.spec.f1 != nil {
			return c.spec.f1(c.args[0].eval(doc))
		}
	case 2:
		if c.spec.f2 != nil {
			return c.spec.f2(c.args[0].eval(doc), c.args[1].eval(doc))
		}
	}
	args := make([]any, len(c.args))
	for i, a := range c.args {
		args[i] = a.eval(doc)
	}
	return c.spec.fn(args)
}

func (c *callExpr) format(b *strings.Builder, _ int) {
	b.WriteString(c.name)
	b.WriteByte('(')
	formatList(b, c.args)
	b.WriteByte(')')
}

// fold replaces a node whose operands are all constants by its value.
func fold(e expr) expr {
	constant := func(es ...expr) bool {
		for _, x := range es {
			if _, ok := x.(*literal); !ok {
				return false
			}
		}
		return true
	}
	ok := false
	switch x := e.(type) {
	case *logicExpr:
		ok = constant(x.l, x.r)
	case *notExpr:
		ok = constant(x.x)
	case *cmpExpr:
		ok = constant(x.l, x.r)
	case *inExpr:
		ok = constant(x.x)
	case *arithExpr:
		ok = constant(x.l, x.r)
	case *negExpr:
		ok = constant(x.x)
	case *posExpr:
		ok = constant(x.x)
	case *arrayExpr:
		ok = constant(x.elems...)
	case *callExpr:
		ok = constant(x.args...)
	}
	if !ok {
		return e
	}
	return &literal{v: e.eval(nil)}
}

// Match reports whether doc satisfies the WHERE condition: only boolean true
// selects (docs/iothub.md §6). A query without WHERE matches every document.
func (q *Query) Match(doc map[string]any) bool {
	if q.where == nil {
		return true
	}
	b, ok := q.where.eval(doc).(bool)
	return ok && b
}

// Eval returns the value of the WHERE condition over doc: true, false, or
// nil when it is neither (undefined, null, or a value that is not a boolean).
func (q *Query) Eval(doc map[string]any) any {
	if q.where == nil {
		return true
	}
	if b, ok := q.where.eval(doc).(bool); ok {
		return b
	}
	return nil
}

// format writes the canonical text of the query.
func (q *Query) format() string {
	var b strings.Builder
	if q.cond {
		if q.from != Devices {
			b.WriteString("FROM ")
			b.WriteString(string(q.from))
			if q.where == nil {
				return b.String()
			}
			b.WriteString(" WHERE ")
		}
		if q.where == nil {
			return "*"
		}
		q.where.format(&b, precOr)
		return b.String()
	}
	b.WriteString("SELECT ")
	if q.top >= 0 {
		b.WriteString("TOP ")
		b.WriteString(strconv.Itoa(q.top))
		b.WriteByte(' ')
	}
	if q.star {
		b.WriteByte('*')
	}
	for i, p := range q.proj {
		if i > 0 {
			b.WriteString(", ")
		}
		switch {
		case p.agg == "COUNT":
			b.WriteString("COUNT()")
		case p.agg != "":
			b.WriteString(p.agg)
			b.WriteByte('(')
			p.e.format(&b, precOr)
			b.WriteByte(')')
		default:
			p.e.format(&b, precOr)
		}
		if p.as {
			b.WriteString(" AS ")
			b.WriteString(p.alias)
		}
	}
	b.WriteString(" FROM ")
	b.WriteString(string(q.from))
	if q.where != nil {
		b.WriteString(" WHERE ")
		q.where.format(&b, precOr)
	}
	if q.groupBy != nil {
		b.WriteString(" GROUP BY ")
		q.groupBy.format(&b, precOr)
	}
	return b.String()
}
