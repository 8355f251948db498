package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/internal/testkit"
	"github.com/fleetsim/fleetsim/scenarios/rollout"
)

// TestRolloutResumesAfterKill runs `fleetsim rollout run` against a
// `fleetsim serve` through the REST API only, kills the rollout process with
// SIGKILL while it waits for approval, runs it again (it resumes from its
// state file), approves the stage with `fleetsim rollout approve`, and
// checks that the rollout completed with every job created once. A second
// `fleetsim rollout run` on the state file while the first runs is refused.
func TestRolloutResumesAfterKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs fleetsim serve and two rollout processes")
	}
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	startServe(t, data)
	for i := range 8 {
		if code, _, stderr := fleetsim(t, dir, "devices", "create", fmt.Sprintf("dev-%d", i), "--data", data); code != 0 {
			t.Fatalf("devices create: %s", stderr)
		}
	}
	plan := filepath.Join(dir, "plan.yaml")
	if err := os.WriteFile(plan, []byte(`id: crash-1
seed: 5
action: {twin: {desired: {interval: 10}}}
stages:
  - {name: first, share: 0.5, gates: {minSuccessRate: 1, approval: true}}
  - {name: rest, rest: true}
poll: 50ms
`), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(data, "rollouts", "crash-1.json")
	start := func() (*exec.Cmd, *syncBuffer, chan error) {
		cmd := exec.Command(binary, "rollout", "run", plan, "--data", data)
		out := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		t.Cleanup(func() {
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				<-done
			}
		})
		return cmd, out, done
	}
	waiting := func() bool {
		s, err := rollout.LoadState(state)
		return err == nil && s.Status == rollout.StatusWaiting
	}

	first, _, firstDone := start()
	testkit.Eventually(t, time.Minute, waiting, "the first stage waits for approval")
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-firstDone

	_, out, done := start()
	testkit.Eventually(t, time.Minute, func() bool { return strings.Contains(out.String(), "resumed at stage 1") }, "the rollout resumes")
	// A second engine on the same state file is refused while this one runs.
	if code, _, stderr := fleetsim(t, dir, "rollout", "run", plan, "--data", data); code == 0 ||
		!strings.Contains(stderr, "rollout state file "+state+" is in use") || !strings.Contains(stderr, "process ") {
		t.Fatalf("a second rollout run on the same state file: exit %d: %s", code, stderr)
	}
	if code, stdout, stderr := fleetsim(t, dir, "rollout", "approve", "crash-1", "--data", data); code != 0 || !strings.Contains(stdout, "approved stage first") {
		t.Fatalf("approve: exit %d: %s%s", code, stdout, stderr)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("rollout run: %v\n%s", err, out)
		}
	case <-time.After(time.Minute):
		t.Fatalf("rollout run did not end\n%s", out)
	}
	s, err := rollout.LoadState(state)
	if err != nil {
		t.Fatal(err)
	}
	if s.Status != rollout.StatusDone || s.Stages[0].Devices+s.Stages[1].Devices != 8 {
		t.Fatalf("state %s, devices %d + %d", s.Status, s.Stages[0].Devices, s.Stages[1].Devices)
	}
	var jobs []jobView
	clientJSON(t, data, &jobs, "jobs", "list")
	actions := 0
	for _, st := range s.Stages {
		for _, j := range st.Jobs {
			if j.Kind == rollout.KindAction {
				actions++
			}
		}
	}
	if actions != 2 || len(jobs) != 4 { // a marking job and an action job per stage
		t.Errorf("%d action jobs in the state, %d jobs on the hub", actions, len(jobs))
	}
	code, stdout, _ := fleetsim(t, dir, "rollout", "list", "--data", data)
	if code != 0 || !strings.Contains(stdout, "crash-1") || !strings.Contains(stdout, "completed") {
		t.Errorf("list: %d %s", code, stdout)
	}
}

// syncBuffer is a bytes.Buffer a child process writes while the test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
