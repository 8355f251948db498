package query

import (
	"fmt"
	"testing"
)

var benchSizes = []int{1_000, 10_000, 100_000}

// BenchmarkScan evaluates a WHERE condition that no index can answer over
// every twin: evals/s is conditions evaluated per second, ns/scan the time
// of one full pass.
func BenchmarkScan(b *testing.B) {
	q, err := ParseCondition("properties.reported.n >= 0 AND tags.floor > 2 AND STARTSWITH(deviceId, 'dev') AND status != 'disabled'")
	if err != nil {
		b.Fatal(err)
	}
	for _, n := range benchSizes {
		src := synthetic(n)
		b.Run(fmt.Sprintf("twins=%d", n), func(b *testing.B) {
			matched := 0
			for b.Loop() {
				matched = 0
				_ = q.Select(src, nil, func(string) bool { matched++; return true })
			}
			if matched == 0 {
				b.Fatal("nothing matched")
			}
			b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "evals/s")
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/scan")
		})
	}
}

// BenchmarkMatch is the cost of one condition evaluation on one twin.
func BenchmarkMatch(b *testing.B) {
	doc := syntheticTwin(3)
	for _, cond := range []string{
		"tags.building = '43'",
		"properties.reported.n >= 0 AND tags.floor > 2 AND STARTSWITH(deviceId, 'dev')",
		"deviceId IN ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'dev-000003']",
	} {
		q, _ := ParseCondition(cond)
		b.Run(cond, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				q.Match(doc)
			}
		})
	}
}

// BenchmarkIndexedLookup runs selective conditions through the index over
// twin populations of each size: ns/query is the time to produce every key.
func BenchmarkIndexedLookup(b *testing.B) {
	for _, n := range benchSizes {
		src := synthetic(n)
		idx := src.index()
		for _, cond := range []string{
			"tags.building = '43' AND tags.floor = 3",
			fmt.Sprintf("deviceId IN ['dev-000010', 'dev-%06d', 'dev-%06d']", n/2, n-1),
		} {
			q, _ := ParseCondition(cond)
			if _, ok := idx.candidates(q.where); !ok {
				b.Fatalf("%s does not use the index", cond)
			}
			b.Run(fmt.Sprintf("twins=%d/%s", n, cond), func(b *testing.B) {
				keys := 0
				for b.Loop() {
					keys = 0
					_ = q.Select(src, idx, func(string) bool { keys++; return true })
				}
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N), "ns/query")
				b.ReportMetric(float64(keys), "keys/query")
			})
		}
	}
}

// BenchmarkPage is one 100-row page of an indexed query deep into a 100k result.
func BenchmarkPage(b *testing.B) {
	src := synthetic(100_000)
	idx := src.index()
	q, _ := Parse("SELECT * FROM devices WHERE status = 'enabled' AND tags.floor >= 1")
	p, _ := q.Execute(src, idx, 1000, "")
	for b.Loop() {
		_, _ = q.Execute(src, idx, 100, p.Continuation)
	}
}

// BenchmarkIndexUpdate is the cost of re-indexing a twin whose reported
// properties changed (no indexed value changed) and one whose tags changed.
func BenchmarkIndexUpdate(b *testing.B) {
	src := synthetic(100_000)
	idx := src.index()
	d := src.docs["dev-000042"]
	moved := syntheticTwin(43)
	moved["deviceId"] = "dev-000042"
	b.Run("unchanged", func(b *testing.B) {
		for b.Loop() {
			idx.Update("dev-000042", d, d)
		}
	})
	b.Run("tags changed", func(b *testing.B) {
		docs := [2]map[string]any{d, moved}
		i := 0
		for b.Loop() {
			idx.Update("dev-000042", docs[i%2], docs[(i+1)%2])
			i++
		}
	})
}

// BenchmarkParse parses a typical query.
func BenchmarkParse(b *testing.B) {
	const text = "SELECT * FROM devices WHERE tags.location.region = 'US' AND properties.reported.telemetryConfig.sendFrequencyInSecs >= 60 AND deviceId IN ['a', 'b', 'c']"
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(text); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAddKeys indexes the rows of a job over 100k devices at once, as
// the jobs engine does when a job starts, into an index that already holds
// the rows of an earlier job over the same devices.
func BenchmarkAddKeys(b *testing.B) {
	const n = 100_000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("dev-%06d", i)
	}
	rows := func(job string) ([]string, func(int) map[string]any) {
		keys := make([]string, n)
		for i, id := range ids {
			keys[i] = job + "/" + id
		}
		return keys, func(i int) map[string]any {
			return map[string]any{"deviceId": ids[i], "jobId": job, "jobType": "scheduleDeviceMethod"}
		}
	}
	for b.Loop() {
		b.StopTimer()
		ix := NewIndexOn("deviceId", "jobId", "jobType")
		ix.AddKeys(rows("first"))
		keys, doc := rows("second")
		b.StartTimer()
		ix.AddKeys(keys, doc)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/row")
}
