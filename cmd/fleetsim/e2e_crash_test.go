package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/internal/testkit"
)

// served is a `fleetsim serve` child process.
type served struct {
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan error
}

// startServe starts `fleetsim serve` on loopback ports with dataDir and waits
// until it has written connection.json and its fleet is connected.
func startServe(t *testing.T, dataDir string, args ...string) *served {
	t.Helper()
	os.Remove(filepath.Join(dataDir, "connection.json"))
	args = append([]string{"serve", "--data", dataDir, "--https-addr", "127.0.0.1:0", "--mqtt-addr", "127.0.0.1:0", "--log-level", "warn"}, args...)
	s := &served{cmd: exec.Command(binary, args...), out: &bytes.Buffer{}, done: make(chan error, 1)}
	s.cmd.Stdout, s.cmd.Stderr = s.out, s.out
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.done <- s.cmd.Wait() }()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			s.cmd.Process.Kill()
			<-s.done
		}
	})
	testkit.Eventually(t, time.Minute, func() bool {
		_, err := os.Stat(filepath.Join(dataDir, "connection.json"))
		return err == nil
	}, "connection.json")
	return s
}

// kill ends the hub with SIGKILL: no shutdown, no last write.
func (s *served) kill(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-s.done
}

// clientJSON runs a client command against the hub in dataDir with -o json.
func clientJSON(t *testing.T, dataDir string, v any, args ...string) {
	t.Helper()
	code, stdout, stderr := fleetsim(t, dataDir, append(args, "--data", dataDir, "-o", "json")...)
	if code != 0 {
		t.Fatalf("fleetsim %s: exit %d: %s", strings.Join(args, " "), code, stderr)
	}
	if err := json.Unmarshal([]byte(stdout), v); err != nil {
		t.Fatalf("fleetsim %s: %v in %s", strings.Join(args, " "), err, stdout)
	}
}

type jobView struct {
	Status  string `json:"status"`
	EndTime string `json:"endTime"`
	Stats   struct {
		DeviceCount, FailedCount, SucceededCount, RunningCount, PendingCount int
	} `json:"deviceJobStatistics"`
}

type deviceJobRow struct {
	DeviceID  string `json:"deviceId"`
	Status    string `json:"status"`
	StartTime string `json:"startTimeUtc"`
	EndTime   string `json:"endTimeUtc"`
}

// TestBinaryKillDuringJobResumes kills a served hub with SIGKILL while a
// method job is running (paced as S1, so it lasts seconds) and serves the
// same data directory again: the job resumes and completes with every
// device once, and the device jobs recorded before the kill are kept as
// they were, not run again.
func TestBinaryKillDuringJobResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts a hub")
	}
	dir := t.TempDir()
	scenario, _ := filepath.Abs("testdata/resume.yaml")
	const devices = 40
	hub := startServe(t, dir, "--scenario", scenario, "--pacing", "S1")
	connected := func() bool {
		var rows []struct{ N int }
		clientJSON(t, dir, &rows, "query", "SELECT COUNT() AS n FROM devices WHERE connectionState = 'Connected'")
		return len(rows) == 1 && rows[0].N == devices
	}
	testkit.Eventually(t, time.Minute, connected, "the fleet to connect")

	var j jobView
	clientJSON(t, dir, &j, "jobs", "create", "resume-1", "--method", "slow", "--connect-timeout", "30s")
	testkit.Eventually(t, time.Minute, func() bool {
		clientJSON(t, dir, &j, "jobs", "get", "resume-1")
		return j.Stats.SucceededCount >= devices/4
	}, "a quarter of the job")
	var before []deviceJobRow
	clientJSON(t, dir, &before, "query", "SELECT * FROM devices.jobs WHERE jobId = 'resume-1' AND status = 'completed'")
	hub.kill(t)
	if len(before) == 0 || len(before) == devices {
		t.Fatalf("killed with %d of %d device jobs done; the test needs a job in the middle", len(before), devices)
	}

	hub = startServe(t, dir, "--scenario", scenario, "--pacing", "S1")
	testkit.Eventually(t, time.Minute, func() bool {
		clientJSON(t, dir, &j, "jobs", "get", "resume-1")
		return j.Status == "completed"
	}, "the job to complete after the restart")
	if s := j.Stats; s.DeviceCount != devices || s.SucceededCount != devices || s.FailedCount+s.RunningCount+s.PendingCount != 0 {
		t.Errorf("statistics after the restart: %+v", s)
	}
	var after []deviceJobRow
	clientJSON(t, dir, &after, "query", "SELECT * FROM devices.jobs WHERE jobId = 'resume-1'")
	byID := map[string]deviceJobRow{}
	for _, r := range after {
		if _, dup := byID[r.DeviceID]; dup {
			t.Errorf("device %s has two device jobs", r.DeviceID)
		}
		byID[r.DeviceID] = r
		if r.Status != "completed" {
			t.Errorf("device %s: %s", r.DeviceID, r.Status)
		}
	}
	if len(byID) != devices {
		t.Errorf("%d device jobs, want %d", len(byID), devices)
	}
	for _, r := range before {
		if got := byID[r.DeviceID]; got != r {
			t.Errorf("device %s was recorded before the kill as %+v, and is %+v after: run twice", r.DeviceID, r, got)
		}
	}
	t.Logf("killed after %d of %d device jobs; the rest ran after the restart", len(before), devices)

	// A graceful stop (SIGTERM) ends the hub cleanly.
	if err := hub.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := <-hub.done; err != nil || !strings.Contains(hub.out.String(), "fleetsim hub stopped") {
		t.Errorf("after SIGTERM: %v\n%s", err, hub.out.String())
	}
}

// check fails the test when a read of the job breaks the statistics
// invariant: the counters add up to deviceCount, and a terminal job has no
// device pending or running.
func (j jobView) check(t *testing.T) {
	t.Helper()
	s := j.Stats
	if s.PendingCount+s.RunningCount+s.SucceededCount+s.FailedCount != s.DeviceCount {
		t.Fatalf("job read %s with %+v", j.Status, s)
	}
	switch j.Status {
	case "completed", "failed", "cancelled":
		if s.PendingCount+s.RunningCount != 0 {
			t.Fatalf("job read %s with devices not done: %+v", j.Status, s)
		}
	}
}

// TestBinaryKillWhileCancelling cancels a method job while its calls are in
// flight (devices that answer after 20 s), kills the hub with SIGKILL before
// they answer, and serves the same data directory again: the job, which
// read running while it waited for those calls, ends cancelled at once; the
// calls' answers were lost, so those devices are canceled like the ones
// never reached, and none is left pending or running.
func TestBinaryKillWhileCancelling(t *testing.T) {
	if testing.Short() {
		t.Skip("kills and restarts a hub")
	}
	dir := t.TempDir()
	scenario, _ := filepath.Abs("testdata/cancel.yaml")
	const devices = 20
	hub := startServe(t, dir, "--scenario", scenario, "--pacing", "S1")
	testkit.Eventually(t, time.Minute, func() bool {
		var rows []struct{ N int }
		clientJSON(t, dir, &rows, "query", "SELECT COUNT() AS n FROM devices WHERE connectionState = 'Connected'")
		return len(rows) == 1 && rows[0].N == devices
	}, "the fleet to connect")

	var j jobView
	clientJSON(t, dir, &j, "jobs", "create", "cancel-1", "--method", "slow", "--connect-timeout", "30s")
	testkit.Eventually(t, time.Minute, func() bool {
		clientJSON(t, dir, &j, "jobs", "get", "cancel-1")
		j.check(t)
		return j.Stats.RunningCount >= 3
	}, "calls in flight")
	clientJSON(t, dir, &j, "jobs", "cancel", "cancel-1")
	j.check(t)
	if j.Status != "running" || j.Stats.RunningCount == 0 || j.Stats.PendingCount != 0 {
		t.Fatalf("cancel answered %s %+v", j.Status, j.Stats)
	}
	hub.kill(t)

	hub = startServe(t, dir, "--scenario", scenario, "--pacing", "S1")
	testkit.Eventually(t, time.Minute, func() bool {
		clientJSON(t, dir, &j, "jobs", "get", "cancel-1")
		j.check(t)
		return j.Status == "cancelled"
	}, "the job to end cancelled after the restart")
	if s := j.Stats; s.DeviceCount != devices || s.FailedCount != devices || j.EndTime == "" {
		t.Errorf("after the restart: %s %+v, endTime %q", j.Status, s, j.EndTime)
	}
	var rows []deviceJobRow
	clientJSON(t, dir, &rows, "query", "SELECT * FROM devices.jobs WHERE jobId = 'cancel-1'")
	if len(rows) != devices {
		t.Errorf("%d device jobs, want %d", len(rows), devices)
	}
	for _, r := range rows {
		if r.Status != "canceled" {
			t.Errorf("device %s: %s", r.DeviceID, r.Status)
		}
	}
	if err := hub.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-hub.done
}
