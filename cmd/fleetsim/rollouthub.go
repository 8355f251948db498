package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rs/zerolog"

	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/hubjobs/restapi"
	"github.com/fleetsim/fleetsim/internal/iothub"
	"github.com/fleetsim/fleetsim/scenarios"
	"github.com/fleetsim/fleetsim/scenarios/rollout"
)

// rolloutHost builds the rollout host of a served hub: the rollouts run on
// the hub's in-process service and keep their state in its data folder.
func rolloutHost(log zerolog.Logger) func(*hubjobs.Hub, string) (hubjobs.RolloutHost, error) {
	return func(h *hubjobs.Hub, dir string) (hubjobs.RolloutHost, error) {
		return rollout.NewHost(rollout.HubOf(h), dir, log.With().Str("component", "rollouts").Logger())
	}
}

// hubFlags are the flags of status, approve, abort and list for a rollout
// that the hub runs (--hub): the connection flags of the client commands,
// with --data shared with the state-file flags.
type hubFlags struct {
	on bool
	c  clientFlags
	s  *stateFlags
}

func addHubFlags(f *flagSet, s *stateFlags) *hubFlags {
	h := &hubFlags{s: s}
	f.fs.BoolVar(&h.on, "hub", false, "the rollout is run by the hub ('fleetsim rollout submit'): ask the hub of --data or --connection-string")
	f.fs.StringVar(&h.c.connStr, "connection-string", "", "with --hub, service connection `STRING` (default: from DIR/connection.json)")
	f.fs.StringVar(&h.c.url, "url", "", "with --hub, REST API base `URL` (default: from connection.json)")
	f.fs.StringVar(&h.c.ca, "ca", "", "with --hub, CA certificate `FILE` to trust (default: caFile of connection.json)")
	return h
}

// client returns a REST client of the hub the flags name.
func (h *hubFlags) client() (*restapi.Client, error) {
	c := h.c
	c.data = h.s.data
	return restClient(&c)
}

func restClient(c *clientFlags) (*restapi.Client, error) {
	conn, base, tlsConf, err := c.resolve()
	if err != nil {
		return nil, err
	}
	return restapi.NewClient(conn.ServiceConnectionString, restapi.ClientOptions{BaseURL: base, TLSConfig: tlsConf})
}

// hubID is the rollout id of a --hub command (state files have no say).
func (h *hubFlags) id(cmd string, args []string) (string, []string, error) {
	if h.s.state != "" {
		return "", nil, usagef(cmd, "--state and --hub do not go together: the hub keeps its rollouts' state")
	}
	if len(args) == 0 {
		return "", nil, usagef(cmd, "name the rollout (ID)")
	}
	return args[0], args[1:], nil
}

// fetchState reads a hub-run rollout's state.
func fetchState(ctx context.Context, cl *restapi.Client, id string) (*rollout.State, error) {
	b, err := cl.Rollout(ctx, id)
	if err != nil {
		return nil, err
	}
	st := new(rollout.State)
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("rollout %s: unexpected answer: %w", id, err)
	}
	return st, nil
}

func rolloutSubmit() *command {
	return &command{
		name: "submit", args: "PLAN", summary: "hand a rollout plan to a 'fleetsim serve' hub, which runs it",
		help: `Submits the rollout plan in PLAN to the hub of --data (or --connection-string
and --url), which runs the rollout itself: its state is kept in the hub's data
folder (DIR/rollouts/hub/ID.json), it survives a restart of the hub, and the
web console shows it. Operate on it with 'fleetsim rollout status|approve|abort
--hub ID' and 'fleetsim rollout list --hub'. With --wait the command follows
the rollout, printing each step, until it ends, and exits as 'rollout run'
does: 0 when it completed, 1 otherwise.`,
		setup: func(f *flagSet) action {
			c := addClientFlags(f)
			var wait bool
			var report string
			f.fs.BoolVar(&wait, "wait", false, "follow the rollout until it ends")
			f.fs.StringVar(&report, "report", "", "with --wait, write rollout.json and rollout.txt into `DIR`")
			return func(ctx context.Context, a *app, args []string) error {
				if len(args) != 1 {
					return usagef(f.name, "want one PLAN file")
				}
				data, err := os.ReadFile(args[0])
				if err != nil {
					return usagef(f.name, "%v", err)
				}
				var pe *scenarios.ParseError
				if _, err := rollout.ParsePlan(args[0], data); errors.As(err, &pe) {
					for _, l := range pe.Lines() {
						fmt.Fprintln(a.stderr, l)
					}
					return &silentError{code: exitUsage, msg: "the plan is invalid"}
				}
				cl, err := restClient(c)
				if err != nil {
					return err
				}
				defer cl.CloseIdleConnections()
				b, err := cl.SubmitRollout(ctx, filepath.Base(args[0]), data)
				var ie *iothub.Error
				if errors.As(err, &ie) && ie.Code == iothub.CodeArgumentInvalid {
					fmt.Fprintln(a.stderr, ie.Message)
					return &silentError{code: exitUsage, msg: "the hub refused the plan"}
				}
				if err != nil {
					return fmt.Errorf("submit %s: %w", args[0], err)
				}
				var st rollout.State
				if err := json.Unmarshal(b, &st); err != nil {
					return fmt.Errorf("submit %s: unexpected answer: %w", args[0], err)
				}
				fmt.Fprintf(a.stdout, "rollout %s submitted; the hub runs it (fleetsim rollout status --hub %s)\n", st.ID, st.ID)
				if !wait {
					return nil
				}
				return followRollout(ctx, a, cl, st.ID, report)
			}
		},
	}
}

// followRollout prints a hub-run rollout's new events every second until it
// ends, then its report.
func followRollout(ctx context.Context, a *app, cl *restapi.Client, id, report string) error {
	seen := 0
	for {
		st, err := fetchState(ctx, cl, id)
		if err != nil {
			return err
		}
		for _, ev := range st.Events[min(seen, len(st.Events)):] {
			stage := ""
			if ev.Stage != "" {
				stage = "[" + ev.Stage + "] "
			}
			fmt.Fprintf(a.stderr, "%s %s%s\n", ev.At.Local().Format("15:04:05"), stage, ev.Msg)
		}
		seen = len(st.Events)
		if st.Terminal() {
			if err := st.WriteText(a.stdout); err != nil {
				return err
			}
			if report != "" {
				if err := writeRolloutReport(report, st); err != nil {
					return err
				}
			}
			if st.Status != rollout.StatusDone {
				return &silentError{code: 1, msg: fmt.Sprintf("rollout %s %s", st.ID, st.Status)}
			}
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// hubStatus prints a hub-run rollout's state, as status does a state file's.
func (h *hubFlags) status(ctx context.Context, a *app, cmd string, args []string, asJSON bool) error {
	id, _, err := h.id(cmd, args)
	if err != nil {
		return err
	}
	cl, err := h.client()
	if err != nil {
		return err
	}
	defer cl.CloseIdleConnections()
	st, err := fetchState(ctx, cl, id)
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

func (h *hubFlags) approve(ctx context.Context, a *app, cmd string, args []string) error {
	id, rest, err := h.id(cmd, args)
	if err != nil {
		return err
	}
	stage := ""
	if len(rest) > 0 {
		stage = rest[0]
	}
	cl, err := h.client()
	if err != nil {
		return err
	}
	defer cl.CloseIdleConnections()
	b, err := cl.ApproveRollout(ctx, id, stage)
	if err != nil {
		return err
	}
	var got struct{ Stage string }
	_ = json.Unmarshal(b, &got)
	_, err = fmt.Fprintf(a.stdout, "approved stage %s\n", got.Stage)
	return err
}

func (h *hubFlags) abort(ctx context.Context, a *app, cmd string, args []string, reason string) error {
	id, _, err := h.id(cmd, args)
	if err != nil {
		return err
	}
	cl, err := h.client()
	if err != nil {
		return err
	}
	defer cl.CloseIdleConnections()
	if _, err := cl.AbortRollout(ctx, id, reason); err != nil {
		return err
	}
	_, err = fmt.Fprintln(a.stdout, "abort requested; the hub cancels the stage's job and runs the rollback")
	return err
}

func (h *hubFlags) list(ctx context.Context, a *app) error {
	cl, err := h.client()
	if err != nil {
		return err
	}
	defer cl.CloseIdleConnections()
	b, err := cl.Rollouts(ctx)
	if err != nil {
		return err
	}
	var list []rollout.Summary
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("rollouts: unexpected answer: %w", err)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTATUS\tSTAGE\tTOUCHED\tUPDATED")
	for _, s := range list {
		stage := "-"
		if s.Current != "" {
			stage = fmt.Sprintf("%d/%d %s", s.Stage, s.Stages, s.Current)
		}
		status := s.Status
		if s.Reason != "" {
			status += " (" + strings.TrimSpace(s.Reason) + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", s.ID, status, stage, s.Touched, s.Updated.Local().Format(time.DateTime))
	}
	return tw.Flush()
}

// hubHosted says to add --hub when rollout id has no state file of its own
// but the hub of data runs it.
func hubHosted(cmd, path, data, id string) error {
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if _, err := os.Stat(filepath.Join(data, "rollouts", "hub", id+".json")); err != nil {
		return nil
	}
	return usagef(cmd, "rollout %s is run by the hub, not from a state file: add --hub", id)
}
