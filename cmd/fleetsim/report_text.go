package main

import (
	"bytes"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// renderText renders the report for people: a header, the fleet summary, a
// table of jobs, each job's details, and the expectations with PASS/FAIL.
func renderText(r *runner.Report) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Scenario %s (seed %d, pacing %s", r.Scenario, r.Seed, orDash(r.Pacing))
	if r.Shard != "" {
		fmt.Fprintf(&b, ", shard %s", r.Shard)
	}
	b.WriteString(")\n")
	if r.Description != "" {
		fmt.Fprintf(&b, "%s\n", r.Description)
	}
	fmt.Fprintf(&b, "Started %s, ran %s, %d devices\n", fmtTime(r.Started), fmtDur(time.Duration(r.Duration)), r.Devices)
	if r.Interrupted {
		fmt.Fprintf(&b, "INTERRUPTED after %s: the run was stopped before it finished; what follows is what had happened by then\n", fmtDur(time.Duration(r.Duration)))
	}
	writeRuntimeText(&b, r.Runtime)
	writeSettleText(&b, r)
	writeShardsText(&b, r)

	f := r.Fleet
	fmt.Fprintf(&b, "\nFleet\n")
	fmt.Fprintf(&b, "  %d of %d connected at the end; %d connects, %d disconnects\n", f.ConnectedAtEnd, r.Devices, f.Connects, f.Disconnects)
	if f.AllConnected > 0 {
		fmt.Fprintf(&b, "  every device connected %s after the fleet started\n", fmtDur(time.Duration(f.AllConnected)))
	}
	fmt.Fprintf(&b, "  %d method calls, %d desired patches, %d reported updates, %d telemetry messages", f.MethodCalls, f.DesiredPatches, f.ReportedUpdates, f.Telemetry)
	if f.DroppedEvents > 0 {
		fmt.Fprintf(&b, ", %d fleet events dropped", f.DroppedEvents)
	}
	b.WriteString("\n")
	writeDeviceSideText(&b, "  ", &r.DeviceSide)

	if len(r.Jobs) > 0 {
		b.WriteString("\nJobs\n")
		tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  JOB\tTYPE\tSTATUS\tDEVICES\tSUCCEEDED\tFAILED\tRUNNING\tPENDING\tOPS/S\tP50\tP95\tP99")
		for _, j := range r.Jobs {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%d\t%d\t%d\t%d\t%.1f\t%s\t%s\t%s\n",
				j.JobID, jobKind(j), j.Status, j.DeviceCount, j.Succeeded, j.Failed, j.Running, j.Pending,
				j.OpsPerSecond, fmtDur(time.Duration(j.Latency.P50)), fmtDur(time.Duration(j.Latency.P95)), fmtDur(time.Duration(j.Latency.P99)))
		}
		tw.Flush()
		for _, j := range r.Jobs {
			writeJobText(&b, j)
		}
	}

	writeComparisonText(&b, r.Comparison)
	writeRolloutsText(&b, r.Rollouts)
	b.WriteString("\nExpectations\n")
	if len(r.Expectations) == 0 {
		b.WriteString("  (none)\n")
	}
	failed := 0
	for _, e := range r.Expectations {
		mark := "PASS"
		if !e.Passed {
			mark = "FAIL"
			failed++
		}
		fmt.Fprintf(&b, "  %s  %s", mark, e.Description)
		if e.Detail != "" {
			fmt.Fprintf(&b, ": %s", e.Detail)
		}
		b.WriteString("\n")
	}
	b.WriteString("\n")
	if r.Interrupted {
		fmt.Fprintf(&b, "INTERRUPTED: %d of %d expectations failed on the partial run\n", failed, len(r.Expectations))
	} else if r.Passed {
		fmt.Fprintf(&b, "PASS: %d of %d expectations passed\n", len(r.Expectations)-failed, len(r.Expectations))
	} else {
		fmt.Fprintf(&b, "FAIL: %d of %d expectations failed\n", failed, len(r.Expectations))
	}
	return b.Bytes()
}

func writeJobText(w io.Writer, j runner.JobReport) {
	fmt.Fprintf(w, "\nJob %s: %s, query %s\n", j.JobID, jobKind(j), j.Condition)
	fmt.Fprintf(w, "  %s", j.Status)
	if j.FailureReason != "" {
		fmt.Fprintf(w, " (%s)", j.FailureReason)
	}
	fmt.Fprintf(w, "; created %s, started %s", fmtTime(j.Created), fmtTime(j.Started))
	if !j.Ended.IsZero() {
		fmt.Fprintf(w, ", ended %s (%s)", fmtTime(j.Ended), fmtDur(j.Ended.Sub(j.Started)))
	}
	fmt.Fprintf(w, "\n  %d devices: %d succeeded, %d failed, %d running, %d pending\n", j.DeviceCount, j.Succeeded, j.Failed, j.Running, j.Pending)
	l := j.Latency
	fmt.Fprintf(w, "  %.1f device-ops/s; latency p50 %s, p95 %s, p99 %s, max %s\n", j.OpsPerSecond,
		fmtDur(time.Duration(l.P50)), fmtDur(time.Duration(l.P95)), fmtDur(time.Duration(l.P99)), fmtDur(time.Duration(l.Max)))
	if len(j.DeviceStatuses) > 0 {
		fmt.Fprintf(w, "  device answers: %s\n", deviceAnswers(j.DeviceStatuses))
	}
	writeDeviceSideText(w, "  ", j.DeviceSide)
	if len(j.Failures) == 0 {
		return
	}
	fmt.Fprintf(w, "  failures by cause:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, f := range sortedFailures(j.Failures) {
		fmt.Fprintf(tw, "    %s\t%d\t%s", f.Cause, f.Count, f.Description)
		if len(f.Examples) > 0 {
			fmt.Fprintf(tw, " (e.g. %s)", strings.Join(f.Examples, ", "))
		}
		fmt.Fprintln(tw)
	}
	tw.Flush()
}

// deviceAnswers says which method status codes devices answered with, most
// frequent first: "197 answered 200, 3 answered 500".
func deviceAnswers(statuses map[int]int) string {
	codes := slices.Sorted(maps.Keys(statuses))
	slices.SortStableFunc(codes, func(a, b int) int { return statuses[b] - statuses[a] })
	var parts []string
	for _, code := range codes {
		parts = append(parts, fmt.Sprintf("%d answered %d", statuses[code], code))
	}
	return strings.Join(parts, ", ")
}

// plural is "1 device", "2 devices".
func plural(n int, noun string) string {
	if n == 1 {
		return fmt.Sprintf("%d %s", n, noun)
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// sortedFailures orders failure groups by count, largest first, then by cause.
func sortedFailures(fs []runner.FailureGroup) []runner.FailureGroup {
	out := slices.Clone(fs)
	slices.SortStableFunc(out, func(a, b runner.FailureGroup) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return strings.Compare(a.Cause, b.Cause)
	})
	return out
}

// jobKind is a short description of what a job does.
func jobKind(j runner.JobReport) string {
	switch j.Type {
	case "scheduleDeviceMethod":
		if j.Method != "" {
			return "method " + j.Method
		}
		return "method"
	case "scheduleUpdateTwin":
		return "twin update"
	}
	return j.Type
}

// fmtDur rounds a duration to a precision people can read.
func fmtDur(d time.Duration) string {
	switch {
	case d == 0:
		return "0s"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(10 * time.Microsecond).String()
	case d < time.Minute:
		return d.Round(10 * time.Millisecond).String()
	}
	return d.Round(100 * time.Millisecond).String()
}

func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05.000Z")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
