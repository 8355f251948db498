package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fleetsim/fleetsim/scenarios"
	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// runFlags are the settings of `fleetsim run`.
type runFlags struct {
	seed    string
	shard   shardFlag
	data    string
	report  string
	noLive  bool
	logFile string
	console string
	// a remote hub instead of the embedded one
	hub, hubFile, hubURL, mqttURL, ca string
	// the CA of the fleet's certificateAuthority groups
	deviceCA, deviceCAKey string
	// how a remote run's shards meet (see shards.go)
	coord coordFlags
	// rollout, when set, is added to the scenario's timeline (rollout run --scenario)
	rollout   *scenarios.RolloutPlan
	rolloutAt time.Duration
	// rolloutPlans, when set, play the scenario once per plan and compare them
	rolloutPlans stringList
}

// The environment of --shard auto. A Kubernetes Indexed Job sets
// JOB_COMPLETION_INDEX (0-based) in each of its pods; the shard count is
// the Job's completions, which Kubernetes does not pass down, so the Job
// sets FLEETSIM_SHARDS to the same number.
const (
	envCompletionIndex = "JOB_COMPLETION_INDEX"
	envShards          = "FLEETSIM_SHARDS"
)

// shardFlag is --shard: refused when given twice with different values,
// as one process runs one shard.
type shardFlag struct {
	v   string
	set bool
}

func (s *shardFlag) String() string { return s.v }

// Set implements flag.Value.
func (s *shardFlag) Set(v string) error {
	if s.set && v != s.v {
		return fmt.Errorf("given twice (%s and %s): one process runs one shard", s.v, v)
	}
	s.v, s.set = v, true
	return nil
}

func runCommand() *command {
	return &command{
		name:    "run",
		args:    "SCENARIO",
		summary: "play a scenario on an in-process hub and fleet, print a report",
		help: `Plays a scenario: starts a broker, a hub and the scenario's simulated fleet in
this process, runs the scenario's timeline (jobs, connectivity changes), and
judges its expectations. SCENARIO is the name of an embedded scenario (see
'fleetsim scenarios') or the path of a scenario file.

On a terminal a live view shows devices connected and each job's progress
(█ succeeded, x failed, ▒ running, · pending), device-ops/s, latency and the
latest notes; otherwise a plain progress line is printed every second. Log
lines that come while the live view is drawn go above it, and the view is
drawn again below them; --log-file FILE sends them to a file instead. At the
end the report is printed: per job its statistics, device-ops/s, latency
percentiles and failures by cause, then each expectation with PASS or FAIL.

Exit codes: 0 every expectation passed, 1 an expectation failed (or the run
could not happen), 2 the scenario is invalid or the command line wrong, 130
interrupted (Ctrl-C or SIGTERM: the fleet stops, and the partial report of
what had happened is printed and written). With
--report DIR the report is also written to DIR/report.json, DIR/junit.xml (for
CI test reporting) and DIR/report.html (a self-contained page with charts).`,
		examples: []string{
			"fleetsim run quickstart",
			"fleetsim run ./scenarios/reboot.yaml --seed 42 --report out/",
			"FLEETSIM_HUB=\"$CONNSTR\" fleetsim run load-100k --shard 1/4 --no-live --hub-url https://hub:8443 --mqtt-url ssl://hub:8883 --ca ca.pem",
			"JOB_COMPLETION_INDEX=0 FLEETSIM_SHARDS=4 fleetsim run load-100k --shard auto --hub-file /etc/fleetsim/service/connection-string --no-live",
			"FLEETSIM_SEED=7 fleetsim run quickstart --log-level debug",
		},
		setup: func(f *flagSet) action {
			var o runFlags
			f.fs.StringVar(&o.seed, "seed", "", "random `SEED` for the fleet; the same seed replays the same run (default: the scenario's seed, else random)")
			f.fs.Var(&o.shard, "shard", "run only shard `I/N` of the fleet, e.g. 1/4, for fleets spread over machines (needs --hub); auto: shard JOB_COMPLETION_INDEX+1 of FLEETSIM_SHARDS, as in a Kubernetes Indexed Job")
			f.fs.StringVar(&o.data, "data", "", "keep the hub's stores in `DIR` (default: in memory, thrown away)")
			f.fs.StringVar(&o.report, "report", "", "also write report.json, junit.xml and report.html to `DIR`")
			f.fs.BoolVar(&o.noLive, "no-live", false, "no live progress, only the final report")
			f.fs.StringVar(&o.console, "console", "", "serve the web console (and the REST API) on `ADDR`, e.g. localhost:8443, while the run lasts")
			f.fs.StringVar(&o.logFile, "log-file", "", "write the logs to `FILE` (JSON lines) instead of stderr")
			f.fs.StringVar(&o.hub, "hub", "", "play against the hub of this service connection `STRING` (a 'fleetsim serve' or an Azure IoT hub) instead of an embedded one; on the command line ps shows it: prefer the environment or --hub-file")
			f.fs.StringVar(&o.hubFile, "hub-file", "", "read --hub's service connection string from `FILE`, e.g. a mounted Kubernetes Secret")
			f.fs.StringVar(&o.hubURL, "hub-url", "", "REST API base `URL` of --hub (default https://<HostName>)")
			f.fs.StringVar(&o.mqttURL, "mqtt-url", "", "where devices connect with --hub: ssl://host:8883 or wss://host/$iothub/websocket (default ssl://<HostName>:8883)")
			f.fs.StringVar(&o.deviceCA, "device-ca", "", "CA certificate `FILE` that signs the certificates of the scenario's certificateAuthority groups; with --hub, the hub must trust it (default without --hub: a CA kept in --data's device-ca/, else one made for the run)")
			f.fs.StringVar(&o.deviceCAKey, "device-ca-key", "", "private key `FILE` of --device-ca (EC, PEM)")
			f.fs.StringVar(&o.ca, "ca", "", "CA certificate `FILE` that --hub's certificates chain to (default: the system's)")
			f.fs.Var(&o.rolloutPlans, "rollout-plan", "play the scenario once per rollout plan `FILE` (repeat the flag), each on a fresh embedded hub with the same seed, and compare them in one report")
			o.coord.register(f.fs)
			return func(ctx context.Context, a *app, args []string) error {
				if len(o.rolloutPlans) > 0 {
					return a.compareRollouts(ctx, f, o, args)
				}
				return a.runScenario(ctx, f, o, args)
			}
		},
	}
}

func (a *app) runScenario(ctx context.Context, f *flagSet, o runFlags, args []string) error {
	if len(args) != 1 {
		if len(args) == 0 {
			return usagef(f.name, "missing SCENARIO: an embedded name or a file path")
		}
		return usagef(f.name, "want one SCENARIO, got %d arguments", len(args))
	}
	hubOnCmdLine := false
	f.fs.Visit(func(fl *flag.Flag) { hubOnCmdLine = hubOnCmdLine || fl.Name == "hub" })
	if o.hubFile != "" {
		if o.hub != "" {
			return usagef(f.name, "--hub and --hub-file both give the service connection string: use one")
		}
		b, err := os.ReadFile(o.hubFile)
		if err != nil {
			return usagef(f.name, "--hub-file: %v", err)
		}
		if o.hub = strings.TrimSpace(string(b)); o.hub == "" {
			return usagef(f.name, "--hub-file %s is empty", o.hubFile)
		}
	} else if hubOnCmdLine {
		fmt.Fprintln(a.stderr, "fleetsim: warning: --hub puts the service connection string on the command line, where ps shows it to every user of the machine; set FLEETSIM_HUB or use --hub-file instead")
	}
	opts := playOptions{DataDir: o.data, Hub: o.hub, HubURL: o.hubURL, MQTTURL: o.mqttURL, CAFile: o.ca, ConsoleAddr: o.console,
		DeviceCAFile: o.deviceCA, DeviceCAKeyFile: o.deviceCAKey}
	if (o.deviceCA == "") != (o.deviceCAKey == "") {
		return usagef(f.name, "--device-ca and --device-ca-key go together")
	}
	if o.hub != "" && o.console != "" {
		return usagef(f.name, "--console serves the embedded hub; with --hub, open that hub's own console")
	}
	if o.hub == "" && (o.hubURL != "" || o.mqttURL != "" || o.ca != "") {
		return usagef(f.name, "--hub-url, --mqtt-url and --ca need --hub")
	}
	if o.seed != "" {
		seed, err := strconv.ParseInt(o.seed, 10, 64)
		if err != nil {
			return usagef(f.name, "--seed %q: want an integer", o.seed)
		}
		opts.Seed = &seed
	}
	if o.shard.v != "" {
		i, n, err := resolveShard(o.shard.v, a.getenv)
		if err != nil {
			return usagef(f.name, "--shard %q: %v", o.shard.v, err)
		}
		if n > 1 && o.hub == "" {
			return usagef(f.name, "--shard %d/%d needs --hub (or FLEETSIM_HUB, --hub-file): the shards of a fleet play against one hub that runs elsewhere, and without it each would run a hub of its own", i, n)
		}
		opts.Shard, opts.Shards = i, n
	}
	run, err := o.coord.resolve(a.getenv)
	if err != nil {
		return usagef(f.name, "%v", err)
	}
	opts.Run = run
	sc, err := a.loadScenario(f.name, args[0])
	if err != nil {
		return err
	}
	if s, ok := sc.(*scenarios.Scenario); ok && o.rollout != nil {
		s.Rehearse(o.rolloutAt, o.rollout)
	}
	if opts.Plan, err = a.planFleet(f.name, sc, opts); err != nil {
		return err
	}

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	var view *liveView
	logDst := a.stderr
	if !o.noLive {
		view = newLiveView(a.stdout, viewOptions{
			Terminal: a.stdoutTTY,
			Color:    a.stdoutTTY && a.getenv("NO_COLOR") == "",
			Width:    terminalWidth(a.getenv, a.stdout),
			WidthNow: func() int { return ttyWidth(a.stdout) },
			Title:    sc.Name(),
		})
		opts.Progress = view.Update
		if a.stdoutTTY && a.stderrTTY {
			logDst = view.LogWriter(a.stderr)
		}
	}
	logTTY := a.stderrTTY
	if o.logFile != "" {
		lf, err := os.OpenFile(o.logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("log file: %w", err)
		}
		defer lf.Close()
		logDst, logTTY = lf, false
	}
	log, err := newLogger(logDst, logTTY, f.level)
	if err != nil {
		return &usageError{cmd: f.name, msg: err.Error()}
	}
	opts.Logger = log
	if o.console != "" {
		// The login URL is a secret: it goes to the terminal (above the live
		// view when there is one), never to the log.
		urlDst := a.stderr
		if view != nil && a.stdoutTTY && a.stderrTTY {
			urlDst = view.LogWriter(a.stderr)
		}
		opts.ConsoleReady = func(u string) {
			fmt.Fprintf(urlDst, "web console: %s (for as long as the run lasts)\n", u)
		}
	}

	// The ticker that redraws the view is owned here and waited for.
	var wg sync.WaitGroup
	done := make(chan struct{})
	if view != nil && a.stdoutTTY {
		wg.Add(1)
		go func() {
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
	play := a.play
	if play == nil {
		play = playScenario
	}
	rep, runErr := play(ctx, sc, opts)
	close(done)
	wg.Wait()
	if view != nil {
		view.Close()
		if a.stdoutTTY {
			fmt.Fprintln(a.stdout)
		}
	}
	interrupted := ctx.Err() != nil && errors.Is(runErr, context.Canceled)
	if rep != nil {
		a.stdout.Write(renderText(rep))
		if o.report != "" {
			files, err := writeReports(o.report, rep)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Report written to %s\n", strings.Join(files, ", "))
		}
	}
	if interrupted {
		msg := "run " + sc.Name() + ": interrupted; the report above judges what had happened by then"
		if rep == nil {
			msg = "run " + sc.Name() + ": interrupted before the run began; no report"
		} else if o.report == "" {
			msg = "run " + sc.Name() + ": interrupted; the report above judges what had happened by then (--report DIR writes it to files)"
		}
		return &silentError{code: exitInterrupted, msg: msg}
	}
	if runErr != nil {
		return fmt.Errorf("run %s: %w", sc.Name(), runErr)
	}
	if !rep.Passed {
		failed := 0
		for _, e := range rep.Expectations {
			if !e.Passed {
				failed++
			}
		}
		return &silentError{code: exitFail, msg: fmt.Sprintf("run %s: %d of %d expectations failed", sc.Name(), failed, len(rep.Expectations))}
	}
	return nil
}

// parseShard parses "i/n" with 1 <= i <= n.
func parseShard(s string) (i, n int, err error) {
	a, b, ok := strings.Cut(s, "/")
	if !ok {
		return 0, 0, errors.New("want I/N, e.g. 1/4")
	}
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil {
		return 0, 0, errors.New("want I/N with whole numbers, e.g. 1/4")
	}
	if n < 1 || i < 1 || i > n {
		return 0, 0, errors.New("want 1 <= I <= N")
	}
	return i, n, nil
}

// resolveShard turns a --shard value into shard i of n: "I/N", or "auto"
// from the environment of a Kubernetes Indexed Job (JOB_COMPLETION_INDEX,
// 0-based, and FLEETSIM_SHARDS). An explicit I/N that disagrees with that
// environment is refused: every pod of the Job would run the same shard.
func resolveShard(spec string, getenv func(string) string) (i, n int, err error) {
	idxEnv, countEnv := getenv(envCompletionIndex), getenv(envShards)
	count := 0
	if countEnv != "" {
		if count, err = strconv.Atoi(countEnv); err != nil || count < 1 {
			return 0, 0, fmt.Errorf("%s=%q: want a whole number of shards, at least 1", envShards, countEnv)
		}
	}
	index := -1
	if idxEnv != "" {
		if index, err = strconv.Atoi(idxEnv); err != nil || index < 0 {
			return 0, 0, fmt.Errorf("%s=%q: want a whole number, 0 or more", envCompletionIndex, idxEnv)
		}
	}
	if spec == "auto" {
		switch {
		case index < 0:
			return 0, 0, fmt.Errorf("%s is not set (a Kubernetes Indexed Job sets it in each pod; elsewhere use --shard I/N)", envCompletionIndex)
		case count == 0:
			return 0, 0, fmt.Errorf("%s is not set: set it to the Job's completions", envShards)
		case index >= count:
			return 0, 0, fmt.Errorf("%s=%d is not below %s=%d: set %s to the Job's completions", envCompletionIndex, index, envShards, count, envShards)
		}
		return index + 1, count, nil
	}
	if i, n, err = parseShard(spec); err != nil {
		return 0, 0, err
	}
	if index >= 0 && index != i-1 {
		return 0, 0, fmt.Errorf("this pod has %s=%d, so every pod of its Job would run shard %d: use --shard auto", envCompletionIndex, index, i)
	}
	if count > 0 && count != n {
		return 0, 0, fmt.Errorf("%s=%d disagrees with %d shards", envShards, count, n)
	}
	return i, n, nil
}

// terminalWidth is the width of the terminal w is, else $COLUMNS (shells
// seldom export it), else 100.
func terminalWidth(getenv func(string) string, w io.Writer) int {
	if n := ttyWidth(w); n > 0 {
		return n
	}
	if n, err := strconv.Atoi(getenv("COLUMNS")); err == nil && n >= 20 {
		return n
	}
	return 100
}

// writeReports writes report.json, junit.xml and report.html to dir, in
// that order (report.json first: an interrupted run needs it most), and
// returns the paths written.
func writeReports(dir string, rep *runner.Report) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("report directory: %w", err)
	}
	var files []string
	for _, f := range []struct {
		name   string
		render func(*runner.Report) ([]byte, error)
	}{{"report.json", renderJSON}, {"junit.xml", renderJUnit}, {"report.html", renderHTML}} {
		b, err := f.render(rep)
		if err != nil {
			return files, err
		}
		path := filepath.Join(dir, f.name)
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return files, fmt.Errorf("write report: %w", err)
		}
		files = append(files, path)
	}
	return files, nil
}
