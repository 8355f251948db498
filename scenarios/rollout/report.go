package rollout

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"
)

// WriteText writes the rollout's report for people: its outcome, each
// stage with its jobs and gate figures, and the abort rule that fired.
func (s *State) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "rollout %s: %s", s.ID, s.Status)
	if s.Reason != "" {
		fmt.Fprintf(&b, " (%s)", s.Reason)
	}
	b.WriteString("\n")
	if s.Ended != nil {
		fmt.Fprintf(&b, "ran %s, %d devices touched\n", s.Ended.Sub(s.Started).Round(time.Millisecond), s.Touched())
	}
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "STAGE\tSTEP\tDEVICES\tJOB\tKIND\tSTATUS\tSUCCEEDED\tFAILED")
	for _, st := range s.Stages {
		first := true
		for _, j := range st.Jobs {
			if j.Kind == KindMark {
				continue
			}
			name, step, devs := "", "", ""
			if first {
				name, step, devs = st.Name, st.Step, fmt.Sprint(st.Devices)
			}
			first = false
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%d\t%d\n", name, step, devs, j.ID, j.Kind, j.Status, j.Stats.SucceededCount, j.Stats.FailedCount)
		}
		if first {
			fmt.Fprintf(tw, "%s\t%s\t%d\t-\t\t\t\t\n", st.Name, st.Step, st.Devices)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, st := range s.Stages {
		for _, g := range st.Gates {
			v := "passed"
			if !g.Passed {
				v = "FAILED"
			}
			fmt.Fprintf(&b, "gate %s/%s %s: %s\n", st.Name, g.Gate, v, g.Figures)
		}
	}
	if a := s.Abort; a != nil {
		fmt.Fprintf(&b, "abort at stage %s (%s): %s; %d devices touched before the abort\n", a.Stage, a.At.Format(time.RFC3339), a.Rule, a.Touched)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
