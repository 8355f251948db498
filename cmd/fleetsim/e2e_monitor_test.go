package main

import (
	"encoding/json"
	"errors"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/internal/testkit"
)

// TestBinaryMonitor watches a served hub's device as 'fleetsim monitor'
// does: a direct method call and the device's answer show up as two JSON
// lines, Ctrl-C (SIGINT) ends the command with exit 0, --timeout ends it
// too, and contradictory flags are a usage error.
func TestBinaryMonitor(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "fleetsim-data")
	startServe(t, data, "--scenario", "quickstart")
	testkit.Eventually(t, time.Minute, func() bool {
		var rows []struct{ N int }
		code, stdout, _ := fleetsim(t, dir, "query", "SELECT COUNT() AS n FROM devices WHERE deviceId = 'qs-sensor-000' AND connectionState = 'Connected'", "-o", "json")
		return code == 0 && json.Unmarshal([]byte(stdout), &rows) == nil && len(rows) == 1 && rows[0].N == 1
	}, "qs-sensor-000 connected")

	mon := exec.Command(binary, "monitor", "--data", data, "--device", "qs-sensor-000", "--types", "methodCall,methodResult", "--json", "--timeout", "2m")
	var stdout, stderr syncBuffer
	mon.Stdout, mon.Stderr = &stdout, &stderr
	if err := mon.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mon.Wait() }()
	defer func() {
		if mon.ProcessState == nil {
			mon.Process.Kill()
			<-done
		}
	}()
	testkit.Eventually(t, 30*time.Second, func() bool { return strings.Contains(stderr.String(), "Watching device qs-sensor-000") }, "monitor started")
	if code, out, errs := fleetsim(t, dir, "invoke", "qs-sensor-000", "ping", "--data", data); code != 0 {
		t.Fatalf("invoke: exit %d: %s%s", code, out, errs)
	}
	testkit.Eventually(t, 30*time.Second, func() bool { return strings.Count(stdout.String(), "\n") >= 2 }, "two events printed")
	if err := mon.Process.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) || err != nil {
			t.Errorf("monitor after Ctrl-C: %v\n%s", err, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("monitor did not stop on SIGINT")
	}
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var call, res struct {
		Type, DeviceID, Method, RequestID string
		Status                            *int
		Payload                           json.RawMessage
	}
	if len(lines) != 2 || json.Unmarshal([]byte(lines[0]), &call) != nil || json.Unmarshal([]byte(lines[1]), &res) != nil {
		t.Fatalf("monitor printed %q", lines)
	}
	if call.Type != "methodCall" || call.Method != "ping" || call.DeviceID != "qs-sensor-000" ||
		res.Type != "methodResult" || res.Status == nil || res.RequestID != call.RequestID || !strings.Contains(string(res.Payload), "qs-sensor-000") {
		t.Errorf("events: %+v then %+v", call, res)
	}
	if !strings.Contains(stderr.String(), "2 events.") {
		t.Errorf("stderr %q lacks the count", stderr.String())
	}

	// The quickstart's readings, from its payload template, as readable
	// lines, until --timeout.
	code, out, errs := fleetsim(t, dir, "monitor", "--data", data, "--condition", "deviceId IN ['qs-sensor-001', 'qs-sensor-002']", "--types", "telemetry", "--timeout", "8s")
	if code != 0 || !strings.Contains(errs, "Watching the devices where deviceId IN") {
		t.Errorf("monitor --timeout 8s: exit %d\n%s%s", code, out, errs)
	}
	for _, want := range []string{"qs-sensor-001  telemetry  {\"deviceId\":\"qs-sensor-001\"", "qs-sensor-002  telemetry", `"temperature":`,
		`system{content-encoding: "utf-8", content-type: "application/json"}  properties{source: "fleetsim-quickstart"}`} {
		if !strings.Contains(out, want) {
			t.Errorf("monitor output lacks %s:\n%s", want, out)
		}
	}
	if strings.Contains(out, "qs-sensor-000") {
		t.Errorf("monitor shows a device the condition does not select:\n%s", out)
	}
	code, _, errs = fleetsim(t, dir, "monitor", "--data", data, "--device", "a", "--condition", "tags.x = 1")
	if code != exitUsage {
		t.Errorf("--device with --condition: exit %d, want %d: %s", code, exitUsage, errs)
	}
	code, _, errs = fleetsim(t, dir, "monitor", "--data", data, "--condition", "tags.x = ")
	if code != exitFail || !strings.Contains(errs, "ArgumentInvalid") {
		t.Errorf("bad condition: exit %d, want %d with the hub's error: %s", code, exitFail, errs)
	}
}
