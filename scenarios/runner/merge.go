package runner

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ErrMerge is returned by Merge for reports that are not the shards of one run.
var ErrMerge = errors.New("runner: cannot merge reports")

// ShardFigures are one shard's own figures in a merged report.
type ShardFigures struct {
	Shard          string `json:"shard"`
	Devices        int    `json:"devices"`
	ConnectedAtEnd int    `json:"connectedAtEnd"`
	Connects       int64  `json:"connects"`
	Disconnects    int64  `json:"disconnects"`
	NeverConnected int    `json:"neverConnected"`
	// FailedExpectations counts the shard's expectations that failed.
	FailedExpectations int  `json:"failedExpectations"`
	Passed             bool `json:"passed"`
	Interrupted        bool `json:"interrupted,omitempty"`
}

// fleetConnectedPrefix starts the description of a fleet-wide connected
// expectation (see report): it is judged again on the merged figures.
const fleetConnectedPrefix = "at least "
const fleetConnectedSuffix = "% of the fleet is connected at the end"

// Merge combines the reports of one run's shards into one verdict: device
// figures are summed, each job is counted once (its statistics are the
// hub's, the same for every shard: the last read of it is kept), the
// fleet-wide connected expectation is judged again on the summed figures,
// and every other expectation holds when it held on every shard that
// judged it. Each rollout is counted once, from the shard that ran it. A
// shard without a report fails the merged verdict.
func Merge(reports []*Report) (*Report, error) {
	if len(reports) == 0 {
		return nil, fmt.Errorf("%w: no reports", ErrMerge)
	}
	shards := 0
	byShard := map[int]*Report{}
	first := reports[0]
	for _, r := range reports {
		if r.Scenario != first.Scenario || r.Seed != first.Seed {
			return nil, fmt.Errorf("%w: scenario %s seed %d and scenario %s seed %d are not one run", ErrMerge, first.Scenario, first.Seed, r.Scenario, r.Seed)
		}
		if r.Run != nil && first.Run != nil && (r.Run.ID != first.Run.ID || r.Run.Epoch != first.Run.Epoch) {
			return nil, fmt.Errorf("%w: run %s/%d and run %s/%d are not one run", ErrMerge, first.Run.ID, first.Run.Epoch, r.Run.ID, r.Run.Epoch)
		}
		i, n := 1, 1
		if r.Shard != "" {
			a, b, ok := strings.Cut(r.Shard, "/")
			var e1, e2 error
			i, e1 = strconv.Atoi(a)
			n, e2 = strconv.Atoi(b)
			if !ok || e1 != nil || e2 != nil || i < 1 || i > n {
				return nil, fmt.Errorf("%w: shard %q is not i/n", ErrMerge, r.Shard)
			}
		}
		if shards != 0 && n != shards {
			return nil, fmt.Errorf("%w: shard %s of a run of %d shards", ErrMerge, r.Shard, shards)
		}
		shards = n
		if byShard[i] != nil {
			return nil, fmt.Errorf("%w: two reports of shard %d/%d", ErrMerge, i, n)
		}
		byShard[i] = r
	}

	m := &Report{
		Scenario: first.Scenario, Description: first.Description, Seed: first.Seed, Pacing: first.Pacing,
		Started: first.Started, Ended: first.Ended, Passed: true, Hub: first.Hub,
	}
	var missing []int
	seenWarn := map[string]bool{}
	lost := map[int]LostShard{}
	jobAt := map[string]time.Time{} // when the kept read of each job was made
	jobIdx := map[string]int{}
	rolloutIdx := map[string]int{}
	type verdict struct {
		res   ExpectationResult
		fails []string
	}
	var order []string
	verdicts := map[string]*verdict{}
	var fleetConnected []string // descriptions of fleet-wide connected expectations
	m.Settle.Settled = true
	allConnected := true // every shard's fleet was once connected in full

	for i := 1; i <= shards; i++ {
		r := byShard[i]
		if r == nil {
			missing = append(missing, i)
			allConnected = false
			continue
		}
		if r.Started.Before(m.Started) {
			m.Started = r.Started
		}
		if r.Ended.After(m.Ended) {
			m.Ended = r.Ended
		}
		if r.Pacing != m.Pacing {
			m.Warnings = appendOnce(m.Warnings, seenWarn, fmt.Sprintf("the shards report different pacings (%s, %s)", m.Pacing, r.Pacing))
		}
		m.Devices += r.Devices
		m.Fleet.ConnectedAtEnd += r.Fleet.ConnectedAtEnd
		m.Fleet.Connects += r.Fleet.Connects
		m.Fleet.Disconnects += r.Fleet.Disconnects
		m.Fleet.MethodCalls += r.Fleet.MethodCalls
		m.Fleet.DesiredPatches += r.Fleet.DesiredPatches
		m.Fleet.ReportedUpdates += r.Fleet.ReportedUpdates
		m.Fleet.Telemetry += r.Fleet.Telemetry
		m.Fleet.DroppedEvents += r.Fleet.DroppedEvents
		m.Fleet.AllConnected = max(m.Fleet.AllConnected, r.Fleet.AllConnected)
		allConnected = allConnected && r.Fleet.AllConnected > 0
		m.DeviceSide.TelemetrySent += r.DeviceSide.TelemetrySent
		m.DeviceSide.C2DReceived += r.DeviceSide.C2DReceived
		m.DeviceSide.C2DAcked += r.DeviceSide.C2DAcked
		m.Interrupted = m.Interrupted || r.Interrupted
		m.Settle.Settled = m.Settle.Settled && r.Settle.Settled
		sf := ShardFigures{
			Shard: r.Shard, Devices: r.Devices, ConnectedAtEnd: r.Fleet.ConnectedAtEnd, Connects: r.Fleet.Connects,
			Disconnects: r.Fleet.Disconnects, Passed: r.Passed, Interrupted: r.Interrupted,
		}
		if sf.Shard == "" {
			sf.Shard = "1/1"
		}
		if r.NeverConnected != nil {
			sf.NeverConnected = r.NeverConnected.Count
			mergeNeverConnected(m, r.NeverConnected)
		}
		for _, e := range r.Expectations {
			if !e.Passed {
				sf.FailedExpectations++
			}
			v := verdicts[e.Description]
			if v == nil {
				v = &verdict{res: ExpectationResult{Description: e.Description, Passed: true, Detail: e.Detail}}
				verdicts[e.Description] = v
				order = append(order, e.Description)
				if strings.HasPrefix(e.Description, fleetConnectedPrefix) && strings.HasSuffix(e.Description, fleetConnectedSuffix) {
					fleetConnected = append(fleetConnected, e.Description)
				}
			}
			if !e.Passed {
				v.res.Passed = false
				v.fails = append(v.fails, "shard "+sf.Shard+": "+e.Detail)
			}
		}
		m.Shards = append(m.Shards, sf)
		for _, w := range r.Warnings {
			m.Warnings = appendOnce(m.Warnings, seenWarn, w)
		}
		if r.Run != nil {
			if m.Run == nil {
				rr := *r.Run
				rr.Late, rr.BarrierWait, rr.Peers, rr.HeartbeatError, rr.Lost = false, 0, nil, "", nil
				m.Run = &rr
			}
			for _, l := range r.Run.Lost {
				lost[l.Shard] = l
			}
		}
		// Each job once: the hub's statistics, from the report that read
		// them last (a shard that ended later saw more of the job).
		for _, j := range r.Jobs {
			j.DeviceSide = nil // measured per shard: see the shards' reports
			if k, seen := jobIdx[j.JobID]; !seen {
				jobIdx[j.JobID] = len(m.Jobs)
				m.Jobs = append(m.Jobs, j)
				jobAt[j.JobID] = r.Ended
			} else if r.Ended.After(jobAt[j.JobID]) {
				m.Jobs[k] = j
				jobAt[j.JobID] = r.Ended
			}
		}
		// Each rollout once: the report of the shard that ran it (with its
		// events), else one that read it from that shard.
		for _, ro := range r.Rollouts {
			k, seen := rolloutIdx[ro.ID]
			switch {
			case !seen:
				rolloutIdx[ro.ID] = len(m.Rollouts)
				m.Rollouts = append(m.Rollouts, ro)
			case rolloutRank(ro) > rolloutRank(m.Rollouts[k]):
				m.Rollouts[k] = ro
			}
		}
	}
	if !allConnected {
		m.Fleet.AllConnected = 0 // some shard never had all its devices connected
	}
	m.Duration = Duration(m.Ended.Sub(m.Started))
	if m.Run != nil {
		for n := 1; n <= shards; n++ {
			if l, ok := lost[n]; ok {
				m.Run.Lost = append(m.Run.Lost, l)
			}
		}
	}
	for _, d := range fleetConnected {
		v := verdicts[d]
		pct, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimPrefix(d, fleetConnectedPrefix), fleetConnectedSuffix), 64)
		if err != nil {
			continue
		}
		frac := 1.0
		if m.Devices > 0 {
			frac = float64(m.Fleet.ConnectedAtEnd) / float64(m.Devices)
		}
		v.res.Passed = frac*100 >= pct
		v.res.Detail = fmt.Sprintf("%d of %d connected (%.1f%%) over %d shards", m.Fleet.ConnectedAtEnd, m.Devices, frac*100, len(m.Shards))
		v.fails = nil
	}
	if len(missing) > 0 {
		m.Expectations = append(m.Expectations, ExpectationResult{
			Description: fmt.Sprintf("every shard of the %d reported", shards),
			Passed:      false,
			Detail:      "no report of shard " + formatShardList(missing),
		})
	}
	for _, d := range order {
		v := verdicts[d]
		if len(v.fails) > 0 {
			v.res.Detail = strings.Join(v.fails, "; ")
		}
		m.Expectations = append(m.Expectations, v.res)
	}
	for _, e := range m.Expectations {
		m.Passed = m.Passed && e.Passed
	}
	m.Passed = m.Passed && !m.Interrupted
	if m.Hub == nil || !m.Hub.Known {
		for _, r := range reports {
			if r.Hub != nil && r.Hub.Known {
				m.Hub = r.Hub
				break
			}
		}
	}
	return m, nil
}

// rolloutRank orders the shards' reports of one rollout: the one of the
// shard that ran it first, then one read from it, then one that could not be.
func rolloutRank(r RolloutReport) int {
	switch {
	case r.From == "":
		return 2
	case r.ReadError == "":
		return 1
	}
	return 0
}

func appendOnce(ws []string, seen map[string]bool, w string) []string {
	if seen[w] {
		return ws
	}
	seen[w] = true
	return append(ws, w)
}

// mergeNeverConnected adds one shard's never-connected devices to m's.
func mergeNeverConnected(m *Report, nc *NeverConnected) {
	if m.NeverConnected == nil {
		m.NeverConnected = &NeverConnected{}
	}
	m.NeverConnected.Count += nc.Count
	for _, c := range nc.Causes {
		i := slices.IndexFunc(m.NeverConnected.Causes, func(x NeverConnectedCause) bool { return x.Cause == c.Cause })
		if i < 0 {
			m.NeverConnected.Causes = append(m.NeverConnected.Causes, NeverConnectedCause{Cause: c.Cause})
			i = len(m.NeverConnected.Causes) - 1
		}
		mc := &m.NeverConnected.Causes[i]
		mc.Count += c.Count
		for _, e := range c.Examples {
			if len(mc.Examples) < 3 {
				mc.Examples = append(mc.Examples, e)
			}
		}
	}
	slices.SortStableFunc(m.NeverConnected.Causes, func(a, b NeverConnectedCause) int { return b.Count - a.Count })
}
