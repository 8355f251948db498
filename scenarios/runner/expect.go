package runner

import (
	"fmt"
	"time"

	"github.com/fleetsim/fleetsim/devicesim"
)

// jobExpectation is what the scenario may demand of one job. Zero values mean "not checked".
type jobExpectation struct {
	JobID          string
	Status         string        // e.g. "completed"
	Within         time.Duration // terminal within this long of its start
	TakesAtLeast   time.Duration // terminal no sooner than this long after its start
	MinSuccessRate float64       // succeeded / deviceCount, 0..1
	MaxP99Latency  time.Duration
	MinSucceeded   int
	MaxFailed      int // -1: not checked
	MinDevices     int
	// Device-side demands, judged by judgeDeviceSide.
	MinAckRate       float64
	MaxAckP99        time.Duration
	MaxPhaseFailures map[devicesim.FirmwarePhase]int
	MaxRollbacks     int // -1: not checked
}

// judgeJob checks one job's report against an expectation and returns one
// result per demand, each saying what was measured.
func judgeJob(e jobExpectation, j *JobReport) []ExpectationResult {
	var out []ExpectationResult
	add := func(desc string, ok bool, detail string) {
		out = append(out, ExpectationResult{Description: fmt.Sprintf("job %s %s", e.JobID, desc), Passed: ok, Detail: detail})
	}
	if j == nil {
		add("exists", false, "the job was never created")
		return out
	}
	if e.Status != "" {
		add("ends "+e.Status, j.Status == e.Status, "status "+j.Status+reason(j))
	}
	if e.Within > 0 {
		took := time.Duration(0)
		ok := !j.Ended.IsZero()
		if ok {
			took = j.Ended.Sub(j.Started)
			ok = took <= e.Within
		}
		detail := "not finished"
		if !j.Ended.IsZero() {
			detail = "finished after " + took.Round(time.Millisecond).String()
		}
		add("finishes within "+e.Within.String(), ok, detail)
	}
	if e.TakesAtLeast > 0 {
		took := j.Ended.Sub(j.Started)
		detail := "not finished"
		if !j.Ended.IsZero() {
			detail = "finished after " + took.Round(time.Millisecond).String()
		}
		add("takes at least "+e.TakesAtLeast.String(), !j.Ended.IsZero() && took >= e.TakesAtLeast, detail)
	}
	if e.MinSuccessRate > 0 {
		rate := 0.0
		if j.DeviceCount > 0 {
			rate = float64(j.Succeeded) / float64(j.DeviceCount)
		}
		add(fmt.Sprintf("succeeds on at least %.1f%% of devices", e.MinSuccessRate*100), j.DeviceCount > 0 && rate >= e.MinSuccessRate,
			fmt.Sprintf("%d of %d succeeded (%.1f%%)", j.Succeeded, j.DeviceCount, rate*100))
	}
	if e.MaxP99Latency > 0 {
		p99 := time.Duration(j.Latency.P99)
		add("p99 latency at most "+e.MaxP99Latency.String(), p99 <= e.MaxP99Latency && j.DeviceCount > 0, "p99 "+p99.Round(time.Microsecond).String())
	}
	if e.MinSucceeded > 0 {
		add(fmt.Sprintf("succeeds on at least %d devices", e.MinSucceeded), j.Succeeded >= e.MinSucceeded, fmt.Sprintf("%d succeeded", j.Succeeded))
	}
	if e.MaxFailed >= 0 {
		add(fmt.Sprintf("fails on at most %d devices", e.MaxFailed), j.Failed <= e.MaxFailed, fmt.Sprintf("%d failed", j.Failed))
	}
	if e.MinDevices > 0 {
		add(fmt.Sprintf("selects at least %d devices", e.MinDevices), j.DeviceCount >= e.MinDevices, fmt.Sprintf("%d selected", j.DeviceCount))
	}
	return append(out, judgeDeviceSide(e, j)...)
}

func reason(j *JobReport) string {
	if j.FailureReason != "" {
		return ": " + j.FailureReason
	}
	return ""
}
