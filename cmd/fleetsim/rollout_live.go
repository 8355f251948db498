package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/fleetsim/fleetsim/scenarios/rollout"
	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// rolloutProgress turns a rollout's state into the live view's progress:
// the rollout line (status, stage, the latest gate or the abort), a bar per
// stage job (marking jobs left out), and note as the line of what just
// happened.
func rolloutProgress(st *rollout.State, now time.Time, note string) runner.Progress {
	p := runner.Progress{Rollout: rolloutLine(st), Note: note}
	if !st.Started.IsZero() {
		p.Elapsed = max(now.Sub(st.Started), 0)
	}
	for _, s := range st.Stages {
		for _, j := range s.Jobs {
			if j.Kind == rollout.KindMark {
				continue
			}
			x := j.Stats
			p.Jobs = append(p.Jobs, runner.JobProgress{JobID: j.ID, Status: j.Status, DeviceCount: x.DeviceCount,
				Succeeded: x.SucceededCount, Failed: x.FailedCount, Running: x.RunningCount, Pending: x.PendingCount})
		}
	}
	return p
}

// rolloutLine is the rollout's line: "fw-2 running · stage 2/3 early (run) ·
// gate canary/converge passed 95.0 %" or the abort rule once it fired.
func rolloutLine(st *rollout.State) string {
	parts := []string{st.ID + " " + st.Status}
	if st.Stage < len(st.Stages) {
		s := st.Stages[st.Stage]
		parts = append(parts, fmt.Sprintf("stage %d/%d %s (%s, %d devices)", st.Stage+1, len(st.Stages), s.Name, s.Step, s.Devices))
	}
	if a := st.Abort; a != nil {
		parts = append(parts, "abort at "+a.Stage+": "+a.Rule)
		return strings.Join(parts, " · ")
	}
	for i := min(st.Stage, len(st.Stages)-1); i >= 0; i-- {
		gs := st.Stages[i].Gates
		if len(gs) == 0 {
			continue
		}
		g := gs[len(gs)-1]
		v := "passed"
		if !g.Passed {
			v = "FAILED"
		}
		figure := ""
		if g.Of > 0 {
			figure = fmt.Sprintf(" %d/%d (%.1f %%, %.1f %% needed)", g.Count, g.Of, 100*g.Value, 100*g.Threshold)
		}
		parts = append(parts, fmt.Sprintf("gate %s/%s %s%s", st.Stages[i].Name, g.Gate, v, figure))
		break
	}
	return strings.Join(parts, " · ")
}
