package runner

import (
	"fmt"
	"math"
	"strconv"
	"time"
)

// Report is the outcome of a scenario run. Its job figures come from the jobs
// engine's store (statistics and per-device records), never from the progress
// stream, so they are exact even when progress snapshots were dropped.
type Report struct {
	Scenario     string              `json:"scenario"`
	Description  string              `json:"description,omitempty"`
	Seed         int64               `json:"seed"`
	Shard        string              `json:"shard,omitempty"` // "i/n" when sharded
	Pacing       string              `json:"pacing"`
	Started      time.Time           `json:"started"`
	Ended        time.Time           `json:"ended"`
	Duration     Duration            `json:"durationMs"`
	Devices      int                 `json:"devices"`
	Fleet        FleetSummary        `json:"fleet"`
	Jobs         []JobReport         `json:"jobs"`
	Expectations []ExpectationResult `json:"expectations"`
	// Rollouts are the timeline's rollouts: stages, gate figures, abort.
	Rollouts []RolloutReport `json:"rollouts,omitempty"`
	// Comparison, in a side-by-side run of several rollout plans, is each
	// plan's outcome.
	Comparison []PlanComparison `json:"comparison,omitempty"`
	// Settle says whether the device-side work finished before the end.
	Settle Settle `json:"settle"`
	// DeviceSide is what the devices did, measured at the devices.
	DeviceSide DeviceSide `json:"deviceSide"`
	// Passed is true when every expectation passed and the run was not interrupted.
	Passed bool `json:"passed"`
	// Interrupted says the run was stopped (Ctrl-C) before it finished:
	// the report judges what had happened by then.
	Interrupted bool `json:"interrupted,omitempty"`
	// Run is what a remote run's coordination saw: its id, the start
	// barrier, the shards that disappeared.
	Run *RunReport `json:"run,omitempty"`
	// Hub are a remote hub's job settings, as read from it.
	Hub *HubSettings `json:"hub,omitempty"`
	// NeverConnected are the devices that never connected, by cause.
	NeverConnected *NeverConnected `json:"neverConnected,omitempty"`
	// Shards are each shard's own figures in a report merged from the
	// shards' reports (fleetsim report merge).
	Shards []ShardFigures `json:"shards,omitempty"`
	// Warnings point out what no expectation checks but a reader must
	// know, such as a job that selected no devices.
	Warnings []string `json:"warnings,omitempty"`
	// Runtime is the process's memory plan and runtime settings, when the
	// command that ran the scenario made one.
	Runtime *RuntimeSettings `json:"runtime,omitempty"`
}

// warnings lists what a report must point out although no expectation
// checks it: jobs that started and selected no device (their query
// condition matched nothing, so they pass without doing anything).
func warnings(jobs []JobReport) []string {
	var out []string
	for _, j := range jobs {
		if j.DeviceCount == 0 && j.Status != "scheduled" && j.Status != "queued" && j.Status != "enqueued" {
			out = append(out, fmt.Sprintf("job %s selected no devices: its query condition %q matched none", j.JobID, j.Condition))
		}
	}
	return out
}

// FleetSummary counts what the simulated fleet did.
type FleetSummary struct {
	ConnectedAtEnd  int   `json:"connectedAtEnd"`
	Connects        int64 `json:"connects"`
	Disconnects     int64 `json:"disconnects"`
	MethodCalls     int64 `json:"methodCalls"`
	DesiredPatches  int64 `json:"desiredPatches"`
	ReportedUpdates int64 `json:"reportedUpdates"`
	Telemetry       int64 `json:"telemetry"`
	DroppedEvents   int64 `json:"droppedEvents"`
	// AllConnected is the time from the fleet's start until every device
	// was connected at once: the length of its connect phase. Absent when
	// that never happened. A merged report has the longest shard's, when
	// every shard's fleet was once connected in full.
	AllConnected Duration `json:"allConnectedMs,omitempty"`
}

// JobReport is one job's final statistics and the figures derived from its
// per-device records.
type JobReport struct {
	JobID         string    `json:"jobId"`
	Type          string    `json:"type"` // scheduleDeviceMethod | scheduleUpdateTwin
	Method        string    `json:"method,omitempty"`
	Condition     string    `json:"queryCondition"`
	Status        string    `json:"status"`
	FailureReason string    `json:"failureReason,omitempty"`
	Created       time.Time `json:"createdTime"`
	Started       time.Time `json:"startTime"`
	Ended         time.Time `json:"endTime,omitzero"`
	DeviceCount   int       `json:"deviceCount"`
	Succeeded     int       `json:"succeededCount"`
	Failed        int       `json:"failedCount"`
	Running       int       `json:"runningCount"`
	Pending       int       `json:"pendingCount"`
	// OpsPerSecond is devices done divided by the time from the job's start to its last device.
	OpsPerSecond float64        `json:"deviceOpsPerSecond"`
	Latency      LatencySummary `json:"latency"`
	// DeviceStatuses counts the status codes devices answered a method job with.
	DeviceStatuses map[int]int    `json:"deviceStatuses,omitempty"`
	Failures       []FailureGroup `json:"failures,omitempty"`
	// Completion is the number of devices done over time since the job started.
	Completion []CompletionPoint `json:"completion,omitempty"`
	// DeviceSide is what the job's devices did because of it, measured at
	// the devices; nil for a job that causes no device-side work.
	DeviceSide *DeviceSide `json:"deviceSide,omitempty"`
}

// LatencySummary describes per-device latency (device job end minus start).
type LatencySummary struct {
	P50       Duration `json:"p50Ms"`
	P95       Duration `json:"p95Ms"`
	P99       Duration `json:"p99Ms"`
	Max       Duration `json:"maxMs"`
	Histogram []Bucket `json:"histogram,omitempty"`
}

// Bucket is one histogram bar: Count latencies at most UpperBound (and above the previous bucket's bound).
type Bucket struct {
	UpperBound Duration `json:"leMs"`
	Count      int      `json:"count"`
}

// FailureGroup gathers failed devices by cause (the device job's error code).
type FailureGroup struct {
	Cause       string   `json:"cause"`
	Description string   `json:"description,omitempty"`
	Count       int      `json:"count"`
	Examples    []string `json:"examples,omitempty"` // a few device ids
}

// CompletionPoint says how many devices were done At after the job started.
type CompletionPoint struct {
	At   Duration `json:"atMs"`
	Done int      `json:"done"`
}

// ExpectationResult is one expectation of the scenario, judged.
type ExpectationResult struct {
	Description string `json:"description"` // e.g. "job reboot-43-3 completes within 30s"
	Passed      bool   `json:"passed"`
	Detail      string `json:"detail"` // what was measured, e.g. "completed after 4.2s"
}

// Progress is a live snapshot, sent a few times a second while a run lasts.
type Progress struct {
	Elapsed   time.Duration
	Devices   int
	Connected int
	// Rollout, for a rollout run on its own (no fleet of its own), is the
	// rollout's line: its status, stage and gate; the live view shows it
	// instead of the devices.
	Rollout string
	Jobs    []JobProgress
	// Note is a short line about what just happened ("T+5s: created job reboot-43-3").
	Note string
	// Settling is true once every action has played and every job is
	// terminal, while the run waits for the devices' work to finish.
	Settling bool
	// Settled is true once the device-side work has finished too: the
	// run is ending.
	Settled bool
	// Outstanding is the device-side work started and not finished.
	Outstanding int64
	// DeviceSide are the fleet's device-side counts so far (no latencies).
	DeviceSide DeviceSide
}

// JobProgress is one job's live statistics.
type JobProgress struct {
	JobID        string
	Status       string
	DeviceCount  int
	Pending      int
	Running      int
	Succeeded    int
	Failed       int
	OpsPerSecond float64
	P50, P99     time.Duration
	// LatencyKnown says P50 and P99 were measured; they are not for jobs
	// too large to read a few times a second, or on a remote hub.
	LatencyKnown bool
}

// Duration is a time.Duration that marshals to JSON as a number of
// milliseconds, such as 66.4652 (fractions down to the nanosecond); the
// JSON names of Duration fields end in "Ms".
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) {
	return strconv.AppendFloat(nil, float64(d)/float64(time.Millisecond), 'f', -1, 64), nil
}

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	ms, err := strconv.ParseFloat(string(b), 64)
	if err != nil {
		return fmt.Errorf("duration: want a number of milliseconds, got %s", b)
	}
	*d = Duration(math.Round(ms * float64(time.Millisecond)))
	return nil
}
