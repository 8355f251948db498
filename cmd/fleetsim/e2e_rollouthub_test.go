package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/internal/testkit"
	"github.com/fleetsim/fleetsim/scenarios/rollout"
)

// TestHubRolloutResumesAfterKill submits a rollout to a `fleetsim serve`,
// which runs it itself, kills the hub with SIGKILL while the rollout waits
// for approval, serves the same data directory again (the rollout resumes
// from the hub's data), approves the stage with `rollout approve --hub`, and
// checks that the rollout completed with every job created once.
func TestHubRolloutResumesAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs fleetsim serve twice")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	hub := startServe(t, data)
	for i := range 8 {
		if code, _, stderr := fleetsim(t, dir, "devices", "create", fmt.Sprintf("dev-%d", i), "--data", data); code != 0 {
			t.Fatalf("devices create: %s", stderr)
		}
	}
	plan := filepath.Join(dir, "plan.yaml")
	if err := os.WriteFile(plan, []byte(`id: hub-1
seed: 5
action: {twin: {desired: {interval: 10}}}
stages:
  - {name: first, share: 0.5, gates: {minSuccessRate: 1, approval: true}}
  - {name: rest, rest: true}
poll: 50ms
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := fleetsim(t, dir, "rollout", "submit", plan, "--data", data); code != 0 || !strings.Contains(stdout, "rollout hub-1 submitted") {
		t.Fatalf("submit: exit %d: %s%s", code, stdout, stderr)
	}
	if code, _, stderr := fleetsim(t, dir, "rollout", "submit", plan, "--data", data); code == 0 || !strings.Contains(stderr, "RolloutAlreadyExists") {
		t.Errorf("submit again: exit %d: %s", code, stderr)
	}
	status := func() *rollout.State {
		code, stdout, stderr := fleetsim(t, dir, "rollout", "status", "--hub", "hub-1", "--json", "--data", data)
		if code != 0 {
			t.Fatalf("status: exit %d: %s", code, stderr)
		}
		st := new(rollout.State)
		if err := json.Unmarshal([]byte(stdout), st); err != nil {
			t.Fatalf("status: %v in %s", err, stdout)
		}
		return st
	}
	testkit.Eventually(t, time.Minute, func() bool { return status().Status == rollout.StatusWaiting }, "the first stage waits for approval")
	if _, err := os.Stat(filepath.Join(data, "rollouts", "hub", "hub-1.json")); err != nil {
		t.Errorf("the state is not in the hub's data: %v", err)
	}
	if code, _, stderr := fleetsim(t, dir, "rollout", "approve", "hub-1", "--data", data); code == 0 || !strings.Contains(stderr, "add --hub") {
		t.Errorf("approve without --hub: exit %d: %s", code, stderr)
	}
	hub.kill(t)

	startServe(t, data)
	testkit.Eventually(t, time.Minute, func() bool {
		for _, ev := range status().Events {
			if strings.Contains(ev.Msg, "resumed at stage 1") {
				return true
			}
		}
		return false
	}, "the hub resumes the rollout")
	if code, stdout, stderr := fleetsim(t, dir, "rollout", "approve", "--hub", "hub-1", "--data", data); code != 0 || !strings.Contains(stdout, "approved stage first") {
		t.Fatalf("approve: exit %d: %s%s", code, stdout, stderr)
	}
	var st *rollout.State
	testkit.Eventually(t, time.Minute, func() bool { st = status(); return st.Terminal() }, "the rollout ends")
	if st.Status != rollout.StatusDone || st.Stages[0].Devices+st.Stages[1].Devices != 8 {
		t.Fatalf("state %s (%s), devices %d + %d", st.Status, st.Reason, st.Stages[0].Devices, st.Stages[1].Devices)
	}
	var jobs []jobView
	clientJSON(t, data, &jobs, "jobs", "list")
	if len(jobs) != 4 { // a marking job and an action job per stage
		t.Errorf("%d jobs on the hub, want 4", len(jobs))
	}
	code, stdout, stderr := fleetsim(t, dir, "rollout", "list", "--hub", "--data", data)
	if code != 0 || !strings.Contains(stdout, "hub-1") || !strings.Contains(stdout, "completed") {
		t.Errorf("list --hub: %d %s%s", code, stdout, stderr)
	}
	if code, _, stderr := fleetsim(t, dir, "rollout", "abort", "--hub", "hub-1", "--data", data); code == 0 || !strings.Contains(stderr, "PreconditionFailed") {
		t.Errorf("abort an ended rollout: exit %d: %s", code, stderr)
	}

	// submit --wait follows a rollout to its end and exits as run does.
	plan2 := filepath.Join(dir, "plan2.yaml")
	if err := os.WriteFile(plan2, []byte("id: hub-2\naction: {twin: {desired: {interval: 20}}}\nstages: [{name: all, rest: true}]\npoll: 50ms\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = fleetsim(t, dir, "rollout", "submit", plan2, "--wait", "--data", data)
	if code != 0 || !strings.Contains(stdout, "rollout hub-2: completed") || !strings.Contains(stderr, "rollout hub-2 completed") {
		t.Errorf("submit --wait: exit %d: %s%s", code, stdout, stderr)
	}
}
