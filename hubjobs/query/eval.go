package query

import (
	"math"
	"strings"
	"unicode/utf8"
)

// undefinedT is the type of undefined: a missing property or a meaningless
// comparison. It is never selected and never equal to anything.
type undefinedT struct{}

var undefined any = undefinedT{}

func isUndef(v any) bool { _, ok := v.(undefinedT); return ok }

type expr interface {
	eval(doc map[string]any) any
}

type literal struct{ v any }

func (l *literal) eval(map[string]any) any { return l.v }

type pathExpr struct {
	segs []string
	raw  string
}

func (p *pathExpr) eval(doc map[string]any) any {
	var cur any = doc
	for _, s := range p.segs {
		m, ok := cur.(map[string]any)
		if !ok {
			return undefined
		}
		if cur, ok = m[s]; !ok {
			return undefined
		}
	}
	return cur
}

type arrayExpr struct{ elems []expr }

func (a *arrayExpr) eval(doc map[string]any) any {
	out := make([]any, len(a.elems))
	for i, e := range a.elems {
		out[i] = e.eval(doc)
	}
	return out
}

func (a *arrayExpr) constant() bool {
	for _, e := range a.elems {
		if _, ok := e.(*literal); !ok {
			return false
		}
	}
	return true
}

func (a *arrayExpr) values() []any { return a.eval(nil).([]any) }

type logicExpr struct {
	and  bool
	l, r expr
}

func (e *logicExpr) eval(doc map[string]any) any {
	l, lok := e.l.eval(doc).(bool)
	if e.and && lok && !l {
		return false
	}
	if !e.and && lok && l {
		return true
	}
	r, rok := e.r.eval(doc).(bool)
	if e.and {
		if rok && !r {
			return false
		}
		if lok && rok {
			return true
		}
		return undefined
	}
	if rok && r {
		return true
	}
	if lok && rok {
		return false
	}
	return undefined
}

type notExpr struct{ x expr }

func (e *notExpr) eval(doc map[string]any) any {
	if b, ok := e.x.eval(doc).(bool); ok {
		return !b
	}
	return undefined
}

type cmpExpr struct {
	op   string
	l, r expr
}

func (e *cmpExpr) eval(doc map[string]any) any {
	return compare(e.op, e.l.eval(doc), e.r.eval(doc))
}

// compare applies op to two values: only primitives of the same type compare;
// anything else is undefined (iothub.md §6).
func compare(op string, a, b any) any {
	c, ok := order(a, b)
	if !ok {
		if (op == "=" || op == "!=") && a == nil && b == nil {
			return op == "="
		}
		return undefined
	}
	switch op {
	case "=":
		return c == 0
	case "!=":
		return c != 0
	case "<":
		return c < 0
	case ">":
		return c > 0
	case "<=":
		return c <= 0
	case ">=":
		return c >= 0
	}
	return undefined
}

// order compares two primitives of the same type.
func order(a, b any) (int, bool) {
	switch x := a.(type) {
	case float64:
		y, ok := b.(float64)
		if !ok {
			return 0, false
		}
		switch {
		case x < y:
			return -1, true
		case x > y:
			return 1, true
		}
		return 0, true
	case string:
		y, ok := b.(string)
		if !ok {
			return 0, false
		}
		return strings.Compare(x, y), true
	case bool:
		y, ok := b.(bool)
		if !ok {
			return 0, false
		}
		switch {
		case x == y:
			return 0, true
		case !x:
			return -1, true
		}
		return 1, true
	}
	return 0, false
}

type inExpr struct {
	x    expr
	list []any
	neg  bool
}

func (e *inExpr) eval(doc map[string]any) any {
	v := e.x.eval(doc)
	if !isPrimitive(v) {
		return undefined
	}
	found := false
	for _, c := range e.list {
		if eq, ok := compare("=", v, c).(bool); ok && eq {
			found = true
			break
		}
	}
	return found != e.neg
}

func isPrimitive(v any) bool {
	switch v.(type) {
	case float64, string, bool, nil:
		return true
	}
	return false
}

type arithExpr struct {
	op   byte
	l, r expr
}

func (e *arithExpr) eval(doc map[string]any) any {
	a, ok1 := e.l.eval(doc).(float64)
	b, ok2 := e.r.eval(doc).(float64)
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
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return undefined
	}
	return v
}

type callExpr struct {
	name string
	fn   func(args []any) any
	args []expr
}

func (c *callExpr) eval(doc map[string]any) any {
	args := make([]any, len(c.args))
	for i, a := range c.args {
		args[i] = a.eval(doc)
	}
	return c.fn(args)
}

type fnSpec struct {
	min, max int
	fn       func(args []any) any
}

func typeTest(test func(v any) bool) fnSpec {
	return fnSpec{1, 1, func(a []any) any {
		if isUndef(a[0]) {
			return false
		}
		return test(a[0])
	}}
}

func strFn(n int, f func(s []string) any) fnSpec {
	return fnSpec{n, n, func(a []any) any {
		s := make([]string, len(a))
		for i, v := range a {
			x, ok := v.(string)
			if !ok {
				return undefined
			}
			s[i] = x
		}
		return f(s)
	}}
}

func mathFn(f func(float64) float64) fnSpec {
	return fnSpec{1, 1, func(a []any) any {
		x, ok := a[0].(float64)
		if !ok {
			return undefined
		}
		v := f(x)
		if math.IsNaN(v) || math.IsInf(v, 0) {
			return undefined
		}
		return v
	}}
}

var functions map[string]fnSpec

func init() {
	functions = map[string]fnSpec{
		"IS_DEFINED":   typeTest(func(any) bool { return true }),
		"IS_NULL":      typeTest(func(v any) bool { return v == nil }),
		"IS_BOOL":      typeTest(func(v any) bool { _, ok := v.(bool); return ok }),
		"IS_NUMBER":    typeTest(func(v any) bool { _, ok := v.(float64); return ok }),
		"IS_STRING":    typeTest(func(v any) bool { _, ok := v.(string); return ok }),
		"IS_ARRAY":     typeTest(func(v any) bool { _, ok := v.([]any); return ok }),
		"IS_OBJECT":    typeTest(func(v any) bool { _, ok := v.(map[string]any); return ok }),
		"IS_PRIMITIVE": typeTest(isPrimitive),
		"STARTSWITH":   strFn(2, func(s []string) any { return strings.HasPrefix(s[0], s[1]) }),
		"ENDSWITH":     strFn(2, func(s []string) any { return strings.HasSuffix(s[0], s[1]) }),
		"CONTAINS":     strFn(2, func(s []string) any { return strings.Contains(s[0], s[1]) }),
		"LOWER":        strFn(1, func(s []string) any { return strings.ToLower(s[0]) }),
		"UPPER":        strFn(1, func(s []string) any { return strings.ToUpper(s[0]) }),
		"LENGTH":       strFn(1, func(s []string) any { return float64(utf8.RuneCountInString(s[0])) }),
		"INDEX_OF": strFn(2, func(s []string) any {
			i := strings.Index(s[0], s[1])
			if i < 0 {
				return -1.0
			}
			return float64(utf8.RuneCountInString(s[0][:i]))
		}),
		"CONCAT": {2, 16, func(a []any) any {
			var b strings.Builder
			for _, v := range a {
				s, ok := v.(string)
				if !ok {
					return undefined
				}
				b.WriteString(s)
			}
			return b.String()
		}},
		"SUBSTRING": {3, 3, func(a []any) any {
			s, ok := a[0].(string)
			off, ok2 := a[1].(float64)
			n, ok3 := a[2].(float64)
			if !ok || !ok2 || !ok3 {
				return undefined
			}
			r := []rune(s)
			start := int(math.Max(0, math.Min(off, float64(len(r)))))
			end := int(math.Max(float64(start), math.Min(float64(start)+n, float64(len(r)))))
			return string(r[start:end])
		}},
		"ARRAY_CONTAINS": {2, 2, func(a []any) any {
			arr, ok := a[0].([]any)
			if !ok || !isPrimitive(a[1]) {
				return undefined
			}
			for _, e := range arr {
				if eq, ok := compare("=", e, a[1]).(bool); ok && eq {
					return true
				}
			}
			return false
		}},
		"ABS":     mathFn(math.Abs),
		"CEILING": mathFn(math.Ceil),
		"FLOOR":   mathFn(math.Floor),
		"SIGN": mathFn(func(x float64) float64 {
			switch {
			case x > 0:
				return 1
			case x < 0:
				return -1
			}
			return 0
		}),
		"SQRT":   mathFn(math.Sqrt),
		"SQUARE": mathFn(func(x float64) float64 { return x * x }),
		"EXP":    mathFn(math.Exp),
		"POWER": {2, 2, func(a []any) any {
			x, ok1 := a[0].(float64)
			y, ok2 := a[1].(float64)
			if !ok1 || !ok2 {
				return undefined
			}
			v := math.Pow(x, y)
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return undefined
			}
			return v
		}},
		"AS_NUMBER": {1, 1, func(a []any) any {
			switch x := a[0].(type) {
			case float64:
				return x
			case string:
				if x != "" && x[0] >= '0' && x[0] <= '9' {
					if j, v, err := lexNumber(x, 0); err == nil && j == len(x) {
						return v
					}
				}
			}
			return undefined
		}},
	}
}

// Match reports whether doc satisfies the WHERE condition: only boolean true selects.
func (q *Query) Match(doc map[string]any) bool {
	if q.where == nil {
		return true
	}
	b, ok := q.where.eval(doc).(bool)
	return ok && b
}
