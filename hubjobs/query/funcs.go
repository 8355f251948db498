package query

import (
	"fmt"
	"math"
	"reflect"
	"strings"
	"unicode/utf8"
)

// fnSpec is a built-in function. fn handles every arity; f1 and f2, when
// set, are allocation-free fast paths for one and two arguments.
type fnSpec struct {
	min, max int // max -1: no limit
	fn       func(args []any) any
	f1       func(a any) any
	f2       func(a, b any) any
}

func (s *fnSpec) arity() string {
	switch {
	case s.max < 0:
		return fmt.Sprintf("at least %d arguments", s.min)
	case s.min == s.max && s.min == 1:
		return "1 argument"
	case s.min == s.max:
		return fmt.Sprintf("%d arguments", s.min)
	}
	return fmt.Sprintf("%d to %d arguments", s.min, s.max)
}

func fn1(f func(a any) any) *fnSpec {
	return &fnSpec{min: 1, max: 1, f1: f, fn: func(a []any) any { return f(a[0]) }}
}

func fn2(f func(a, b any) any) *fnSpec {
	return &fnSpec{min: 2, max: 2, f2: f, fn: func(a []any) any { return f(a[0], a[1]) }}
}

// typeTest is an IS_* function: always a boolean, false for undefined.
func typeTest(test func(v any) bool) *fnSpec {
	return fn1(func(v any) any { return !isUndef(v) && test(v) })
}

// strTest is STARTSWITH / ENDSWITH / CONTAINS: two strings and an optional
// boolean "ignore case" (as in Cosmos DB); anything else is undefined.
func strTest(f func(s, sub string) bool) *fnSpec {
	two := func(a, b any) any {
		s, ok1 := a.(string)
		t, ok2 := b.(string)
		if !ok1 || !ok2 {
			return undefined
		}
		return f(s, t)
	}
	return &fnSpec{min: 2, max: 3, f2: two, fn: func(a []any) any {
		if len(a) == 2 {
			return two(a[0], a[1])
		}
		fold, ok := a[2].(bool)
		if !ok {
			return undefined
		}
		if fold {
			s, ok1 := a[0].(string)
			t, ok2 := a[1].(string)
			if !ok1 || !ok2 {
				return undefined
			}
			return f(strings.ToLower(s), strings.ToLower(t))
		}
		return two(a[0], a[1])
	}}
}

func strFn(f func(s string) any) *fnSpec {
	return fn1(func(v any) any {
		s, ok := v.(string)
		if !ok {
			return undefined
		}
		return f(s)
	})
}

func mathFn(f func(float64) float64) *fnSpec {
	return fn1(func(v any) any {
		x, ok := num(v)
		if !ok {
			return undefined
		}
		return finite(f(x))
	})
}

// functions are the built-in functions by upper-case name (docs/iothub.md §6).
var functions map[string]*fnSpec

func init() {
	functions = map[string]*fnSpec{
		// IS_DEFINED is true for null too: null is a value.
		"IS_DEFINED":   typeTest(func(any) bool { return true }),
		"IS_NULL":      typeTest(func(v any) bool { return v == nil }),
		"IS_BOOL":      typeTest(func(v any) bool { _, ok := v.(bool); return ok }),
		"IS_NUMBER":    typeTest(func(v any) bool { return kindOf(v) == kNumber }),
		"IS_STRING":    typeTest(func(v any) bool { _, ok := v.(string); return ok }),
		"IS_ARRAY":     typeTest(func(v any) bool { _, ok := v.([]any); return ok }),
		"IS_OBJECT":    typeTest(func(v any) bool { _, ok := v.(map[string]any); return ok }),
		"IS_PRIMITIVE": typeTest(isPrimitive),

		"STARTSWITH": strTest(strings.HasPrefix),
		"ENDSWITH":   strTest(strings.HasSuffix),
		"CONTAINS":   strTest(strings.Contains),
		"LOWER":      strFn(func(s string) any { return strings.ToLower(s) }),
		"UPPER":      strFn(func(s string) any { return strings.ToUpper(s) }),
		"LENGTH":     strFn(func(s string) any { return float64(utf8.RuneCountInString(s)) }),
		"INDEX_OF": fn2(func(a, b any) any {
			s, ok1 := a.(string)
			t, ok2 := b.(string)
			if !ok1 || !ok2 {
				return undefined
			}
			i := strings.Index(s, t)
			if i < 0 {
				return -1.0
			}
			return float64(utf8.RuneCountInString(s[:i]))
		}),
		"CONCAT": {min: 2, max: -1, fn: func(a []any) any {
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
		// SUBSTRING(s, start, length): 0-based character positions, clamped.
		"SUBSTRING": {min: 3, max: 3, fn: func(a []any) any {
			s, ok := a[0].(string)
			off, ok2 := num(a[1])
			n, ok3 := num(a[2])
			if !ok || !ok2 || !ok3 || math.IsNaN(off) || math.IsNaN(n) {
				return undefined
			}
			r := []rune(s)
			start := clampInt(math.Trunc(off), 0, len(r))
			end := clampInt(float64(start)+math.Trunc(n), start, len(r))
			return string(r[start:end])
		}},
		// ARRAY_CONTAINS(array, value): true when an element equals value
		// (primitives compare as =, objects and arrays deeply).
		"ARRAY_CONTAINS": fn2(func(a, b any) any {
			arr, ok := a.([]any)
			if !ok || isUndef(b) {
				return undefined
			}
			prim := isPrimitive(b)
			for _, e := range arr {
				if prim {
					if c, ok := order(e, b); ok && c == 0 {
						return true
					}
				} else if reflect.DeepEqual(e, b) {
					return true
				}
			}
			return false
		}),

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
		"POWER": fn2(func(a, b any) any {
			x, ok1 := num(a)
			y, ok2 := num(b)
			if !ok1 || !ok2 {
				return undefined
			}
			return finite(math.Pow(x, y))
		}),
		// AS_NUMBER: a number as is, a string holding a number (decimal,
		// exponent or 0x hex, optionally signed) as that number.
		"AS_NUMBER": fn1(func(v any) any {
			if f, ok := num(v); ok {
				return f
			}
			s, ok := v.(string)
			if !ok {
				return undefined
			}
			if f, ok := parseNumber(s); ok {
				return f
			}
			return undefined
		}),
	}
}

func clampInt(f float64, lo, hi int) int {
	switch {
	case f < float64(lo):
		return lo
	case f > float64(hi):
		return hi
	}
	return int(f)
}

// parseNumber reads a whole string as a number literal with optional sign
// and surrounding spaces.
func parseNumber(s string) (float64, bool) {
	s = strings.TrimSpace(s)
	neg := false
	if s != "" && (s[0] == '-' || s[0] == '+') {
		neg = s[0] == '-'
		s = s[1:]
	}
	if s == "" || !isDigit(s[0]) {
		return 0, false
	}
	j, v, err := lexNumber(s, 0)
	if err != nil || j != len(s) {
		return 0, false
	}
	if neg {
		v = -v
	}
	return v, true
}
