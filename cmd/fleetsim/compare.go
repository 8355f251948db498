package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/fleetsim/fleetsim/scenarios"
	"github.com/fleetsim/fleetsim/scenarios/rollout"
	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// compareRollouts is fleetsim run SCENARIO --rollout-plan A --rollout-plan B:
// the scenario is played once per plan, one after the other, each on a
// fresh embedded hub with the same seed, the plan in place of the
// scenario's own jobs and rollouts (at the scenario's rollout offset, else
// 3 s), and one report compares them.
func (a *app) compareRollouts(ctx context.Context, f *flagSet, o runFlags, args []string) error {
	if len(args) != 1 {
		return usagef(f.name, "want one SCENARIO")
	}
	if o.hub != "" || o.hubFile != "" || o.shard.v != "" || o.data != "" || o.console != "" {
		return usagef(f.name, "--rollout-plan plays each plan on a fresh embedded hub: it does not go with --hub, --hub-file, --shard, --data or --console")
	}
	var plans []*scenarios.RolloutPlan
	ids := map[string]string{}
	for _, path := range o.rolloutPlans {
		p, err := rollout.LoadPlan(path)
		if err != nil {
			var pe *scenarios.ParseError
			if errors.As(err, &pe) {
				for _, l := range pe.Lines() {
					fmt.Fprintln(a.stderr, l)
				}
				return &silentError{code: exitUsage, msg: "plan " + path + " is invalid"}
			}
			return usagef(f.name, "%v", err)
		}
		if other, ok := ids[p.ID]; ok {
			return usagef(f.name, "plans %s and %s have the same id %q: give each its own, so their jobs can be told apart", other, path, p.ID)
		}
		ids[p.ID] = path
		plans = append(plans, p)
	}
	log, err := newLogger(a.stderr, a.stderrTTY, f.level)
	if err != nil {
		return &usageError{cmd: f.name, msg: err.Error()}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	play := a.play
	if play == nil {
		play = playScenario
	}
	var seed *int64
	if o.seed != "" {
		var v int64
		if _, err := fmt.Sscan(o.seed, &v); err != nil {
			return usagef(f.name, "--seed %q: want an integer", o.seed)
		}
		seed = &v
	}
	var reps []*runner.Report
	for i, plan := range plans {
		sc, err := a.loadScenario(f.name, args[0])
		if err != nil {
			return err
		}
		s, ok := sc.(*scenarios.Scenario)
		if !ok {
			return fmt.Errorf("scenario %s: not a loaded scenario", sc.Name())
		}
		if seed == nil { // every plan plays with the first one's seed
			v := s.Seed
			seed = &v
		}
		at := 3 * time.Second
		for _, act := range s.Actions() {
			if r, ok := act.(scenarios.RolloutAction); ok {
				at = r.At
				break
			}
		}
		s.Rehearse(at, plan)
		opts := playOptions{Seed: seed, Logger: log}
		if opts.Plan, err = a.planFleet(f.name, sc, opts); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "plan %d of %d: %s (rollout %s at T+%s, seed %d)\n", i+1, len(plans), o.rolloutPlans[i], plan.ID, at, *seed)
		rep, err := play(ctx, sc, opts)
		if err != nil {
			return fmt.Errorf("run %s with plan %s: %w", sc.Name(), o.rolloutPlans[i], err)
		}
		if len(rep.Rollouts) > 0 {
			r := rep.Rollouts[0]
			fmt.Fprintf(a.stdout, "plan %s: rollout %s %s, %d devices touched\n", o.rolloutPlans[i], r.ID, r.Status, r.Touched)
		}
		reps = append(reps, rep)
		if ctx.Err() != nil {
			break
		}
	}
	rep, err := runner.Compare(o.rolloutPlans[:len(reps)], reps)
	if err != nil {
		return err
	}
	a.stdout.Write(renderText(rep))
	if o.report != "" {
		files, err := writeReports(o.report, rep)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "Report written to %s\n", strings.Join(files, ", "))
	}
	if ctx.Err() != nil {
		return &silentError{code: exitInterrupted, msg: "run " + args[0] + ": interrupted; the comparison above covers the plans played by then"}
	}
	if !rep.Passed {
		return &silentError{code: exitFail, msg: fmt.Sprintf("run %s: a plan's expectations failed (see the comparison)", args[0])}
	}
	return nil
}

// writeComparisonText adds the side-by-side table of a run under several
// rollout plans to the text report.
func writeComparisonText(b io.Writer, cs []runner.PlanComparison) {
	if len(cs) == 0 {
		return
	}
	io.WriteString(b, "\nRollout plans side by side (same scenario, same seed, a fresh hub each)\n")
	tw := tabwriter.NewWriter(b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  PLAN\tROLLOUT\tVERDICT\tTOUCHED BEFORE ABORT\tTO 99 % CONVERGED\tFAILURES\tSTAGES REACHED\tABORT RULE")
	for _, c := range cs {
		conv := "never"
		if c.Converged99 != nil {
			conv = fmtDur(time.Duration(*c.Converged99))
		}
		verdict := c.Verdict
		if c.StoppedAt != "" {
			verdict += " at " + c.StoppedAt
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%d\t%s\t%d\t%d of %d\t%s\n", c.Plan, c.Rollout, verdict, c.Touched, conv, c.Failures, c.StagesReached, c.Stages, orDash(c.AbortRule))
	}
	tw.Flush()
}
