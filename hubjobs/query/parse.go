package query

import (
	"fmt"
	"strings"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// Collection is what a query reads: twins, module twins or device-job records.
type Collection string

// The collections of iothub.md §6.
const (
	Devices Collection = "devices"
	Modules Collection = "devices.modules"
	Jobs    Collection = "devices.jobs"
)

// Query is a parsed query, safe for concurrent use.
type Query struct {
	src     string
	top     int // -1: no TOP
	star    bool
	proj    []projection
	from    Collection
	where   expr
	groupBy expr
	agg     bool
}

type projection struct {
	e     expr
	alias string
	agg   string // COUNT, AVG, SUM, MIN, MAX, or "" for a plain expression
}

// From returns the collection the query reads.
func (q *Query) From() Collection { return q.from }

// String returns the query's text as given.
func (q *Query) String() string { return q.src }

// ItemType is the x-ms-item-type of the results (iothub.md §4.5).
func (q *Query) ItemType() string {
	switch {
	case !q.star:
		return "Raw"
	case q.from == Jobs:
		return "DeviceJob"
	}
	return "Twin"
}

// Parse parses a full query: SELECT ... FROM ... [WHERE ...] [GROUP BY ...].
func Parse(src string) (*Query, error) {
	p, err := newParser(src)
	if err != nil {
		return nil, err
	}
	q := &Query{src: src, top: -1}
	if err := p.keyword("SELECT"); err != nil {
		return nil, err
	}
	if p.isKeyword("TOP") {
		p.next()
		t := p.next()
		if t.kind != tNumber || t.num < 0 || t.num != float64(int(t.num)) {
			return nil, p.errAt(t, "TOP needs a whole number, found %s", t)
		}
		q.top = int(t.num)
	}
	if err := p.projections(q); err != nil {
		return nil, err
	}
	if err := p.keyword("FROM"); err != nil {
		return nil, err
	}
	if err := p.parseFrom(q); err != nil {
		return nil, err
	}
	if err := p.tail(q); err != nil {
		return nil, err
	}
	return q, nil
}

// ParseCondition parses a job's queryCondition (iothub.md §5.2): the WHERE
// condition alone, "*" for every device, or "FROM devices[.modules] WHERE ...".
// A full SELECT query is an error.
func ParseCondition(src string) (*Query, error) {
	q := &Query{src: src, top: -1, star: true, from: Devices}
	trimmed := strings.TrimSpace(src)
	if trimmed == "*" {
		return q, nil
	}
	p, err := newParser(src)
	if err != nil {
		return nil, err
	}
	if p.isKeyword("SELECT") {
		return nil, p.errAt(p.peek(), "a job's queryCondition is the condition of a WHERE clause, not a whole query: leave out SELECT ... FROM ... WHERE")
	}
	if p.isKeyword("FROM") {
		p.next()
		if err := p.parseFrom(q); err != nil {
			return nil, err
		}
		if q.from == Jobs {
			return nil, p.errAt(p.peek(), "a job cannot select from devices.jobs")
		}
		if p.peek().kind == tEOF {
			return q, nil
		}
		if err := p.keyword("WHERE"); err != nil {
			return nil, err
		}
	} else if p.isKeyword("WHERE") {
		p.next()
	}
	if p.peek().kind == tEOF {
		return nil, p.errAt(p.peek(), "the condition is empty")
	}
	if q.where, err = p.expr(); err != nil {
		return nil, err
	}
	if t := p.peek(); t.kind != tEOF {
		return nil, p.errAt(t, "unexpected %s after the condition", t)
	}
	return q, nil
}

type parser struct {
	toks []token
	i    int
	from Collection
}

func newParser(src string) (*parser, error) {
	if n := len([]rune(src)); n > iothub.MaxQueryLength {
		return nil, &Error{Pos: iothub.MaxQueryLength + 1, Msg: fmt.Sprintf("the query is %d characters long; the limit is %d", n, iothub.MaxQueryLength)}
	}
	toks, err := lex(src)
	if err != nil {
		return nil, err
	}
	return &parser{toks: toks, from: Devices}, nil
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

func (p *parser) punct(s string) bool {
	t := p.peek()
	if t.kind == tPunct && t.text == s {
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

var reserved = map[string]bool{"SELECT": true, "FROM": true, "WHERE": true, "GROUP": true, "BY": true, "AS": true,
	"AND": true, "OR": true, "NOT": true, "IN": true, "NIN": true, "TOP": true}

func (p *parser) projections(q *Query) error {
	if t := p.peek(); t.kind == tOp && t.text == "*" {
		p.next()
		q.star = true
		return nil
	}
	for {
		var pr projection
		t := p.peek()
		if t.kind == tIdent && aggregates[strings.ToUpper(t.text)] && p.toks[p.i+1].kind == tPunct && p.toks[p.i+1].text == "(" {
			pr.agg = strings.ToUpper(t.text)
			p.next()
			p.next()
			if pr.agg == "COUNT" {
				if !p.punct(")") {
					return p.errAt(p.peek(), "COUNT takes no argument: write COUNT()")
				}
			} else {
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
			pr.alias = a.text
		}
		if pr.alias == "" {
			switch {
			case pr.agg != "":
				pr.alias = strings.ToLower(pr.agg)
			default:
				if pp, ok := pr.e.(*pathExpr); ok {
					pr.alias = pp.segs[len(pp.segs)-1]
				} else {
					pr.alias = fmt.Sprintf("$%d", len(q.proj)+1)
				}
			}
		}
		q.proj = append(q.proj, pr)
		if !p.punct(",") {
			return nil
		}
	}
}

var aggregates = map[string]bool{"COUNT": true, "AVG": true, "SUM": true, "MIN": true, "MAX": true}

func (p *parser) parseFrom(q *Query) error {
	t := p.next()
	if t.kind != tIdent || !strings.EqualFold(t.text, "devices") {
		return p.errAt(t, "expected devices, devices.modules or devices.jobs after FROM but found %s", t)
	}
	q.from = Devices
	if p.punct(".") {
		s := p.next()
		switch {
		case s.kind == tIdent && strings.EqualFold(s.text, "modules"):
			q.from = Modules
		case s.kind == tIdent && strings.EqualFold(s.text, "jobs"):
			q.from = Jobs
		default:
			return p.errAt(s, "expected modules or jobs after 'devices.' but found %s", s)
		}
	}
	p.from = q.from
	// Projections were parsed before FROM was known: canonicalise them now.
	for i := range q.proj {
		if q.proj[i].e != nil {
			q.proj[i].e = recanon(q.proj[i].e, q.from)
			if pp, ok := q.proj[i].e.(*pathExpr); ok && q.proj[i].alias == pp.raw {
				q.proj[i].alias = pp.segs[len(pp.segs)-1]
			}
		}
	}
	return nil
}

func (p *parser) tail(q *Query) error {
	var err error
	if p.isKeyword("WHERE") {
		p.next()
		if q.where, err = p.expr(); err != nil {
			return err
		}
	}
	if p.isKeyword("GROUP") {
		t := p.next()
		if err := p.keyword("BY"); err != nil {
			return err
		}
		if q.from == Jobs {
			return p.errAt(t, "devices.jobs queries do not support GROUP BY")
		}
		if q.groupBy, err = p.expr(); err != nil {
			return err
		}
		if _, ok := q.groupBy.(*pathExpr); !ok {
			return p.errAt(t, "GROUP BY takes a property path")
		}
		q.agg = true
	}
	if t := p.peek(); t.kind != tEOF {
		return p.errAt(t, "unexpected %s", t)
	}
	if q.from == Jobs && (!q.star || q.agg) {
		return &Error{Pos: 1, Msg: "devices.jobs queries support only SELECT * (iothub.md §5.6)"}
	}
	if q.agg {
		for _, pr := range q.proj {
			if pr.agg == "" && (q.groupBy == nil || !sameExpr(pr.e, q.groupBy)) {
				return &Error{Pos: 1, Msg: fmt.Sprintf("%s is neither an aggregate nor the GROUP BY property", pr.alias)}
			}
		}
		if q.star {
			return &Error{Pos: 1, Msg: "SELECT * cannot be used with GROUP BY"}
		}
	}
	return nil
}

// expr := or
func (p *parser) expr() (expr, error) { return p.or() }

func (p *parser) or() (expr, error) {
	l, err := p.and()
	for err == nil && p.isKeyword("OR") {
		p.next()
		var r expr
		if r, err = p.and(); err == nil {
			l = &logicExpr{and: false, l: l, r: r}
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
			l = &logicExpr{and: true, l: l, r: r}
		}
	}
	return l, err
}

func (p *parser) not() (expr, error) {
	if p.isKeyword("NOT") {
		p.next()
		x, err := p.not()
		if err != nil {
			return nil, err
		}
		return &notExpr{x: x}, nil
	}
	return p.comparison()
}

var compareOps = map[string]bool{"=": true, "!=": true, "<>": true, "<": true, ">": true, "<=": true, ">=": true}

func (p *parser) comparison() (expr, error) {
	l, err := p.additive()
	if err != nil {
		return nil, err
	}
	t := p.peek()
	switch {
	case t.kind == tOp && compareOps[t.text]:
		p.next()
		r, err := p.additive()
		if err != nil {
			return nil, err
		}
		op := t.text
		if op == "<>" {
			op = "!="
		}
		return &cmpExpr{op: op, l: l, r: r}, nil
	case p.isKeyword("IN") || p.isKeyword("NIN"):
		p.next()
		neg := strings.EqualFold(t.text, "NIN")
		lt := p.peek()
		list, err := p.primary()
		if err != nil {
			return nil, err
		}
		arr, ok := list.(*arrayExpr)
		if !ok || !arr.constant() {
			return nil, p.errAt(lt, "%s needs an array of constants such as ['a', 'b']", strings.ToUpper(t.text))
		}
		return &inExpr{x: l, list: arr.values(), neg: neg}, nil
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
			l = &arithExpr{op: t.text[0], l: l, r: r}
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
			l = &arithExpr{op: t.text[0], l: l, r: r}
		}
	}
	return l, err
}

func (p *parser) unary() (expr, error) {
	if t := p.peek(); t.kind == tOp && (t.text == "-" || t.text == "+") {
		p.next()
		x, err := p.unary()
		if err != nil {
			return nil, err
		}
		if t.text == "+" {
			return x, nil
		}
		if lit, ok := x.(*literal); ok {
			if f, ok := lit.v.(float64); ok {
				return &literal{v: -f}, nil
			}
		}
		return &arithExpr{op: '-', l: &literal{v: 0.0}, r: x}, nil
	}
	return p.primary()
}

func (p *parser) primary() (expr, error) {
	t := p.next()
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
			if p.punct("]") {
				return arr, nil
			}
			for {
				e, err := p.expr()
				if err != nil {
					return nil, err
				}
				arr.elems = append(arr.elems, e)
				if p.punct("]") {
					return arr, nil
				}
				if err := p.expect(","); err != nil {
					return nil, err
				}
			}
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
		if p.peek().kind == tPunct && p.peek().text == "(" {
			return p.call(t)
		}
		segs := []string{t.text}
		raw := t.text
		for p.peek().kind == tPunct && p.peek().text == "." {
			p.next()
			s := p.next()
			if s.kind != tIdent {
				return nil, p.errAt(s, "expected a property name after '.' but found %s", s)
			}
			segs = append(segs, s.text)
			raw += "." + s.text
		}
		return canonPath(segs, raw, p.from), nil
	}
	if t.kind == tEOF {
		return nil, p.errAt(t, "unexpected end of query: expected a value")
	}
	return nil, p.errAt(t, "expected a value but found %s", t)
}

func (p *parser) call(name token) (expr, error) {
	fn := strings.ToUpper(name.text)
	spec, ok := functions[fn]
	if !ok {
		switch fn {
		case "STARTS_WITH":
			return nil, p.errAt(name, "unknown function STARTS_WITH: twin queries name it STARTSWITH")
		case "ENDS_WITH":
			return nil, p.errAt(name, "unknown function ENDS_WITH: twin queries name it ENDSWITH")
		}
		if aggregates[fn] {
			return nil, p.errAt(name, "%s is an aggregate: use it in the SELECT list", fn)
		}
		return nil, p.errAt(name, "unknown function %s", name.text)
	}
	p.next() // (
	c := &callExpr{name: fn, fn: spec.fn}
	if !p.punct(")") {
		for {
			e, err := p.expr()
			if err != nil {
				return nil, err
			}
			c.args = append(c.args, e)
			if p.punct(")") {
				break
			}
			if err := p.expect(","); err != nil {
				return nil, err
			}
		}
	}
	if len(c.args) < spec.min || len(c.args) > spec.max {
		want := fmt.Sprint(spec.min)
		if spec.max != spec.min {
			want = fmt.Sprintf("%d to %d", spec.min, spec.max)
		}
		return nil, p.errAt(name, "%s takes %s arguments, got %d", fn, want, len(c.args))
	}
	return c, nil
}

var twinNames = canonMap("deviceId", "moduleId", "etag", "deviceEtag", "version", "status", "statusReason",
	"statusUpdateTime", "connectionState", "lastActivityTime", "cloudToDeviceMessageCount", "authenticationType",
	"x509Thumbprint", "capabilities", "modelId", "deviceScope", "parentScopes", "tags", "properties")

var jobNames = canonMap("deviceId", "jobId", "jobType", "status", "startTimeUtc", "endTimeUtc", "createdDateTimeUtc",
	"lastUpdatedDateTimeUtc", "outcome", "error")

func canonMap(names ...string) map[string]string {
	m := map[string]string{}
	for _, n := range names {
		m[strings.ToLower(n)] = n
	}
	return m
}

// canonPath strips a collection prefix and canonicalises system names.
func canonPath(segs []string, raw string, from Collection) expr {
	if len(segs) >= 3 && strings.EqualFold(segs[0], "devices") {
		if (from == Jobs && strings.EqualFold(segs[1], "jobs")) || (from == Modules && strings.EqualFold(segs[1], "modules")) {
			segs = segs[2:]
		}
	}
	segs = append([]string(nil), segs...)
	names := twinNames
	if from == Jobs {
		names = jobNames
		if strings.EqualFold(segs[0], "createdTimeUtc") {
			segs[0] = "createdDateTimeUtc" // the doc's spelling (iothub.md §5.6)
		}
	}
	if c, ok := names[strings.ToLower(segs[0])]; ok {
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
	return &pathExpr{segs: segs, raw: raw}
}

// recanon re-canonicalises paths once FROM is known.
func recanon(e expr, from Collection) expr {
	switch x := e.(type) {
	case *pathExpr:
		return canonPath(strings.Split(x.raw, "."), x.raw, from)
	case *cmpExpr:
		return &cmpExpr{op: x.op, l: recanon(x.l, from), r: recanon(x.r, from)}
	case *arithExpr:
		return &arithExpr{op: x.op, l: recanon(x.l, from), r: recanon(x.r, from)}
	case *callExpr:
		c := *x
		c.args = make([]expr, len(x.args))
		for i, a := range x.args {
			c.args[i] = recanon(a, from)
		}
		return &c
	}
	return e
}

func sameExpr(a, b expr) bool {
	pa, ok1 := a.(*pathExpr)
	pb, ok2 := b.(*pathExpr)
	return ok1 && ok2 && strings.Join(pa.segs, ".") == strings.Join(pb.segs, ".")
}
