package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/fleetsim/fleetsim/scenarios/runner"
)

func reportCommand() *command {
	return &command{
		name:    "report",
		summary: "work with run reports: merge the shards' reports of one run",
		help:    `Works with the reports 'fleetsim run --report DIR' writes.`,
		examples: []string{
			"fleetsim report merge shard-1/ shard-2/ shard-3/ --out merged/",
		},
		subs: []*command{reportMerge()},
	}
}

func reportMerge() *command {
	return &command{
		name: "merge", args: "DIR|FILE...", summary: "merge the shards' reports of one run into one verdict",
		help: `Reads the report.json of each shard of one run (a directory that holds one, or
the file) and writes one report: report.json, report.html and junit.xml in
--out, and the text report to stdout. Device figures are summed and listed per
shard; each job is counted once, as its statistics are the hub's (the read of
the shard that ended last is kept); the fleet-wide connected expectation is
judged again on the summed figures, and every other expectation holds when it
held on every shard. A shard of the run without a report fails the verdict.
Reports of different scenarios, seeds or runs, or two of one shard, are
refused.

Exit codes: 0 the merged verdict passed, 1 it failed, 2 the reports cannot be
merged or the command line is wrong.`,
		setup: func(f *flagSet) action {
			var out string
			f.fs.StringVar(&out, "out", "", "write report.json, junit.xml and report.html of the merged run to `DIR`")
			return func(ctx context.Context, a *app, args []string) error {
				return a.mergeReports(f, out, args)
			}
		},
	}
}

func (a *app) mergeReports(f *flagSet, out string, args []string) error {
	if len(args) == 0 {
		return usagef(f.name, "missing DIR: the report directories (or report.json files) of the shards")
	}
	var reps []*runner.Report
	for _, p := range args {
		r, err := readReport(p)
		if err != nil {
			return usagef(f.name, "%v", err)
		}
		reps = append(reps, r)
	}
	m, err := runner.Merge(reps)
	if err != nil {
		if errors.Is(err, runner.ErrMerge) {
			return usagef(f.name, "%v", err)
		}
		return err
	}
	a.stdout.Write(renderText(m))
	if out != "" {
		files, err := writeReports(out, m)
		if err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "Report written to %s\n", strings.Join(files, ", "))
	}
	if !m.Passed {
		return &silentError{code: 1, msg: fmt.Sprintf("report merge: %s failed over %d shards", m.Scenario, len(m.Shards))}
	}
	return nil
}

// readReport reads a report.json, given as the file or its directory.
func readReport(path string) (*runner.Report, error) {
	if st, err := os.Stat(path); err == nil && st.IsDir() {
		path = filepath.Join(path, "report.json")
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var r runner.Report
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("%s: not a fleetsim report: %w", path, err)
	}
	return &r, nil
}

// writeShardsText adds what a sharded or merged report says about its
// shards: the run, each shard's figures, the devices that never connected
// and the warnings.
func writeShardsText(b *bytes.Buffer, r *runner.Report) {
	if r.Run != nil {
		fmt.Fprintf(b, "Run %s (epoch %d, %d shards, job id suffix -%s)", r.Run.ID, r.Run.Epoch, r.Run.Shards, r.Run.JobSuffix)
		if r.Run.BarrierWait > 0 {
			fmt.Fprintf(b, ", waited %s at the start barrier", fmtDur(time.Duration(r.Run.BarrierWait)))
		}
		b.WriteString("\n")
	}
	if len(r.Shards) > 0 {
		b.WriteString("\nShards\n")
		tw := tabwriter.NewWriter(b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "  SHARD\tDEVICES\tCONNECTED\tCONNECTS\tDISCONNECTS\tNEVER CONNECTED\tFAILED EXPECTATIONS\tVERDICT")
		for _, s := range r.Shards {
			v := "PASS"
			if !s.Passed {
				v = "FAIL"
			}
			if s.Interrupted {
				v += " (interrupted)"
			}
			fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\n", s.Shard, s.Devices, s.ConnectedAtEnd, s.Connects, s.Disconnects, s.NeverConnected, s.FailedExpectations, v)
		}
		tw.Flush()
	}
	if nc := r.NeverConnected; nc != nil {
		fmt.Fprintf(b, "\nNever connected: %d devices\n", nc.Count)
		for _, c := range nc.Causes {
			fmt.Fprintf(b, "  %d  %s (e.g. %s)\n", c.Count, c.Cause, strings.Join(c.Examples, ", "))
		}
	}
	if len(r.Warnings) > 0 && (r.Run != nil || len(r.Shards) > 0 || r.NeverConnected != nil || r.Hub != nil) {
		b.WriteString("\nWarnings\n")
		for _, w := range r.Warnings {
			fmt.Fprintf(b, "  %s\n", w)
		}
	}
}
