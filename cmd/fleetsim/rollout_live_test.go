package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/scenarios/rollout"
)

// rolloutStates are three moments of a rollout: the canary's job running,
// the canary's convergence gate passed while the next stage runs, and the
// abort at that stage.
func rolloutStates() []*rollout.State {
	start := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	st := &rollout.State{ID: "fw-2", Status: rollout.StatusRunning, Started: start, Stages: []*rollout.StageState{
		{Name: "canary", Step: "run", Devices: 30, Jobs: []*rollout.JobRecord{
			{ID: "fw-2-s1-w1-m1", Kind: rollout.KindMark, Status: "completed"},
			{ID: "fw-2-s1-a1", Kind: rollout.KindAction, Status: "running",
				Stats: rollout.Stats{DeviceCount: 30, SucceededCount: 12, FailedCount: 2, RunningCount: 6, PendingCount: 10}},
		}},
		{Name: "early", Step: "mark"},
		{Name: "rest", Step: "mark"},
	}}
	gated := *st
	gated.Stage = 1
	gated.Stages = []*rollout.StageState{
		{Name: "canary", Step: "done", Devices: 30, Jobs: []*rollout.JobRecord{
			{ID: "fw-2-s1-a1", Kind: rollout.KindAction, Status: "completed", Stats: rollout.Stats{DeviceCount: 30, SucceededCount: 28, FailedCount: 2}},
		}, Gates: []rollout.GateResult{{Gate: "converge", Passed: true, Count: 27, Of: 30, Value: 0.9, Threshold: 0.85}}},
		{Name: "early", Step: "run", Devices: 81, Jobs: []*rollout.JobRecord{
			{ID: "fw-2-s2-a1", Kind: rollout.KindAction, Status: "running", Stats: rollout.Stats{DeviceCount: 81, SucceededCount: 40, FailedCount: 21, PendingCount: 20}},
		}},
		{Name: "rest", Step: "mark"},
	}
	aborted := gated
	aborted.Status = rollout.StatusAborted
	aborted.Abort = &rollout.AbortRecord{Stage: "early", Rule: "maxFailureRate: 21 of 61 finished devices failed (34.4 %, limit 25.0 % after 10 devices)"}
	return []*rollout.State{st, &gated, &aborted}
}

// TestRolloutLiveView feeds the rollout live view three known states and
// checks the figures on a terminal frame and in the plain lines: the
// stage, each job's progress (marking jobs left out), the gate's figures
// and the abort rule.
func TestRolloutLiveView(t *testing.T) {
	states := rolloutStates()
	at := states[0].Started.Add(7 * time.Second)

	var out bytes.Buffer
	v := newLiveView(&out, viewOptions{Terminal: true, Width: 200, Title: "rollout fw-2"})
	v.Update(rolloutProgress(states[1], at, "[canary] gate converge passed"))
	v.Draw()
	frame := stripANSI(out.String())
	for _, want := range []string{
		"fleetsim · rollout fw-2  T+7s",
		"rollout  fw-2 running · stage 2/3 early (run, 81 devices) · gate canary/converge passed 27/30 (90.0 %, 85.0 % needed)",
		"fw-2-s1-a1 completed",
		"30/30",
		"fw-2-s2-a1 running",
		"61/81",
		"› [canary] gate converge passed",
	} {
		if !strings.Contains(frame, want) {
			t.Errorf("frame lacks %q:\n%s", want, frame)
		}
	}
	if strings.Contains(frame, "devices  0/0") {
		t.Errorf("a rollout run has no fleet of its own, the frame shows one:\n%s", frame)
	}

	out.Reset()
	v = newLiveView(&out, viewOptions{})
	for i, st := range states {
		v.Update(rolloutProgress(st, st.Started.Add(time.Duration(i+1)*2*time.Second), ""))
	}
	v.Update(rolloutProgress(states[2], states[2].Started.Add(7*time.Second), "[early] abort: maxFailureRate"))
	plain := out.String()
	for _, want := range []string{
		"T+2s  rollout fw-2 running · stage 1/3 canary (run, 30 devices) | fw-2-s1-a1 running 14/30 succeeded=12 failed=2 running=6 pending=10",
		"T+4s  rollout fw-2 running · stage 2/3 early (run, 81 devices) · gate canary/converge passed 27/30 (90.0 %, 85.0 % needed) | fw-2-s1-a1 completed 30/30 succeeded=28 failed=2",
		"| fw-2-s2-a1 running 61/81 succeeded=40 failed=21 running=0 pending=20",
		"T+6s  rollout fw-2 aborted · stage 2/3 early (run, 81 devices) · abort at early: maxFailureRate: 21 of 61 finished devices failed (34.4 %, limit 25.0 % after 10 devices)",
		"T+7s: [early] abort: maxFailureRate\n",
	} {
		if !strings.Contains(plain, want) {
			t.Errorf("plain output lacks %q:\n%s", want, plain)
		}
	}
	if strings.Contains(plain, "fw-2-s1-w1-m1") {
		t.Errorf("a marking job is shown:\n%s", plain)
	}
}
