package query

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// Collection is what a query reads: twins, module twins or device-job records.
type Collection string

// The collections of docs/iothub.md §6.
const (
	Devices Collection = "devices"
	Modules Collection = "devices.modules"
	Jobs    Collection = "devices.jobs"
)

// Item types of Page.ItemType: the x-ms-item-type header values (docs/iothub.md §4.5).
const (
	ItemTwin      = "Twin"
	ItemDeviceJob = "DeviceJob"
	ItemRaw       = "Raw"
)

// Query is a parsed query. It is immutable and safe for concurrent use.
type Query struct {
	src     string
	canon   string // canonical text, see String
	cond    bool   // parsed by ParseCondition
	top     int    // -1: no TOP
	star    bool
	proj    []projection
	from    Collection
	where   expr
	groupBy *pathExpr
	agg     bool // aggregates or GROUP BY: rows are computed over the whole result
}

type projection struct {
	pos   int    // column where the projection starts
	e     expr   // nil for COUNT()
	alias string // output key
	as    bool   // alias written with AS
	agg   string // COUNT, AVG, SUM, MIN, MAX, or "" for a plain expression
}

// From returns the collection the query reads.
func (q *Query) From() Collection { return q.from }

// String returns the query's canonical text: keywords upper case, system
// property names in camelCase, strings single-quoted, constant
// subexpressions folded, minimal parentheses. Parsing it (with Parse, or
// ParseCondition for a condition) gives an equivalent query.
func (q *Query) String() string { return q.canon }

// Text returns the text the query was parsed from, exactly as given (a
// JobResponse echoes queryCondition as sent, docs/iothub.md §5.3).
func (q *Query) Text() string { return q.src }

// ItemType is the x-ms-item-type of the results (docs/iothub.md §4.5): "Twin" for
// SELECT * over devices or devices.modules, "DeviceJob" for devices.jobs,
// "Raw" for projections and aggregates.
func (q *Query) ItemType() string {
	switch {
	case !q.star:
		return ItemRaw
	case q.from == Jobs:
		return ItemDeviceJob
	}
	return ItemTwin
}

// HasCondition reports whether the query has a WHERE condition.
func (q *Query) HasCondition() bool { return q.where != nil }

// Parse parses a full query (docs/iothub.md §6):
//
//	SELECT [TOP n] * | projection [AS alias], ... FROM devices | devices.modules | devices.jobs [WHERE condition] [GROUP BY path]
//
// Errors are *Error (errors.Is ErrInvalidQuery).
func Parse(src string) (*Query, error) {
	p, err := newParser(src)
	if err != nil {
		return nil, err
	}
	q := &Query{src: src, top: -1, from: p.from}
	if err := p.keyword("SELECT"); err != nil {
		return nil, err
	}
	if p.isKeyword("TOP") {
		p.next()
		t := p.next()
		if t.kind != tNumber || t.num > math.MaxInt32 || t.num != math.Trunc(t.num) {
			return nil, p.errAt(t, "TOP needs a whole number, found %s", t)
		}
		q.top = int(t.num)
	}
	selectTok := p.peek()
	if err := p.projections(q); err != nil {
		return nil, err
	}
	if err := p.keyword("FROM"); err != nil {
		return nil, err
	}
	if err := p.parseFrom(q); err != nil {
		return nil, err
	}
	if q.from == Jobs && !q.star {
		// docs/iothub.md §5.6: devices.jobs supports only SELECT *.
		return nil, p.errAt(selectTok, "devices.jobs queries support only SELECT *, not projections or aggregates")
	}
	if p.isKeyword("WHERE") {
		p.next()
		if q.where, err = p.condition(); err != nil {
			return nil, err
		}
	}
	if p.isKeyword("GROUP") {
		t := p.next()
		if err := p.keyword("BY"); err != nil {
			return nil, err
		}
		if q.from == Jobs {
			return nil, p.errAt(t, "devices.jobs queries do not support GROUP BY")
		}
		at := p.peek()
		e, err := p.additive()
		if err != nil {
			return nil, err
		}
		pe, ok := e.(*pathExpr)
		if !ok {
			return nil, p.errAt(at, "GROUP BY takes a property path such as properties.reported.status")
		}
		q.groupBy = pe
		q.agg = true
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.errAt(t, "unexpected %s", t)
	}
	if q.agg {
		if q.star {
			return nil, p.errAt(selectTok, "SELECT * cannot be combined with GROUP BY")
		}
		for _, pr := range q.proj {
			if pr.agg != "" || q.groupBy != nil && sameExpr(pr.e, q.groupBy) {
				continue
			}
			var b strings.Builder
			pr.e.format(&b, precOr)
			if q.groupBy == nil {
				return nil, &Error{Pos: pr.pos, Msg: fmt.Sprintf("%s cannot be selected beside an aggregate without GROUP BY %s", b.String(), b.String())}
			}
			return nil, &Error{Pos: pr.pos, Msg: fmt.Sprintf("%s is neither an aggregate nor the GROUP BY property %s", b.String(), q.groupBy)}
		}
	}
	q.canon = q.format()
	return q, nil
}

// ParseCondition parses a job's queryCondition (docs/iothub.md §5.2): the
// condition of a WHERE clause alone ("deviceId IN ['a','b']"), "*" for every
// device, or "FROM devices WHERE ..." / "FROM devices.modules WHERE ..." as
// real module jobs send it. A whole SELECT query is an error, as is FROM
// devices.jobs. The result's From is Devices unless a FROM says otherwise;
// it has no projections (ItemType "Twin").
func ParseCondition(src string) (*Query, error) {
	p, err := newParser(src)
	if err != nil {
		return nil, err
	}
	q := &Query{src: src, top: -1, star: true, from: Devices, cond: true}
	if t := p.peek(); t.kind == tOp && t.text == "*" {
		if n := p.toks[p.i+1]; n.kind != tEOF {
			return nil, p.errAt(n, "'*' selects every device and must be the whole queryCondition, found %s after it", n)
		}
		q.canon = q.format()
		return q, nil
	}
	if p.isKeyword("SELECT") {
		return nil, p.errAt(p.peek(), "a job's queryCondition is the condition of a WHERE clause, not a whole query: leave out SELECT ... FROM ... WHERE")
	}
	if p.isKeyword("FROM") {
		p.next()
		at := p.peek()
		if err := p.parseFrom(q); err != nil {
			return nil, err
		}
		if q.from == Jobs {
			return nil, p.errAt(at, "a job's queryCondition selects devices or modules, not devices.jobs")
		}
		if p.peek().kind == tEOF {
			q.canon = q.format()
			return q, nil
		}
		if err := p.keyword("WHERE"); err != nil {
			return nil, err
		}
	} else if p.isKeyword("WHERE") {
		p.next()
	}
	if t := p.peek(); t.kind == tEOF {
		return nil, p.errAt(t, "the condition is empty (use '*' for every device)")
	}
	if q.where, err = p.condition(); err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.errAt(t, "unexpected %s after the condition", t)
	}
	q.canon = q.format()
	return q, nil
}

type parser struct {
	toks  []token
	i     int
	from  Collection // decides how paths are canonicalised
	depth int        // nesting of parentheses, brackets, calls and unary operators
}

// maxDepth bounds nesting so that parsing, printing and evaluation stay
// cheap on any input.
const maxDepth = 256

// enter counts one more level of nesting at t; leave undoes it.
func (p *parser) enter(t token) error {
	p.depth++
	if p.depth > maxDepth {
		return p.errAt(t, "the query nests more than %d levels deep", maxDepth)
	}
	return nil
}

func (p *parser) leave() { p.depth-- }

func newParser(src string) (*parser, error) {
	if n := utf8.RuneCountInString(src); n > iothub.MaxQueryLength {
		return nil, &Error{Pos: iothub.MaxQueryLength + 1, Msg: fmt.Sprintf("the query is %d characters long; the limit is %d", n, iothub.MaxQueryLength)}
	}
	if !utf8.ValidString(src) {
		bad := 0
		for i := 0; i < len(src); {
			r, n := utf8.DecodeRuneInString(src[i:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			i += n
			bad++
		}
		return nil, &Error{Pos: bad + 1, Msg: "the query is not valid UTF-8"}
	}
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	p := &parser{toks: toks, from: Devices}
	p.from = p.scanFrom()
	return p, nil
}

// scanFrom looks ahead for the FROM clause so that paths before it (in the
// SELECT list) are canonicalised for the right collection.
func (p *parser) scanFrom() Collection {
	depth := 0
	for i, t := range p.toks {
		switch {
		case t.kind == tPunct && (t.text == "(" || t.text == "["):
			depth++
		case t.kind == tPunct && (t.text == ")" || t.text == "]"):
			depth--
		case depth == 0 && t.kind == tIdent && strings.EqualFold(t.text, "FROM") && (i == 0 || p.toks[i-1].kind != tPunct || p.toks[i-1].text != "."):
			if c, n := collectionAt(p.toks[i+1:]); n > 0 {
				return c
			}
			return Devices
		}
	}
	return Devices
}

// collectionAt reads "devices", "devices.modules" or "devices.jobs" from the
// start of toks; n is the number of tokens used (0: none of them).
func collectionAt(toks []token) (Collection, int) {
	if len(toks) == 0 || toks[0].kind != tIdent || !strings.EqualFold(toks[0].text, "devices") {
		return "", 0
	}
	if len(toks) >= 3 && toks[1].kind == tPunct && toks[1].text == "." {
		switch {
		case toks[2].kind == tIdent && strings.EqualFold(toks[2].text, "modules"):
			return Modules, 3
		case toks[2].kind == tIdent && strings.EqualFold(toks[2].text, "jobs"):
			return Jobs, 3
		}
		return "", 0
	}
	return Devices, 1
}

func (p *parser) peek() token { return p.toks[p.i] }

func (p *parser) next() token {
	t := p.toks[p.i]
	if t.kind != tEOF {
		p.i++
	}
	return t
}

func (p *parser) errAt(t token, format string, args ...any) error {
	return &Error{Pos: t.pos, Msg: fmt.Sprintf(format, args...)}
}

func (p *parser) isKeyword(kw string) bool {
	t := p.peek()
	return t.kind == tIdent && strings.EqualFold(t.text, kw)
}

func (p *parser) keyword(kw string) error {
	if !p.isKeyword(kw) {
		return p.errAt(p.peek(), "expected %s but found %s", kw, p.peek())
	}
	p.next()
	return nil
}

func (p *parser) isPunct(s string) bool {
	t := p.peek()
	return t.kind == tPunct && t.text == s
}

func (p *parser) punct(s string) bool {
	if p.isPunct(s) {
		p.next()
		return true
	}
	return false
}

func (p *parser) expect(s string) error {
	if !p.punct(s) {
		return p.errAt(p.peek(), "expected '%s' but found %s", s, p.peek())
	}
	return nil
}

// reserved words cannot start a property path or be an alias.
var reserved = map[string]bool{"SELECT": true, "FROM": true, "WHERE": true, "GROUP": true, "BY": true, "AS": true,
	"AND": true, "OR": true, "NOT": true, "IN": true, "NIN": true, "TOP": true,
	"TRUE": true, "FALSE": true, "NULL": true, "UNDEFINED": true}

var aggregates = map[string]bool{"COUNT": true, "AVG": true, "SUM": true, "MIN": true, "MAX": true}

func (p *parser) projections(q *Query) error {
	if t := p.peek(); t.kind == tOp && t.text == "*" {
		p.next()
		q.star = true
		return nil
	}
	seen := map[string]bool{}
	for {
		t := p.peek()
		pr := projection{pos: t.pos}
		if t.kind == tIdent && aggregates[strings.ToUpper(t.text)] && p.toks[p.i+1].kind == tPunct && p.toks[p.i+1].text == "(" {
			pr.agg = strings.ToUpper(t.text)
			p.next()
			p.next()
			if pr.agg == "COUNT" {
				if !p.punct(")") {
					return p.errAt(p.peek(), "COUNT takes no argument: write COUNT()")
				}
			} else {
				if p.isPunct(")") {
					return p.errAt(p.peek(), "%s needs a property path, as in %s(properties.reported.x)", pr.agg, pr.agg)
				}
				e, err := p.expr()
				if err != nil {
					return err
				}
				pr.e = e
				if err := p.expect(")"); err != nil {
					return err
				}
			}
			q.agg = true
		} else {
			e, err := p.expr()
			if err != nil {
				return err
			}
			pr.e = e
		}
		if p.isKeyword("AS") {
			p.next()
			a := p.next()
			if a.kind != tIdent || reserved[strings.ToUpper(a.text)] {
				return p.errAt(a, "expected an alias after AS but found %s", a)
			}
			pr.alias, pr.as = a.text, true
		} else {
			pr.alias = defaultAlias(pr, len(q.proj))
		}
		if seen[pr.alias] {
			return p.errAt(t, "two projections are named %s: give one an alias with AS", pr.alias)
		}
		seen[pr.alias] = true
		q.proj = append(q.proj, pr)
		if !p.punct(",") {
			return nil
		}
	}
}

// defaultAlias names a projection without AS: the last path segment
// (canonical camelCase for system properties), the aggregate's name in lower
// case, or $n for the n-th other expression.
func defaultAlias(pr projection, i int) string {
	if pr.agg != "" {
		return strings.ToLower(pr.agg)
	}
	if pe, ok := pr.e.(*pathExpr); ok {
		return pe.segs[len(pe.segs)-1]
	}
	return "$" + strconv.Itoa(i+1)
}

func (p *parser) parseFrom(q *Query) error {
	c, n := collectionAt(p.toks[p.i:])
	if n == 0 {
		t := p.peek()
		if n := p.i + 2; t.kind == tIdent && strings.EqualFold(t.text, "devices") && n < len(p.toks) {
			return p.errAt(p.toks[n], "expected modules or jobs after 'devices.' but found %s", p.toks[n])
		}
		return p.errAt(t, "expected devices, devices.modules or devices.jobs after FROM but found %s", t)
	}
	p.i += n
	q.from = c
	return nil
}

// condition parses a WHERE condition.
func (p *parser) condition() (expr, error) { return p.expr() }

// expr := or
func (p *parser) expr() (expr, error) { return p.or() }

func (p *parser) or() (expr, error) {
	l, err := p.and()
	for err == nil && p.isKeyword("OR") {
		p.next()
		var r expr
		if r, err = p.and(); err == nil {
			l = fold(&logicExpr{and: false, l: l, r: r})
		}
	}
	return l, err
}

func (p *parser) and() (expr, error) {
	l, err := p.not()
	for err == nil && p.isKeyword("AND") {
		p.next()
		var r expr
		if r, err = p.not(); err == nil {
			l = fold(&logicExpr{and: true, l: l, r: r})
		}
	}
	return l, err
}

func (p *parser) not() (expr, error) {
	if p.isKeyword("NOT") {
		if err := p.enter(p.next()); err != nil {
			return nil, err
		}
		defer p.leave()
		x, err := p.not()
		if err != nil {
			return nil, err
		}
		return fold(&notExpr{x: x}), nil
	}
	return p.comparison()
}

var compareOps = map[string]cmpOp{"=": opEq, "!=": opNe, "<>": opNe, "<": opLt, ">": opGt, "<=": opLe, ">=": opGe}

func (p *parser) comparison() (expr, error) {
	l, err := p.additive()
	if err != nil {
		return nil, err
	}
	t := p.peek()
	switch {
	case t.kind == tOp && compareOps[t.text] != 0:
		p.next()
		r, err := p.additive()
		if err != nil {
			return nil, err
		}
		return fold(newCmp(compareOps[t.text], l, r)), nil
	case p.isKeyword("IN") || p.isKeyword("NIN"):
		p.next()
		neg := strings.EqualFold(t.text, "NIN")
		lt := p.peek()
		var list expr
		if p.punct("(") {
			// Cosmos-style IN ('a', 'b'): same as the array constant.
			arr := &arrayExpr{}
			if err := p.list(arr, ")"); err != nil {
				return nil, err
			}
			list = fold(arr)
		} else if list, err = p.primary(); err != nil {
			return nil, err
		}
		var values []any
		if lit, ok := list.(*literal); ok {
			values, _ = lit.v.([]any)
		}
		if values == nil {
			return nil, p.errAt(lt, "%s needs an array of constants such as ['a', 'b']", strings.ToUpper(t.text))
		}
		return fold(newIn(l, values, neg)), nil
	}
	return l, nil
}

func (p *parser) additive() (expr, error) {
	l, err := p.multiplicative()
	for err == nil {
		t := p.peek()
		if t.kind != tOp || (t.text != "+" && t.text != "-") {
			break
		}
		p.next()
		var r expr
		if r, err = p.multiplicative(); err == nil {
			l = fold(&arithExpr{op: t.text[0], l: l, r: r})
		}
	}
	return l, err
}

func (p *parser) multiplicative() (expr, error) {
	l, err := p.unary()
	for err == nil {
		t := p.peek()
		if t.kind != tOp || (t.text != "*" && t.text != "/" && t.text != "%") {
			break
		}
		p.next()
		var r expr
		if r, err = p.unary(); err == nil {
			l = fold(&arithExpr{op: t.text[0], l: l, r: r})
		}
	}
	return l, err
}

func (p *parser) unary() (expr, error) {
	if t := p.peek(); t.kind == tOp && (t.text == "-" || t.text == "+") {
		if err := p.enter(p.next()); err != nil {
			return nil, err
		}
		defer p.leave()
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		if t.text == "+" {
			return fold(&posExpr{x: x}), nil
		}
		return fold(&negExpr{x: x}), nil
	}
	return p.primary()
}

func (p *parser) list(arr *arrayExpr, closing string) error {
	if p.punct(closing) {
		return nil
	}
	for {
		e, err := p.expr()
		if err != nil {
			return err
		}
		arr.elems = append(arr.elems, e)
		if p.punct(closing) {
			return nil
		}
		if !p.isPunct(",") {
			return p.errAt(p.peek(), "expected ',' or '%s' but found %s", closing, p.peek())
		}
		p.next()
	}
}

func (p *parser) primary() (expr, error) {
	t := p.next()
	if t.kind == tPunct && (t.text == "(" || t.text == "[") || t.kind == tIdent && p.isPunct("(") {
		if err := p.enter(t); err != nil {
			return nil, err
		}
		defer p.leave()
	}
	switch t.kind {
	case tNumber:
		return &literal{v: t.num}, nil
	case tString:
		return &literal{v: t.text}, nil
	case tPunct:
		switch t.text {
		case "(":
			e, err := p.expr()
			if err != nil {
				return nil, err
			}
			return e, p.expect(")")
		case "[":
			arr := &arrayExpr{}
			if err := p.list(arr, "]"); err != nil {
				return nil, err
			}
			return fold(arr), nil
		}
	case tIdent:
		up := strings.ToUpper(t.text)
		switch up {
		case "TRUE":
			return &literal{v: true}, nil
		case "FALSE":
			return &literal{v: false}, nil
		case "NULL":
			return &literal{v: nil}, nil
		case "UNDEFINED":
			return &literal{v: undefined}, nil
		}
		if reserved[up] {
			return nil, p.errAt(t, "expected a value but found the keyword %s", up)
		}
		if p.isPunct("(") {
			return p.call(t)
		}
		segs := []string{t.text}
		for p.isPunct(".") {
			p.next()
			s := p.next()
			if s.kind != tIdent {
				return nil, p.errAt(s, "expected a property name after '.' but found %s", s)
			}
			segs = append(segs, s.text)
		}
		return p.path(t, segs)
	}
	if t.kind == tEOF {
		return nil, p.errAt(t, "unexpected end of query: expected a value")
	}
	return nil, p.errAt(t, "expected a value but found %s", t)
}

// Top-level names of twins (docs/iothub.md §3.1) and device-job records (§5.6),
// matched case-insensitively and canonicalised to camelCase.
var (
	twinNames = canonMap("deviceId", "moduleId", "etag", "deviceEtag", "version", "status", "statusReason",
		"statusUpdateTime", "connectionState", "lastActivityTime", "cloudToDeviceMessageCount", "authenticationType",
		"x509Thumbprint", "capabilities", "modelId", "deviceScope", "parentScopes", "tags", "properties")
	jobNames = canonMap("deviceId", "jobId", "jobType", "status", "startTimeUtc", "endTimeUtc", "createdDateTimeUtc",
		"lastUpdatedDateTimeUtc", "outcome", "error")
	jobNameList = "deviceId, jobId, jobType, status, startTimeUtc, endTimeUtc, createdDateTimeUtc, lastUpdatedDateTimeUtc, outcome, error"
)

func canonMap(names ...string) map[string]string {
	m := map[string]string{}
	for _, n := range names {
		m[strings.ToLower(n)] = n
	}
	return m
}

// path canonicalises a property path for the query's collection: it strips
// the devices.jobs / devices.modules prefix, canonicalises system names and
// properties.desired / properties.reported, and checks that devices.jobs
// queries name job fields only (docs/iothub.md §5.6).
func (p *parser) path(at token, segs []string) (expr, error) {
	if len(segs) >= 2 && strings.EqualFold(segs[0], "devices") {
		jobs, modules := strings.EqualFold(segs[1], "jobs"), strings.EqualFold(segs[1], "modules")
		switch {
		case len(segs) >= 3 && (jobs && p.from == Jobs || modules && p.from == Modules):
			segs = segs[2:]
		case jobs && p.from != Jobs:
			return nil, p.errAt(at, "%s names a devices.jobs field: it needs FROM devices.jobs", strings.Join(segs, "."))
		case modules && p.from != Modules:
			return nil, p.errAt(at, "%s names a module field: it needs FROM devices.modules", strings.Join(segs, "."))
		}
	}
	if p.from == Jobs {
		if strings.EqualFold(segs[0], "createdTimeUtc") {
			segs[0] = "createdDateTimeUtc" // the doc's spelling (docs/iothub.md §5.6)
		}
		c, ok := jobNames[strings.ToLower(segs[0])]
		if !ok {
			return nil, p.errAt(at, "devices.jobs queries can test only job fields (%s), not %s", jobNameList, strings.Join(segs, "."))
		}
		segs[0] = c
		return &pathExpr{segs: segs}, nil
	}
	if c, ok := twinNames[strings.ToLower(segs[0])]; ok {
		segs[0] = c
	}
	if segs[0] == "properties" && len(segs) > 1 {
		switch strings.ToLower(segs[1]) {
		case "desired":
			segs[1] = "desired"
		case "reported":
			segs[1] = "reported"
		}
	}
	return &pathExpr{segs: segs}, nil
}

func (p *parser) call(name token) (expr, error) {
	fn := strings.ToUpper(name.text)
	spec, ok := functions[fn]
	if !ok {
		switch fn {
		case "STARTS_WITH":
			return nil, p.errAt(name, "unknown function STARTS_WITH: twin and job queries spell it STARTSWITH (STARTS_WITH is the routing-query name)")
		case "ENDS_WITH":
			return nil, p.errAt(name, "unknown function ENDS_WITH: twin and job queries spell it ENDSWITH (ENDS_WITH is the routing-query name)")
		}
		if aggregates[fn] {
			return nil, p.errAt(name, "%s is an aggregate: it can only be a SELECT projection", fn)
		}
		return nil, p.errAt(name, "unknown function %s", name.text)
	}
	p.next() // (
	arr := &arrayExpr{}
	if err := p.list(arr, ")"); err != nil {
		return nil, err
	}
	if n := len(arr.elems); n < spec.min || (spec.max >= 0 && n > spec.max) {
		return nil, p.errAt(name, "%s takes %s, got %d", fn, spec.arity(), n)
	}
	return fold(&callExpr{name: fn, spec: spec, args: arr.elems}), nil
}
