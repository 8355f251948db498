package rollout_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/fleetsim/fleetsim/internal/testkit"
	"github.com/fleetsim/fleetsim/scenarios/rollout"
)

func fleetOf(n int, tag func(i int) map[string]any) []dev {
	out := make([]dev, n)
	for i := range out {
		out[i] = dev{id: fmt.Sprintf("d-%03d", i), tags: tag(i)}
	}
	return out
}

// TestStagesAndGatesComplete runs a three-stage rollout (a canary ring by
// condition, a seeded share, the rest) of a twin job on a real hub with paho
// devices: every device is in exactly one stage, every gate passes on its
// figures, and the devices converge.
func TestStagesAndGatesComplete(t *testing.T) {
	h := testkit.StartHub(t, testkit.HubOptions{})
	startFleet(t, h, fleetOf(30, func(i int) map[string]any {
		if i < 3 {
			return map[string]any{"ring": "canary"}
		}
		return map[string]any{"ring": "broad"}
	}))
	p := parse(t, `
id: fw-2
seed: 7
action:
  twin: {desired: {fw: "2.0.0"}}
stages:
  - {name: canary, condition: "tags.ring = 'canary'"}
  - {name: half, share: 0.5}
  - {name: rest, rest: true}
gates:
  minSuccessRate: 1
  converge: {match: "properties.reported.fw.value = '2.0.0'", minFraction: 1, within: 20s}
  bake: 10ms
poll: 20ms
`)
	st, _ := run(t, rollout.HubOf(h), p)
	for _, ev := range st.Events {
		t.Log(ev.Stage, ev.Msg)
	}
	if st.Status != rollout.StatusDone {
		t.Fatalf("status %s: %s", st.Status, st.Reason)
	}
	total := 0
	for _, s := range st.Stages {
		total += s.Devices
		var gates []string
		for _, g := range s.Gates {
			if !g.Passed {
				t.Errorf("stage %s gate %s failed: %s", s.Name, g.Gate, g.Figures)
			}
			gates = append(gates, g.Gate)
		}
		if got := strings.Join(gates, ","); got != "successRate,converge,bake" {
			t.Errorf("stage %s gates %s", s.Name, got)
		}
	}
	if st.Stages[0].Devices != 3 || total != 30 {
		t.Errorf("stage sizes %d, %d, %d", st.Stages[0].Devices, st.Stages[1].Devices, st.Stages[2].Devices)
	}
	page, err := h.Query("SELECT COUNT() AS n FROM devices WHERE properties.reported.fw.value = '2.0.0'", 10, "")
	if err != nil || fmt.Sprint(page.Items) != "[map[n:30]]" {
		t.Errorf("converged: %v %v", page.Items, err)
	}
}
