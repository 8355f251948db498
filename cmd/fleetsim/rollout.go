package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs/restapi"
	"github.com/fleetsim/fleetsim/scenarios"
	"github.com/fleetsim/fleetsim/scenarios/rollout"
	"github.com/fleetsim/fleetsim/scenarios/runner"
)

func rolloutCommand() *command {
	return &command{
		name:    "rollout",
		summary: "run staged, gated job campaigns (rollouts) and operate on them",
		help: `Runs a rollout plan against a hub through IoT Hub's service API only, so the
same plan runs against 'fleetsim serve' and a real IoT hub. The rollout's state
is kept in a state file (default DIR/rollouts/ID.json under --data), written
after every step: run the same command again after a restart and it resumes.`,
		examples: []string{
			"fleetsim rollout run plan.yaml",
			"fleetsim rollout status --state fleetsim-data/rollouts/fw-2.json",
			"fleetsim rollout approve fw-2",
			"fleetsim rollout abort fw-2 --reason 'bad batch'",
			"fleetsim rollout list",
			"fleetsim rollout submit plan.yaml   # the served hub runs it",
			"fleetsim rollout approve --hub fw-2",
		},
		subs: []*command{rolloutRun(), rolloutSubmit(), rolloutStatus(), rolloutApprove(), rolloutAbort(), rolloutList()},
	}
}

// statePath is the state file of a rollout: --state, else DIR/rollouts/ID.json.
func statePath(state, data, id string) string {
	if state != "" {
		return state
	}
	return filepath.Join(data, "rollouts", id+".json")
}

func rolloutRun() *command {
	return &command{
		name: "run", args: "PLAN", summary: "run (or resume) a rollout plan",
		help: `Runs the rollout plan in PLAN against the hub of --data (a 'fleetsim serve')
or the hub of --connection-string (FLEETSIM_CONNECTION_STRING; a real IoT hub),
printing each step as it happens and the report at the end. With --report DIR
it writes DIR/rollout.json and DIR/rollout.txt. The exit code is 0 when the
rollout completed, 1 when it was aborted, stopped by a gate or failed.`,
		setup: func(f *flagSet) action {
			c := addClientFlags(f)
			var state, report, scenario string
			var at time.Duration
			f.fs.StringVar(&state, "state", "", "rollout state `FILE` (default DIR/rollouts/ID.json under --data)")
			f.fs.StringVar(&report, "report", "", "write rollout.json and rollout.txt into `DIR` (with --scenario: the run's reports)")
			f.fs.StringVar(&scenario, "scenario", "", "rehearse on the embedded hub with the fleet and disturbances of `SCENARIO` (a name or a file), without its own jobs")
			f.fs.DurationVar(&at, "at", 3*time.Second, "with --scenario, start the rollout at this `OFFSET` of the run")
			return func(ctx context.Context, a *app, args []string) error {
				if len(args) != 1 {
					return usagef(f.name, "want one PLAN file")
				}
				plan, err := rollout.LoadPlan(args[0])
				if err != nil {
					var pe *scenarios.ParseError
					if errors.As(err, &pe) {
						for _, l := range pe.Lines() {
							fmt.Fprintln(a.stderr, l)
						}
						return &silentError{code: exitUsage, msg: "the plan is invalid"}
					}
					return usagef(f.name, "%v", err)
				}
				if scenario != "" {
					// The scenario's fleet and disturbances, the plan instead of its
					// jobs; the run's report shows the rollout.
					return a.runScenario(ctx, f, runFlags{report: report, noLive: true, rollout: plan, rolloutAt: at}, []string{scenario})
				}
				conn, base, tlsConf, err := c.resolve()
				if err != nil {
					return err
				}
				cl, err := restapi.NewClient(conn.ServiceConnectionString, restapi.ClientOptions{BaseURL: base, TLSConfig: tlsConf})
				if err != nil {
					return err
				}
				defer cl.CloseIdleConnections()
				path := statePath(state, c.data, plan.ID)
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					return err
				}
				// One engine per rollout: a second run on the same state
				// file would create the same jobs and fight over the state.
				unlock, err := lockStateFile(path)
				if err != nil {
					return err
				}
				defer unlock()
				e, err := rollout.Start(rollout.ClientHub(cl), plan, args[0], path)
				if err != nil {
					return err
				}
				// The live view: on a terminal a frame redrawn in place (the
				// rollout's stage and gate, a bar per job, the latest events),
				// otherwise each event and a progress line.
				view := newLiveView(a.stdout, viewOptions{
					Terminal: a.stdoutTTY,
					Color:    a.stdoutTTY && a.getenv("NO_COLOR") == "",
					Width:    terminalWidth(a.getenv, a.stdout),
					WidthNow: func() int { return ttyWidth(a.stdout) },
					Title:    "rollout " + plan.ID,
				})
				e.OnEvent = func(ev rollout.Event) {
					stage := ""
					if ev.Stage != "" {
						stage = "[" + ev.Stage + "] "
					}
					view.Update(rolloutProgress(e.State(), ev.At, stage+ev.Msg))
				}
				e.OnSave = func(st *rollout.State) { view.Update(rolloutProgress(st, time.Now(), "")) }
				var wg sync.WaitGroup
				done := make(chan struct{})
				if a.stdoutTTY {
					wg.Add(1)
					go func() { // the ticker that redraws the frame, waited for below
						defer wg.Done()
						t := time.NewTicker(200 * time.Millisecond)
						defer t.Stop()
						for {
							select {
							case <-t.C:
								view.Draw()
							case <-done:
								return
							}
						}
					}()
				}
				st, runErr := e.Run(ctx)
				close(done)
				wg.Wait()
				view.Close()
				if a.stdoutTTY {
					fmt.Fprintln(a.stdout)
				}
				if err := st.WriteText(a.stdout); err != nil {
					return err
				}
				if report != "" {
					if err := writeRolloutReport(report, st); err != nil {
						return err
					}
				}
				if runErr != nil {
					return fmt.Errorf("rollout %s: %w (state in %s; run again to resume)", plan.ID, runErr, path)
				}
				if st.Status != rollout.StatusDone {
					return &silentError{code: 1, msg: fmt.Sprintf("rollout %s %s", st.ID, st.Status)}
				}
				return nil
			}
		},
	}
}

func writeRolloutReport(dir string, st *rollout.State) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "rollout.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	var t strings.Builder
	if err := st.WriteText(&t); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "rollout.txt"), []byte(t.String()), 0o644)
}

// stateFlags are the flags of the commands that operate on a state file.
type stateFlags struct{ state, data string }

func addStateFlags(f *flagSet) *stateFlags {
	s := &stateFlags{}
	f.fs.StringVar(&s.state, "state", "", "rollout state `FILE` (default DIR/rollouts/ID.json)")
	f.fs.StringVar(&s.data, "data", "./fleetsim-data", "`DIR` whose rollouts/ holds the state files")
	return s
}

// path returns the state file named by --state or by the rollout id in args.
func (s *stateFlags) path(cmd string, args []string) (string, []string, error) {
	if s.state != "" {
		return s.state, args, nil
	}
	if len(args) == 0 {
		return "", nil, usagef(cmd, "name the rollout (ID) or its --state file")
	}
	p := statePath("", s.data, args[0])
	if err := hubHosted(cmd, p, s.data, args[0]); err != nil {
		return "", nil, err
	}
	return p, args[1:], nil
}

func rolloutStatus() *command {
	return &command{
		name: "status", args: "[ID]", summary: "show a rollout's state and report",
		setup: func(f *flagSet) action {
			s := addStateFlags(f)
			hub := addHubFlags(f, s)
			var asJSON bool
			f.fs.BoolVar(&asJSON, "json", false, "print the state as JSON")
			return func(ctx context.Context, a *app, args []string) error {
				if hub.on {
					return hub.status(ctx, a, f.name, args, asJSON)
				}
				path, _, err := s.path(f.name, args)
				if err != nil {
					return err
				}
				st, err := rollout.LoadState(path)
				if err != nil {
					return err
				}
				if asJSON {
					b, err := json.MarshalIndent(st, "", "  ")
					if err != nil {
						return err
					}
					_, err = fmt.Fprintf(a.stdout, "%s\n", b)
					return err
				}
				return st.WriteText(a.stdout)
			}
		},
	}
}

func rolloutApprove() *command {
	return &command{
		name: "approve", args: "[ID] [STAGE]", summary: "approve the stage a rollout waits on (or a named stage)",
		setup: func(f *flagSet) action {
			s := addStateFlags(f)
			hub := addHubFlags(f, s)
			return func(ctx context.Context, a *app, args []string) error {
				if hub.on {
					return hub.approve(ctx, a, f.name, args)
				}
				path, rest, err := s.path(f.name, args)
				if err != nil {
					return err
				}
				stage := ""
				if len(rest) > 0 {
					stage = rest[0]
				}
				got, err := rollout.Approve(path, stage)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(a.stdout, "approved stage %s\n", got)
				return err
			}
		},
	}
}

func rolloutAbort() *command {
	return &command{
		name: "abort", args: "[ID]", summary: "ask the engine running a rollout to abort it (cancel, rollback)",
		setup: func(f *flagSet) action {
			s := addStateFlags(f)
			hub := addHubFlags(f, s)
			var reason string
			f.fs.StringVar(&reason, "reason", "", "why, for the report")
			return func(ctx context.Context, a *app, args []string) error {
				if hub.on {
					return hub.abort(ctx, a, f.name, args, reason)
				}
				path, _, err := s.path(f.name, args)
				if err != nil {
					return err
				}
				if err := rollout.RequestAbort(path, reason); err != nil {
					return err
				}
				_, err = fmt.Fprintln(a.stdout, "abort requested; the running engine cancels the stage's job and runs the rollback")
				return err
			}
		},
	}
}

func rolloutList() *command {
	return &command{
		name: "list", summary: "list the rollouts whose state files are in DIR/rollouts (with --hub: the hub's)",
		setup: func(f *flagSet) action {
			s := addStateFlags(f)
			hub := addHubFlags(f, s)
			return func(ctx context.Context, a *app, args []string) error {
				if hub.on {
					return hub.list(ctx, a)
				}
				files, err := filepath.Glob(filepath.Join(s.data, "rollouts", "*.json"))
				if err != nil {
					return err
				}
				slices.Sort(files)
				tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "ID\tSTATUS\tSTAGE\tUPDATED\tFILE")
				for _, p := range files {
					if strings.HasSuffix(p, ".control.json") {
						continue
					}
					st, err := rollout.LoadState(p)
					if err != nil {
						continue
					}
					stage := "-"
					if st.Stage < len(st.Stages) {
						stage = fmt.Sprintf("%d/%d %s", st.Stage+1, len(st.Stages), st.Stages[st.Stage].Name)
					}
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", st.ID, st.Status, stage, st.Updated.Local().Format(time.DateTime), p)
				}
				return tw.Flush()
			}
		},
	}
}

// writeRolloutsText adds the rollouts of a scenario run to its text report:
// each stage with its devices, jobs and gate figures, the abort rule and
// the rollback.
func writeRolloutsText(b io.Writer, rs []runner.RolloutReport) {
	for _, r := range rs {
		fmt.Fprintf(b, "\nRollout %s: %s, %d devices touched", r.ID, r.Status, r.Touched)
		if r.StoppedAt != "" {
			fmt.Fprintf(b, ", stopped at stage %s", r.StoppedAt)
		}
		fmt.Fprintln(b)
		for _, s := range r.Stages {
			fmt.Fprintf(b, "  stage %s: %d devices, %s; jobs %s\n", s.Name, s.Devices, s.Step, orDash(strings.Join(s.Jobs, ", ")))
			for _, j := range s.JobFigures {
				fmt.Fprintf(b, "    %s job %s %s: %d devices, %d succeeded, %d failed\n", j.Kind, j.ID, j.Status, j.Devices, j.Succeeded, j.Failed)
			}
			if len(s.Retries) > 0 {
				fmt.Fprintf(b, "    retries over %s devices\n", joinInts(s.Retries))
			}
			for _, g := range s.Gates {
				v := "passed"
				if !g.Passed {
					v = "FAILED"
				}
				fmt.Fprintf(b, "    gate %s %s: %s\n", g.Gate, v, g.Figures)
			}
		}
		if a := r.Abort; a != nil {
			fmt.Fprintf(b, "  abort at stage %s: %s; %d devices touched before the abort\n", a.Stage, a.Rule, a.Touched)
		} else if r.Reason != "" {
			fmt.Fprintf(b, "  %s\n", r.Reason)
		}
		if j := r.Rollback; j != nil {
			fmt.Fprintf(b, "  rollback job %s %s: %d devices, %d succeeded, %d failed\n", j.ID, j.Status, j.Devices, j.Succeeded, j.Failed)
		}
	}
}

// joinInts writes ns as "10, then 4".
func joinInts(ns []int) string {
	parts := make([]string, len(ns))
	for i, n := range ns {
		parts[i] = fmt.Sprint(n)
	}
	return strings.Join(parts, ", then ")
}
