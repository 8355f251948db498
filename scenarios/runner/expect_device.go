package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/fleetsim/fleetsim/devicesim"
	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/scenarios"
)

// judgeDeviceSide checks a job's device-side figures against the demands
// of e on them.
func judgeDeviceSide(e jobExpectation, j *JobReport) []ExpectationResult {
	var out []ExpectationResult
	add := func(desc string, ok bool, detail string) {
		out = append(out, ExpectationResult{Description: fmt.Sprintf("job %s %s", e.JobID, desc), Passed: ok, Detail: detail})
	}
	var acks AckFigures
	succeeded := 0 // the job's succeeded devices simulated here
	if j.DeviceSide != nil {
		succeeded = j.DeviceSide.Succeeded
		if j.DeviceSide.TwinAcks != nil {
			acks = *j.DeviceSide.TwinAcks
		}
	}
	if e.MinAckRate > 0 {
		rate := 0.0
		if succeeded > 0 {
			rate = float64(acks.Acknowledged) / float64(succeeded)
		}
		add(fmt.Sprintf("is acknowledged by at least %.1f%% of its devices", e.MinAckRate*100), succeeded > 0 && rate >= e.MinAckRate,
			fmt.Sprintf("%d of %d acknowledged (%.1f%%), %d acknowledgements failed", acks.Acknowledged, succeeded, rate*100, acks.Failed))
	}
	if e.MaxAckP99 > 0 {
		p99 := time.Duration(acks.LatencyMs.P99 * float64(time.Millisecond))
		add("acknowledgement p99 at most "+e.MaxAckP99.String(), acks.Acknowledged > 0 && p99 <= e.MaxAckP99,
			fmt.Sprintf("p99 %s over %d acknowledgements", p99.Round(time.Millisecond), acks.Acknowledged))
	}
	var fw FirmwareFigures
	if j.DeviceSide != nil && j.DeviceSide.Firmware != nil {
		fw = *j.DeviceSide.Firmware
	}
	for _, ph := range devicesim.FirmwarePhases {
		budget, ok := e.MaxPhaseFailures[ph]
		if !ok {
			continue
		}
		failed := 0
		for _, p := range fw.Phases {
			if p.Phase == string(ph) {
				failed = p.Failed
			}
		}
		add(fmt.Sprintf("fails in %s on at most %d devices", ph, budget), failed <= budget, fmt.Sprintf("%d failed in %s", failed, ph))
	}
	if e.MaxRollbacks >= 0 {
		add(fmt.Sprintf("rolls back on at most %d devices", e.MaxRollbacks), fw.RolledBack <= e.MaxRollbacks, fmt.Sprintf("%d rolled back", fw.RolledBack))
	}
	return out
}

// stateCheck follows one device-state expectation during the run.
type stateCheck struct {
	exp      scenarios.Expectation
	held     bool
	heldAt   time.Duration // after the base (job start or run start)
	matched  int
	selected int
	err      error
	closed   bool // past its within: no more queries
}

// stateQueryEvery is the least time between two rounds of device-state
// queries; a real hub throttles queries.
const stateQueryEvery = time.Second

// checkStates runs the device-state queries of the expectations not yet
// held, at most every stateQueryEvery unless final.
func (p *player) checkStates(ctx context.Context, final bool) {
	if len(p.states) == 0 || !final && time.Since(p.lastState) < stateQueryEvery {
		return
	}
	p.lastState = time.Now()
	for _, c := range p.states {
		if c.held || c.closed {
			continue
		}
		base, ok := p.stateBase(ctx, c.exp)
		if !ok {
			continue
		}
		ds := c.exp.DeviceState
		now := time.Since(base)
		if ds.Within > 0 && now > ds.Within {
			c.closed = true
			if !final {
				continue
			}
		}
		sel, err := p.hub.count(ctx, p.condition(ds.Devices))
		if err == nil {
			c.selected = sel
			c.matched, err = p.hub.count(ctx, both(p.condition(ds.Devices), ds.Match))
		}
		c.err = err
		if err != nil {
			continue
		}
		if c.selected >= max(ds.MinDevices, 1) && float64(c.matched) >= ds.MinFraction*float64(c.selected) && (ds.Within == 0 || now <= ds.Within) {
			c.held, c.heldAt = true, now
		}
	}
}

// stateBase is when a device-state expectation's time counts from: its
// job's start, or the run's; false while the job has not started.
func (p *player) stateBase(ctx context.Context, e scenarios.Expectation) (time.Time, bool) {
	if e.Job == "" {
		return p.started, true
	}
	j, err := p.hub.job(ctx, p.jobID(e.Job))
	if err != nil || j.Status == hubjobs.JobScheduled || j.StartTime.IsZero() {
		return time.Time{}, false
	}
	return j.StartTime, true
}

// judgeState judges a device-state expectation from what the queries saw.
func judgeState(c *stateCheck) ExpectationResult {
	ds := c.exp.DeviceState
	desc := fmt.Sprintf("at least %.1f%% of the devices where %s match %s", ds.MinFraction*100, ds.Devices, ds.Match)
	if ds.Within > 0 {
		from := "the start of the run"
		if c.exp.Job != "" {
			from = "job " + c.exp.Job + "'s start"
		}
		desc += fmt.Sprintf(" within %s of %s", ds.Within, from)
	}
	r := ExpectationResult{Description: desc, Passed: c.held}
	frac := 0.0
	if c.selected > 0 {
		frac = float64(c.matched) / float64(c.selected)
	}
	switch {
	case c.err != nil:
		r.Detail = "query failed: " + c.err.Error()
	case c.held:
		r.Detail = fmt.Sprintf("%d of %d matched (%.1f%%) after %s", c.matched, c.selected, frac*100, c.heldAt.Round(time.Millisecond))
	case c.selected < max(ds.MinDevices, 1):
		r.Detail = fmt.Sprintf("%d devices selected, want at least %d", c.selected, max(ds.MinDevices, 1))
	default:
		r.Detail = fmt.Sprintf("%d of %d matched (%.1f%%) at the last query", c.matched, c.selected, frac*100)
	}
	return r
}

// both is the condition that a and b hold, where "*" is no condition.
func both(a, b string) string {
	switch {
	case strings.TrimSpace(a) == "*":
		return b
	case strings.TrimSpace(b) == "*":
		return a
	}
	return "(" + a + ") AND (" + b + ")"
}

// countQuery is the IoT Hub query that counts the devices matching cond.
func countQuery(cond string) string {
	if strings.TrimSpace(cond) == "*" {
		return "SELECT COUNT() AS n FROM devices"
	}
	return "SELECT COUNT() AS n FROM devices WHERE " + cond
}

// countOf reads the n of a COUNT() row.
func countOf(item any) (int, error) {
	b, err := json.Marshal(item)
	if err != nil {
		return 0, fmt.Errorf("count: %w", err)
	}
	var row struct {
		N *float64 `json:"n"`
	}
	if err := json.Unmarshal(b, &row); err != nil || row.N == nil {
		return 0, fmt.Errorf("count: unexpected row %s", b)
	}
	return int(*row.N), nil
}
