package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"strings"

	"github.com/fleetsim/fleetsim/internal/fleetmem"
	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// version is the fleetsim version; release builds set it with
// -ldflags "-X main.version=v1.2.3", otherwise it comes from the build info.
var version = ""

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
	// exitInterrupted is a run stopped by SIGINT or SIGTERM, 128 + SIGINT
	// as shells report it.
	exitInterrupted = 130
)

// app is one invocation of the command: its streams and environment.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	getenv         func(string) string
	// stdoutTTY says whether stdout is a terminal (live view, colours).
	stdoutTTY bool
	// stderrTTY says whether stderr is a terminal (console logs).
	stderrTTY bool
	// dialHub connects client commands to a hub (tests substitute a fake).
	dialHub func(connStr, baseURL string, tlsConf *tls.Config) (hubClient, error)
	// open and play load and run scenarios (tests substitute fakes).
	open func(nameOrPath string) (scenario, error)
	play func(ctx context.Context, sc scenario, o playOptions) (*runner.Report, error)
	// hub runs `fleetsim serve`'s hub (tests substitute a fake).
	hub func(ctx context.Context, o serveOptions) error
	// machine describes the machine to the memory model (nil: machineNow;
	// tests substitute one), and reexec re-executes the command with an
	// environment (nil: never, as in tests); see planFleet.
	machine func(getenv func(string) string) fleetmem.Machine
	reexec  func(env []string)
}

// run is the whole command: it parses args, runs the command and returns the
// exit code. Errors end as one line on stderr.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr, getenv: os.Getenv,
		stdoutTTY: isTerminal(stdout), stderrTTY: isTerminal(stderr), dialHub: newHubClient,
		open: openScenario, play: playScenario, hub: serveHub, reexec: execSelf}
	return a.main(ctx, args)
}

// isTerminal reports whether w is a character device such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

func (a *app) main(ctx context.Context, args []string) (code int) {
	defer func() {
		// A bug must not show users a stack trace: report it in one line.
		if p := recover(); p != nil {
			fmt.Fprintf(a.stderr, "fleetsim: internal error: %v (please report it)\n", p)
			code = exitFail
		}
	}()
	err := a.dispatch(ctx, args)
	return a.report(err)
}

// report prints err as one line and returns its exit code.
func (a *app) report(err error) int {
	if err == nil {
		return exitOK
	}
	var ue *usageError
	var se *silentError
	switch {
	case errors.As(err, &se):
		if se.msg != "" {
			fmt.Fprintf(a.stderr, "fleetsim: %s\n", se.msg)
		}
		return se.code
	case errors.As(err, &ue):
		fmt.Fprintf(a.stderr, "fleetsim: %s\n", oneLine(ue.Error()))
		return exitUsage
	}
	fmt.Fprintf(a.stderr, "fleetsim: %s\n", oneLine(err.Error()))
	return exitFail
}

// oneLine folds a message onto one line.
func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// usageError is a mistake in the command line, environment or config file;
// it exits with code 2.
type usageError struct {
	cmd string // "jobs create"; empty for the top level
	msg string
}

func (e *usageError) Error() string {
	help := "fleetsim --help"
	prefix := ""
	if e.cmd != "" {
		help = "fleetsim " + e.cmd + " --help"
		prefix = e.cmd + ": "
	}
	return fmt.Sprintf("%s%s (see '%s')", prefix, e.msg, help)
}

func usagef(cmd, format string, args ...any) error {
	return &usageError{cmd: cmd, msg: fmt.Sprintf(format, args...)}
}

// silentError ends the command with code and, when msg is set, one line.
// The command has already told the user the details (a report, problem lines).
type silentError struct {
	code int
	msg  string
}

func (e *silentError) Error() string { return e.msg }

// fleetsimVersion is the version to print.
func fleetsimVersion() string {
	if version != "" {
		return version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}
