package query

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"unicode/utf8"
)

var update = flag.Bool("update", false, "rewrite testdata/errors.golden")

// errorTests are malformed queries (Parse) and conditions (ParseCondition,
// marked "cond: "); their messages are in testdata/errors.golden.
var errorTests = []string{
	// Structure.
	"",
	"   ",
	"SELECT",
	"SELECT *",
	"SELECT * FORM devices",
	"SELECT * FROM",
	"SELECT * FROM things",
	"SELECT * FROM devices.things",
	"SELECT * FROM devices.",
	"SELECT * FROM devices WHERE",
	"SELECT * FROM devices WHERE deviceId = 'a' ORDER BY deviceId",
	"SELECT * FROM devices WHERE a = 1 b",
	"SELECT * FROM devices GROUP deviceId",
	"SELECT * FROM devices GROUP BY deviceId",
	"SELECT deviceId FROM devices GROUP BY 1 + 1",
	"SELECT * deviceId FROM devices",
	"SELECT *, deviceId FROM devices",
	"SELECT deviceId, FROM devices",
	"SELECT deviceId AS FROM devices",
	"SELECT deviceId AS 'id' FROM devices",
	"SELECT deviceId, tags.deviceId FROM devices",
	"SELECT TOP x * FROM devices",
	"SELECT TOP 1.5 * FROM devices",
	"SELECT TOP -1 * FROM devices",
	"SELECT TOP 99999999999 * FROM devices",
	"DELETE FROM devices",
	// Expressions.
	"SELECT * FROM devices WHERE (tags.x = 1",
	"SELECT * FROM devices WHERE (tags.x = 1 AND tags.y = 2",
	"SELECT * FROM devices WHERE (tags.x = 1 AND tags.y = 2))",
	"SELECT * FROM devices WHERE tags.x = 1 AND",
	"SELECT * FROM devices WHERE tags.x = 1 AND OR tags.y = 2",
	"SELECT * FROM devices WHERE tags.x == 1",
	"SELECT * FROM devices WHERE deviceId ! 'a'",
	"SELECT * FROM devices WHERE tags.x = = 1",
	"SELECT * FROM devices WHERE tags.x = 1 = 1",
	"SELECT * FROM devices WHERE tags. = 1",
	"SELECT * FROM devices WHERE tags..x = 1",
	"SELECT * FROM devices WHERE .x = 1",
	"SELECT * FROM devices WHERE tags.x = [1, 2",
	"SELECT * FROM devices WHERE tags.x = [1 2]",
	"SELECT * FROM devices WHERE tags.x IN 'a'",
	"SELECT * FROM devices WHERE tags.x IN [tags.y]",
	"SELECT * FROM devices WHERE tags.x NIN tags.y",
	"SELECT * FROM devices WHERE tags.x IN ('a' 'b')",
	"SELECT * FROM devices WHERE NOT",
	"SELECT * FROM devices WHERE select = 1",
	"SELECT * FROM devices WHERE tags.x = 1 @",
	"SELECT * FROM devices WHERE x = 'é' AND @",
	"SELECT * FROM devices WHERE x = 'é' AND deviceId = '日本",
	"SELECT * FROM devices WHERE x = 1;",
	"SELECT * FROM devices WHERE x = `a`",
	// Literals.
	"SELECT * FROM devices WHERE deviceId = 'abc",
	`SELECT * FROM devices WHERE deviceId = "abc`,
	`SELECT * FROM devices WHERE deviceId = 'ab\'`,
	`SELECT * FROM devices WHERE deviceId = 'a\qb'`,
	`SELECT * FROM devices WHERE deviceId = 'a\u12'`,
	`SELECT * FROM devices WHERE deviceId = 'a\u12G4'`,
	"SELECT * FROM devices WHERE x = 12abc",
	"SELECT * FROM devices WHERE x = 1e",
	"SELECT * FROM devices WHERE x = 1e+",
	"SELECT * FROM devices WHERE x = 1.5.5",
	"SELECT * FROM devices WHERE x = 0x",
	"SELECT * FROM devices WHERE x = 0xZZ",
	"SELECT * FROM devices WHERE x = 0x1FFFFFFFFFFFFFFFFF",
	"SELECT * FROM devices WHERE x = 1e999",
	"SELECT * FROM devices WHERE x = .5",
	// Functions.
	"SELECT * FROM devices WHERE STARTS_WITH(deviceId, 'a')",
	"SELECT * FROM devices WHERE ends_with(deviceId, 'a')",
	"SELECT * FROM devices WHERE LOWER(a, b) = 'x'",
	"SELECT * FROM devices WHERE LOWER() = 'x'",
	"SELECT * FROM devices WHERE SUBSTRING('a', 1) = 'x'",
	"SELECT * FROM devices WHERE STARTSWITH('a')",
	"SELECT * FROM devices WHERE CONCAT('a') = 'a'",
	"SELECT * FROM devices WHERE NOPE(a)",
	"SELECT * FROM devices WHERE COUNT() > 1",
	"SELECT * FROM devices WHERE LOWER(a",
	"SELECT * FROM devices WHERE LOWER(a,)",
	// Aggregates and projections.
	"SELECT COUNT(deviceId) FROM devices",
	"SELECT COUNT(*) FROM devices",
	"SELECT SUM() FROM devices",
	"SELECT AVG(tags.x FROM devices",
	"SELECT deviceId, COUNT() AS n FROM devices",
	"SELECT tags.x, COUNT() AS n FROM devices GROUP BY tags.y",
	"SELECT COUNT() AS n, COUNT() AS n FROM devices",
	"SELECT COUNT(), COUNT() FROM devices",
	"SELECT COUNT() + 1 FROM devices",
	// devices.jobs (docs/iothub.md §5.6).
	"SELECT deviceId FROM devices.jobs",
	"SELECT COUNT() AS n FROM devices.jobs",
	"SELECT * FROM devices.jobs WHERE tags.building = '43'",
	"SELECT * FROM devices.jobs WHERE properties.reported.x = 1",
	"SELECT * FROM devices.jobs WHERE devices.jobs.nope = 1",
	"SELECT * FROM devices.jobs GROUP BY status",
	"SELECT * FROM devices WHERE devices.jobs.jobId = 'x'",
	"SELECT * FROM devices WHERE devices.modules.moduleId = 'x'",
	// Nesting and length.
	"SELECT * FROM devices WHERE " + strings.Repeat("(", 300) + "true" + strings.Repeat(")", 300),
	"SELECT * FROM devices WHERE x = " + strings.Repeat("-", 300) + "1",
	"SELECT * FROM devices WHERE x IN " + strings.Repeat("[", 300) + strings.Repeat("]", 300),
	"cond: " + strings.Repeat("NOT ", 300) + "true",
	"cond: " + strings.Repeat("LOWER(", 300) + "'a'" + strings.Repeat(")", 300) + " = 'a'",
	"cond: " + strings.Repeat("(", 256) + "true" + strings.Repeat(")", 256) + " AND " + strings.Repeat("(", 257) + "true" + strings.Repeat(")", 257),
	"SELECT * FROM devices WHERE " + strings.Repeat("a", 8200),
	// Job queryConditions (docs/iothub.md §5.2).
	"cond: ",
	"cond: SELECT * FROM devices",
	"cond: select * from devices where deviceId = 'a'",
	"cond: deviceId = ",
	"cond: deviceId = 'a' deviceId = 'b'",
	"cond: FROM devices.jobs WHERE jobId = 'x'",
	"cond: FROM devices WHERE",
	"cond: FROM devices deviceId = 'a'",
	"cond: FROM WHERE deviceId = 'a'",
	"cond: * AND deviceId = 'a'",
	"cond: **",
	"cond: WHERE",
	"cond: STARTS_WITH(deviceId, 'test')",
	"cond: deviceId IN ['a', 'b'",
	"cond: \xff",
	"cond: deviceId = '\xffabc'",
}

func parseForTest(s string) (*Query, error) {
	if c, ok := strings.CutPrefix(s, "cond: "); ok {
		return ParseCondition(c)
	}
	return Parse(s)
}

func TestErrorsGolden(t *testing.T) {
	var b strings.Builder
	for _, in := range errorTests {
		_, err := parseForTest(in)
		if err == nil {
			t.Errorf("%q parses", in)
			continue
		}
		var qe *Error
		if !errors.As(err, &qe) || !errors.Is(err, ErrInvalidQuery) {
			t.Errorf("%q: error %v (%T) is not a *Error matching ErrInvalidQuery", in, err, err)
			continue
		}
		text := strings.TrimPrefix(in, "cond: ")
		if n := utf8.RuneCountInString(text); qe.Pos < 1 || qe.Pos > max(n+1, 8193) {
			t.Errorf("%q: position %d outside 1..%d", in, qe.Pos, n+1)
		}
		shown := in
		if len(shown) > 80 {
			shown = shown[:60] + fmt.Sprintf("... (%d bytes)", len(in))
		}
		fmt.Fprintf(&b, "%q\n\t%s\n", shown, err)
	}
	const golden = "testdata/errors.golden"
	if *update {
		if err := os.WriteFile(golden, []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (run go test -run TestErrorsGolden -update)", err)
	}
	gotLines, wantLines := strings.Split(b.String(), "\n"), strings.Split(string(want), "\n")
	for i := 0; i < max(len(gotLines), len(wantLines)); i++ {
		var g, w string
		if i < len(gotLines) {
			g = gotLines[i]
		}
		if i < len(wantLines) {
			w = wantLines[i]
		}
		if g != w {
			t.Errorf("errors.golden line %d:\n got %s\nwant %s", i+1, g, w)
		}
	}
}
