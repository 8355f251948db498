package runner

import (
	"math"
	"slices"
	"sort"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs"
)

// deviceOutcome is what the report needs of one per-device job record.
type deviceOutcome struct {
	DeviceID    string
	Status      string // completed | failed | canceled | pending | running | scheduled
	Start, End  time.Time
	ErrorCode   string
	ErrorDesc   string
	HasResponse bool
	DeviceCode  int // the device's method status, when HasResponse
}

// jobFigures derives a job's latency summary, failure groups, device status
// mix and completion curve from its per-device records. jobStart is when the
// job started running.
func jobFigures(jobStart time.Time, rows []deviceOutcome) (lat LatencySummary, fails []FailureGroup, statuses map[int]int, completion []CompletionPoint, opsPerSec float64) {
	groups := map[string]*FailureGroup{}
	for _, r := range rows {
		if !r.done() {
			continue
		}
		if r.HasResponse {
			if statuses == nil {
				statuses = map[int]int{}
			}
			statuses[r.DeviceCode]++
		}
		if r.Status == "failed" || r.Status == "canceled" {
			cause := r.ErrorCode
			if cause == "" {
				cause = r.Status
			}
			g := groups[cause]
			if g == nil {
				g = &FailureGroup{Cause: cause, Description: r.ErrorDesc}
				groups[cause] = g
			}
			g.Count++
			if len(g.Examples) < 5 {
				g.Examples = append(g.Examples, r.DeviceID)
			}
		}
	}
	lat = latencySummary(latencies(rows))
	for _, g := range groups {
		slices.Sort(g.Examples)
		fails = append(fails, *g)
	}
	sort.Slice(fails, func(i, j int) bool {
		if fails[i].Count != fails[j].Count {
			return fails[i].Count > fails[j].Count
		}
		return fails[i].Cause < fails[j].Cause
	})
	ends := endOffsets(jobStart, rows)
	completion = completionCurve(ends, 60)
	opsPerSec = opsRate(jobStart, rows, time.Time{})
	return lat, fails, statuses, completion, opsPerSec
}

// done says the device job has ended, one way or another.
func (r deviceOutcome) done() bool {
	return r.Status == "completed" || r.Status == "failed" || r.Status == "canceled"
}

// operated says the hub worked on the device: it completed or failed, as
// opposed to being cancelled before it was reached or not reached yet.
func (r deviceOutcome) operated() bool {
	return (r.Status == "completed" || r.Status == "failed") && !r.End.IsZero()
}

// latencies returns the end minus start of every ended device job with both
// times. The report and the live view both take their percentiles from it.
func latencies(rows []deviceOutcome) []time.Duration {
	var lats []time.Duration
	for _, r := range rows {
		if r.done() && !r.Start.IsZero() && !r.End.IsZero() && !r.End.Before(r.Start) {
			lats = append(lats, r.End.Sub(r.Start))
		}
	}
	return lats
}

// endOffsets returns when each ended device job ended, since the job started.
func endOffsets(jobStart time.Time, rows []deviceOutcome) []time.Duration {
	var ends []time.Duration
	for _, r := range rows {
		if r.done() && !r.End.IsZero() {
			ends = append(ends, max(0, r.End.Sub(jobStart)))
		}
	}
	return ends
}

// opsRate is the device operations per second the hub did for a job: the
// devices it operated on (cancelled ones never were) over the time from the
// job's start to now, or, with now zero, to the last of them.
func opsRate(jobStart time.Time, rows []deviceOutcome, now time.Time) float64 {
	n := 0
	var last time.Duration
	for _, r := range rows {
		if r.operated() {
			n++
			last = max(last, r.End.Sub(jobStart))
		}
	}
	if !now.IsZero() {
		last = now.Sub(jobStart)
	}
	if n == 0 || last <= 0 {
		return 0
	}
	return float64(n) / last.Seconds()
}

// liveJob is a job's live figures. With rows (the job's device records, when
// they can be read), latency and rate come from them exactly as the report
// computes them; without, the rate comes from the statistics and the latency
// stays unknown (zero). A job that is over has the rate it ended with, and a
// job that never operated on a device has none.
func liveJob(j hubjobs.Job, rows []deviceOutcome, haveRows bool, now time.Time) JobProgress {
	s := j.DeviceJobStatistics
	jp := JobProgress{
		JobID: j.JobID, Status: string(j.Status), DeviceCount: s.DeviceCount,
		Pending: s.PendingCount, Running: s.RunningCount, Succeeded: s.SucceededCount, Failed: s.FailedCount,
	}
	if j.Status == hubjobs.JobScheduled || j.StartTime.IsZero() {
		return jp
	}
	if haveRows {
		lats := latencies(rows)
		slices.Sort(lats)
		jp.P50, jp.P99 = percentile(lats, 50), percentile(lats, 99)
		jp.LatencyKnown = len(lats) > 0
		if j.Status.Terminal() {
			now = time.Time{}
		}
		jp.OpsPerSecond = opsRate(j.StartTime, rows, now)
		return jp
	}
	if j.Status == hubjobs.JobCancelled {
		return jp // its failed count holds the devices never reached
	}
	since := now.Sub(j.StartTime)
	if j.EndTime != nil {
		since = j.EndTime.Sub(j.StartTime)
	}
	if since > 0 {
		jp.OpsPerSecond = float64(s.SucceededCount+s.FailedCount) / since.Seconds()
	}
	return jp
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of sorted.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// latencySummary computes percentiles and a histogram with logarithmic
// buckets (1-2-5 steps from 1 ms) that cover the data.
func latencySummary(lats []time.Duration) LatencySummary {
	if len(lats) == 0 {
		return LatencySummary{}
	}
	s := slices.Clone(lats)
	slices.Sort(s)
	sum := LatencySummary{
		P50: Duration(percentile(s, 50)),
		P95: Duration(percentile(s, 95)),
		P99: Duration(percentile(s, 99)),
		Max: Duration(s[len(s)-1]),
	}
	var bounds []time.Duration
	for b := time.Millisecond; ; {
		bounds = append(bounds, b)
		if b >= s[len(s)-1] {
			break
		}
		switch d := b; {
		case isStep(d, 1):
			b = d * 2
		case isStep(d, 2):
			b = d * 5 / 2
		default:
			b = d * 2
		}
	}
	i := 0
	for _, b := range bounds {
		n := 0
		for i < len(s) && s[i] <= b {
			n++
			i++
		}
		sum.Histogram = append(sum.Histogram, Bucket{UpperBound: Duration(b), Count: n})
	}
	return sum
}

// isStep reports whether d is step × a power of ten milliseconds.
func isStep(d time.Duration, step int64) bool {
	v := int64(d / time.Millisecond)
	for v >= 10 && v%10 == 0 {
		v /= 10
	}
	return v == step
}

// completionCurve samples how many devices were done over time: at most
// points samples, evenly spaced up to the last end, plus the origin.
func completionCurve(ends []time.Duration, points int) []CompletionPoint {
	if len(ends) == 0 {
		return nil
	}
	s := slices.Clone(ends)
	slices.Sort(s)
	last := s[len(s)-1]
	out := []CompletionPoint{{At: 0, Done: countAtMost(s, 0)}}
	if last == 0 {
		return out
	}
	for i := 1; i <= points; i++ {
		at := last * time.Duration(i) / time.Duration(points)
		out = append(out, CompletionPoint{At: Duration(at), Done: countAtMost(s, at)})
	}
	return out
}

func countAtMost(sorted []time.Duration, at time.Duration) int {
	return sort.Search(len(sorted), func(i int) bool { return sorted[i] > at })
}
