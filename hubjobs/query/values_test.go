package query

import (
	"encoding/json"
	"math"
	"testing"
)

// valueTests are expressions and their values over MyDevice1 of
// testdata/twins.json, as JSON ("undefined" when undefined).
var valueTests = []struct{ expr, want string }{
	// Literals.
	{"1", "1"},
	{"1.5", "1.5"},
	{"1e3", "1000"},
	{"1.5E-2", "0.015"},
	{"2e+2", "200"},
	{"0x1F", "31"},
	{"0XfF", "255"},
	{"007", "7"},
	{"'a'", `"a"`},
	{`"a"`, `"a"`},
	{`''`, `""`},
	{`'it\'s'`, `"it's"`},
	{`"it's"`, `"it's"`},
	{`'say "hi"'`, `"say \"hi\""`},
	{`"say \"hi\""`, `"say \"hi\""`},
	{`'back\\slash'`, `"back\\slash"`},
	{`'\/\b\f\n\r\t'`, `"/\b\f\n\r\t"`},
	{`'\u00e9\u00E9'`, `"éé"`},
	{`'\uD83D\uDE00'`, `"😀"`},
	{`'é日本'`, `"é日本"`},
	{"true", "true"},
	{"FALSE", "false"},
	{"null", "null"},
	{"NULL", "null"},
	{"undefined", "undefined"},
	{"[1, 'a', true, null]", `[1,"a",true,null]`},
	{"[]", "[]"},
	{"[1, undefined, tags.nope, tags.floor]", "[1,3]"},
	{"[[1], [2, [3]]]", "[[1],[2,[3]]]"},
	{"-5", "-5"},
	{"- 5", "-5"},
	{"+5", "5"},
	{"--5", "5"},
	{"+'a'", "undefined"},
	{"-'a'", "undefined"},
	// Attribute paths.
	{"deviceId", `"MyDevice1"`},
	{"DEVICEID", `"MyDevice1"`},
	{"tags.floor", "3"},
	{"tags.Floor", "undefined"},
	{"tags.location.region", `"US"`},
	{"tags.location.region.x", "undefined"},
	{"tags.location", `{"plant":"Redmond43","region":"US"}`},
	{"Properties.Desired.$version", "3"},
	{"properties.reported.connectivity", `"wifi"`},
	{"connectionstate", `"Connected"`},
	{"capabilities.iotEdge", "true"},
	{"nope", "undefined"},
	// Arithmetic.
	{"1 + 2 * 3", "7"},
	{"(1 + 2) * 3", "9"},
	{"1 - 2 - 3", "-4"},
	{"8 / 4 / 2", "1"},
	{"7 % 3", "1"},
	{"-7 % 3", "-1"},
	{"7.5 % 2", "1.5"},
	{"1 / 0", "undefined"},
	{"1 % 0", "undefined"},
	{"1e308 * 10", "undefined"},
	{"'a' + 'b'", "undefined"},
	{"'a' + 1", "undefined"},
	{"tags.floor * 2", "6"},
	{"tags.nope + 1", "undefined"},
	{"null + 1", "undefined"},
	{"true + 1", "undefined"},
	{"-tags.floor", "-3"},
	// Comparisons: primitives of one type only.
	{"1 = 1", "true"},
	{"1 = 1.0", "true"},
	{"1 = 2", "false"},
	{"1 != 2", "true"},
	{"1 <> 1", "false"},
	{"1 < 2", "true"},
	{"2 <= 2", "true"},
	{"3 > 2", "true"},
	{"2 >= 3", "false"},
	{"1 = '1'", "undefined"},
	{"1 != '1'", "undefined"},
	{"'a' < 'b'", "true"},
	{"'B' < 'a'", "true"},
	{"'a' < 'B'", "false"},
	{"'é' > 'z'", "true"},
	{"'abc' >= 'abc'", "true"},
	{"true > false", "true"},
	{"true = true", "true"},
	{"true = 1", "undefined"},
	{"null = null", "true"},
	{"null != null", "false"},
	{"null = 0", "undefined"},
	{"null != 'a'", "undefined"},
	{"[1] = [1]", "undefined"},
	{"tags.location = tags.location", "undefined"},
	{"tags.nope = tags.nope", "undefined"},
	{"undefined = undefined", "undefined"},
	{"deviceId = 'MyDevice1'", "true"},
	// Three-valued logic.
	{"true AND true", "true"},
	{"true AND false", "false"},
	{"true AND undefined", "undefined"},
	{"false AND undefined", "false"},
	{"undefined AND false", "false"},
	{"true OR undefined", "true"},
	{"undefined OR true", "true"},
	{"false OR undefined", "undefined"},
	{"false OR false", "false"},
	{"NOT true", "false"},
	{"NOT undefined", "undefined"},
	{"NOT 'a'", "undefined"},
	{"NOT null", "undefined"},
	{"'a' AND true", "undefined"},
	{"1 OR false", "undefined"},
	{"tags.nope = 1 AND false", "false"},
	// IN / NIN: the OR of equalities.
	{"'a' IN ['a', 'b']", "true"},
	{"'c' IN ['a', 'b']", "false"},
	{"'c' NIN ['a', 'b']", "true"},
	{"'a' NIN ['a', 'b']", "false"},
	{"'a' in ('a', 'b')", "true"},
	{"1 IN ['1']", "undefined"},
	{"1 NIN ['1']", "undefined"},
	{"1 IN [1, '1']", "true"},
	{"2 IN [1, '1']", "undefined"},
	{"null IN [null]", "true"},
	{"null IN ['a']", "undefined"},
	{"'a' IN []", "false"},
	{"tags.location IN ['x']", "undefined"},
	{"undefined IN [1]", "undefined"},
	{"tags.floor IN [1, 2, 3]", "true"},
	{"deviceId IN ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'MyDevice1']", "true"},
	{"deviceId IN ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j']", "false"},
	{"deviceId IN ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 1]", "undefined"},
	{"3 IN ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 3]", "true"},
	{"[1] IN [[1]]", "undefined"},
	// Type functions.
	{"IS_DEFINED(deviceId)", "true"},
	{"IS_DEFINED(null)", "true"},
	{"IS_DEFINED(undefined)", "false"},
	{"IS_DEFINED(tags.nope)", "false"},
	{"is_defined(tags)", "true"},
	{"Is_Null(null)", "true"},
	{"IS_NULL(undefined)", "false"},
	{"IS_NULL('')", "false"},
	{"IS_BOOL(true)", "true"},
	{"IS_BOOL('true')", "false"},
	{"IS_NUMBER(1)", "true"},
	{"IS_NUMBER('1')", "false"},
	{"IS_NUMBER(tags.nope)", "false"},
	{"IS_STRING('')", "true"},
	{"IS_STRING(1)", "false"},
	{"IS_ARRAY([])", "true"},
	{"IS_ARRAY(tags)", "false"},
	{"IS_OBJECT(tags.location)", "true"},
	{"IS_OBJECT([])", "false"},
	{"IS_OBJECT(null)", "false"},
	{"IS_PRIMITIVE(null)", "true"},
	{"IS_PRIMITIVE('a')", "true"},
	{"IS_PRIMITIVE([1])", "false"},
	{"IS_PRIMITIVE(undefined)", "false"},
	// String functions.
	{"STARTSWITH('abc', 'ab')", "true"},
	{"STARTSWITH('abc', 'AB')", "false"},
	{"STARTSWITH('abc', 'AB', true)", "true"},
	{"STARTSWITH('abc', 'AB', false)", "false"},
	{"STARTSWITH('abc', 'AB', 1)", "undefined"},
	{"STARTSWITH(1, 'a')", "undefined"},
	{"STARTSWITH(tags.nope, 'a')", "undefined"},
	{"ENDSWITH('abc', 'bc')", "true"},
	{"EndsWith('abc', 'BC', true)", "true"},
	{"ENDSWITH('abc', 'b')", "false"},
	{"CONTAINS('abc', 'b')", "true"},
	{"CONTAINS('abc', 'B', true)", "true"},
	{"CONTAINS('abc', 'x')", "false"},
	{"CONTAINS(['b'], 'b')", "undefined"},
	{"LOWER('AbÇ')", `"abç"`},
	{"UPPER('abç')", `"ABÇ"`},
	{"LOWER(1)", "undefined"},
	{"LENGTH('héllo')", "5"},
	{"LENGTH('')", "0"},
	{"LENGTH(5)", "undefined"},
	{"LENGTH(tags.list)", "undefined"},
	{"CONCAT('a', 'b')", `"ab"`},
	{"CONCAT('a', 'b', 'c', deviceId)", `"abcMyDevice1"`},
	{"CONCAT('a', 1)", "undefined"},
	{"SUBSTRING('hello', 1, 3)", `"ell"`},
	{"SUBSTRING('hello', 0, 0)", `""`},
	{"SUBSTRING('hello', -1, 2)", `"he"`},
	{"SUBSTRING('hello', 3, 100)", `"lo"`},
	{"SUBSTRING('hello', 9, 1)", `""`},
	{"SUBSTRING('hello', 1, -1)", `""`},
	{"SUBSTRING('héllo', 1, 1)", `"é"`},
	{"SUBSTRING('hello', 1.9, 1)", `"e"`},
	{"SUBSTRING('hello', 1e300, 1e300)", `""`},
	{"SUBSTRING('hello', '1', 1)", "undefined"},
	{"INDEX_OF('hello', 'l')", "2"},
	{"INDEX_OF('hello', 'z')", "-1"},
	{"INDEX_OF('héllo', 'l')", "2"},
	{"INDEX_OF('hello', '')", "0"},
	{"INDEX_OF(1, 'l')", "undefined"},
	// Array functions.
	{"ARRAY_CONTAINS(['a', 'b'], 'b')", "true"},
	{"ARRAY_CONTAINS([1, 2], '1')", "false"},
	{"ARRAY_CONTAINS([1, 2], 2)", "true"},
	{"ARRAY_CONTAINS([[1], 2], [1])", "true"},
	{"ARRAY_CONTAINS([null], null)", "true"},
	{"ARRAY_CONTAINS('ab', 'a')", "undefined"},
	{"ARRAY_CONTAINS(['a'], undefined)", "undefined"},
	{"ARRAY_CONTAINS(tags.nope, 'a')", "undefined"},
	// Math functions.
	{"ABS(-2)", "2"},
	{"ABS(2.5)", "2.5"},
	{"ABS('2')", "undefined"},
	{"CEILING(1.2)", "2"},
	{"CEILING(-1.2)", "-1"},
	{"FLOOR(1.8)", "1"},
	{"FLOOR(-1.2)", "-2"},
	{"SIGN(-3)", "-1"},
	{"SIGN(0)", "0"},
	{"SIGN(0.5)", "1"},
	{"SQRT(16)", "4"},
	{"SQRT(-1)", "undefined"},
	{"SQUARE(3)", "9"},
	{"SQUARE(-1.5)", "2.25"},
	{"POWER(2, 10)", "1024"},
	{"POWER(4, 0.5)", "2"},
	{"POWER(0, -1)", "undefined"},
	{"POWER('2', 2)", "undefined"},
	{"EXP(0)", "1"},
	{"EXP(1000)", "undefined"},
	{"AS_NUMBER('42')", "42"},
	{"AS_NUMBER(' -1.5e2 ')", "-150"},
	{"AS_NUMBER('+0x10')", "16"},
	{"AS_NUMBER('3.')", "undefined"},
	{"AS_NUMBER('abc')", "undefined"},
	{"AS_NUMBER('')", "undefined"},
	{"AS_NUMBER(true)", "undefined"},
	{"AS_NUMBER(7)", "7"},
	{"AS_NUMBER(tags.building)", "43"},
	// Nesting and case-insensitive names.
	{"lower(Upper('aB'))", `"ab"`},
	{"LENGTH(CONCAT(deviceId, '-', SUBSTRING('xyz', 0, 1)))", "11"},
	{"ABS(tags.floor - 10) + SQUARE(2)", "11"},
}

// valueOf evaluates expr over doc through a projection: (nil, false) when
// the value is undefined.
func valueOf(t *testing.T, expr string, doc map[string]any) (any, bool) {
	t.Helper()
	q, err := Parse("SELECT " + expr + " AS v FROM devices")
	if err != nil {
		t.Fatalf("Parse(%q): %v", expr, err)
	}
	v, ok := q.project(doc).(map[string]any)["v"]
	return v, ok
}

func TestValues(t *testing.T) {
	src := fixture(t, Devices)
	doc := src.docs["MyDevice1"]
	for _, tt := range valueTests {
		v, ok := valueOf(t, tt.expr, doc)
		got := "undefined"
		if ok {
			got = jsonOf(v)
		}
		if got != tt.want {
			t.Errorf("%s = %s, want %s", tt.expr, got, tt.want)
		}
		// As a condition, only true selects.
		c, err := ParseCondition(tt.expr)
		if err != nil {
			t.Errorf("ParseCondition(%q): %v", tt.expr, err)
			continue
		}
		if m := c.Match(doc); m != (got == "true") {
			t.Errorf("Match(%s) = %v with value %s", tt.expr, m, got)
		}
		wantEval := any(nil)
		if got == "true" || got == "false" {
			wantEval = got == "true"
		}
		if e := c.Eval(doc); e != wantEval {
			t.Errorf("Eval(%s) = %v, want %v", tt.expr, e, wantEval)
		}
	}
}

// Documents built by hand may hold numbers of other Go types.
func TestGoNumberTypes(t *testing.T) {
	doc := map[string]any{"deviceId": "d", "version": 7, "tags": map[string]any{"n": int64(3), "f": float32(1.5), "j": json.Number("2")}}
	for _, cond := range []string{"version = 7", "tags.n = 3", "tags.n IN [3]", "tags.f = 1.5", "tags.j = 2", "tags.n + tags.j = 5", "ABS(tags.n) = 3", "IS_NUMBER(tags.n)", "IS_PRIMITIVE(tags.j)"} {
		q, err := ParseCondition(cond)
		if err != nil {
			t.Fatal(err)
		}
		if !q.Match(doc) {
			t.Errorf("%s does not match %v", cond, doc)
		}
		src := newMem([]map[string]any{doc}, func(map[string]any) string { return "d" })
		var n int
		_ = q.Select(src, src.index(), func(string) bool { n++; return true })
		if n != 1 {
			t.Errorf("%s through the index selects %d", cond, n)
		}
	}
	// NaN never compares.
	nan := map[string]any{"tags": map[string]any{"x": math.NaN()}}
	for _, cond := range []string{"tags.x = tags.x", "tags.x != 1", "SUBSTRING('abc', tags.x, 1) = 'a'"} {
		q, _ := ParseCondition(cond)
		if q.Match(nan) {
			t.Errorf("%s matches NaN", cond)
		}
	}
}
