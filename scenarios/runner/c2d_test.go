package runner_test

import (
	"testing"

	"github.com/fleetsim/fleetsim/scenarios"
	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// TestC2DTimelineAndReactions: a timeline c2d action reaches the devices
// its condition selects through the embedded hub; devices that
// acknowledge, report or reboot PUBACK it, devices that ignore it get it
// again after a reconnect, and the report counts both at the devices.
func TestC2DTimelineAndReactions(t *testing.T) {
	sc, err := scenarios.Parse("c2d.yaml", []byte(`
name: c2d
duration: 30s
devices:
  - count: 2
    idPattern: "report-{index}"
    tags: {kind: report}
    behavior: {c2d: {reaction: report}}
  - count: 2
    idPattern: "deaf-{index}"
    tags: {kind: deaf}
    behavior: {c2d: {reaction: ignore}}
  - count: 1
    idPattern: "reboot-{index}"
    tags: {kind: reboot}
    behavior: {c2d: {reaction: reboot, offline: 100ms}}
  - count: 1
    idPattern: "other-{index}"
    tags: {kind: other}
    behavior: {c2d: {}}
timeline:
  - at: 500ms
    c2d: {condition: "tags.kind != 'other'", data: '{"op":"ping"}', properties: {kind: command}, ttl: 10m}
  - at: 2s
    connectStorm: {condition: "tags.kind = 'deaf'"}
  - at: 4s
    c2d: {condition: "deviceId = 'nobody'", data: none}
`))
	if err != nil {
		t.Fatal(err)
	}
	rep, err := runner.Run(t.Context(), sc, runner.Options{})
	if err != nil {
		t.Fatal(err)
	}
	ds := rep.DeviceSide
	// 2 reported + 1 rebooted, each once; 2 ignored, each delivered again
	// on the reconnect after the storm.
	if ds.C2DReceived != 7 || ds.C2DAcked != 3 {
		t.Errorf("c2d received %d, acked %d; want 7 and 3", ds.C2DReceived, ds.C2DAcked)
	}
	if ds.Reboots == nil || ds.Reboots.Count != 1 {
		t.Errorf("reboots %+v, want the rebooting device back once", ds.Reboots)
	}
}
