package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
)

// command is one fleetsim command or command group.
type command struct {
	name     string // "create"; the path ("jobs create") is built by the tree
	args     string // argument synopsis, e.g. "SCENARIO"
	summary  string // one line for lists
	help     string // paragraphs for --help
	examples []string
	subs     []*command
	// setup defines the command's flags on f and returns what runs after
	// parsing. Nil for groups, which only dispatch to subs.
	setup func(f *flagSet) action
}

// action runs a command with its positional arguments.
type action func(ctx context.Context, a *app, args []string) error

// commands is the command tree.
func commands() []*command {
	return []*command{
		runCommand(),
		serveCommand(),
		certsCommand(),
		jobsCommand(),
		devicesCommand(),
		modulesCommand(),
		twinCommand(),
		invokeCommand(),
		monitorCommand(),
		c2dCommand(),
		queryCommand(),
		rolloutCommand(),
		scenariosCommand(),
		reportCommand(),
		versionCommand(),
		completionCommand(),
	}
}

// dispatch finds the command for args and runs it.
func (a *app) dispatch(ctx context.Context, args []string) error {
	cmds := commands()
	if len(args) == 0 {
		a.topUsage(a.stderr, cmds)
		return &silentError{code: exitUsage, msg: "no command given (see 'fleetsim --help')"}
	}
	switch args[0] {
	case "-h", "-help", "--help", "help":
		if args[0] == "help" && len(args) > 1 {
			return a.dispatch(ctx, append(args[1:], "--help"))
		}
		a.topUsage(a.stdout, cmds)
		return nil
	case "-v", "-version", "--version":
		return a.dispatch(ctx, []string{"version"})
	}
	var path []string
	list := cmds
	for {
		c := find(list, args[0])
		if c == nil {
			if len(path) == 0 {
				return usagef("", "unknown command %q", args[0])
			}
			return usagef(strings.Join(path, " "), "unknown command %q", args[0])
		}
		path = append(path, c.name)
		args = args[1:]
		if c.setup == nil || (len(c.subs) > 0 && len(args) > 0 && find(c.subs, args[0]) != nil) {
			if len(c.subs) == 0 {
				return usagef(strings.Join(path, " "), "command has nothing to run")
			}
			if len(args) == 0 {
				var names []string
				for _, s := range c.subs {
					names = append(names, s.name)
				}
				return usagef(strings.Join(path, " "), "missing subcommand: %s", strings.Join(names, ", "))
			}
			if isHelp(args[0]) {
				a.groupUsage(a.stdout, path, c)
				return nil
			}
			list = c.subs
			continue
		}
		return a.runCommand(ctx, path, c, args)
	}
}

func isHelp(s string) bool {
	return s == "-h" || s == "-help" || s == "--help" || s == "help"
}

func find(list []*command, name string) *command {
	for _, c := range list {
		if c.name == name {
			return c
		}
	}
	return nil
}

// runCommand parses the command's flags with the precedence flag > env >
// config file > default, then runs it.
func (a *app) runCommand(ctx context.Context, path []string, c *command, args []string) error {
	name := strings.Join(path, " ")
	f := newFlagSet(name)
	act := c.setup(f)
	rest, err := f.parse(args)
	if errors.Is(err, flag.ErrHelp) {
		a.commandUsage(a.stdout, path, c, f)
		return nil
	}
	if err != nil {
		return &usageError{cmd: name, msg: err.Error()}
	}
	if err := f.applyDefaults(a.getenv, path[0], allFlagNames()); err != nil {
		return err
	}
	return act(ctx, a, rest)
}

// allFlagNames maps each top-level command name to the flag names its tree
// accepts, to check the keys of a config file.
func allFlagNames() map[string]map[string]bool {
	out := map[string]map[string]bool{}
	var walk func(top string, c *command)
	walk = func(top string, c *command) {
		if c.setup != nil {
			f := newFlagSet(c.name)
			c.setup(f)
			f.fs.VisitAll(func(fl *flag.Flag) {
				if out[top] == nil {
					out[top] = map[string]bool{}
				}
				out[top][f.canonical(fl.Name)] = true
			})
		}
		for _, s := range c.subs {
			walk(top, s)
		}
	}
	for _, c := range commands() {
		walk(c.name, c)
	}
	return out
}

func (a *app) topUsage(w io.Writer, cmds []*command) {
	fmt.Fprintf(w, "fleetsim stands in for Azure IoT Hub's device-management side: an MQTT broker,\n")
	fmt.Fprintf(w, "the service REST API, Jobs v2 and simulated fleets driven by scenario files.\n\n")
	fmt.Fprintf(w, "Usage:\n  fleetsim COMMAND [flags] [arguments]\n\nCommands:\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, c := range cmds {
		fmt.Fprintf(tw, "  %s\t%s\n", c.name, c.summary)
	}
	tw.Flush()
	fmt.Fprintf(w, "\nExamples:\n")
	for _, e := range []string{
		"fleetsim run quickstart",
		"fleetsim run ./my-scenario.yaml --seed 7 --report out/",
		"fleetsim serve --data ./fleetsim-data",
		"fleetsim jobs list",
	} {
		fmt.Fprintf(w, "  %s\n", e)
	}
	fmt.Fprintf(w, "\nRun 'fleetsim COMMAND --help' for a command's flags and examples.\n")
	fmt.Fprintf(w, "\n%s", strings.ReplaceAll(precedenceHelp, "SECTION", "serve"))
	fmt.Fprintf(w, "\nExit codes: 0 success, 1 failure (including failed expectations), 2 usage error.\n")
}

func (a *app) groupUsage(w io.Writer, path []string, c *command) {
	name := strings.Join(path, " ")
	fmt.Fprintf(w, "%s\n\nUsage:\n  fleetsim %s COMMAND [flags] [arguments]\n\nCommands:\n", wrap(c.help, 78), name)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, s := range c.subs {
		fmt.Fprintf(tw, "  %s %s\t%s\n", s.name, s.args, s.summary)
	}
	tw.Flush()
	if len(c.examples) > 0 {
		fmt.Fprintf(w, "\nExamples:\n")
		for _, e := range c.examples {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	fmt.Fprintf(w, "\nRun 'fleetsim %s COMMAND --help' for a command's flags.\n", name)
}

func (a *app) commandUsage(w io.Writer, path []string, c *command, f *flagSet) {
	name := strings.Join(path, " ")
	synopsis := "fleetsim " + name + " [flags]"
	if c.args != "" {
		synopsis += " " + c.args
	}
	fmt.Fprintf(w, "Usage:\n  %s\n\n%s\n", synopsis, wrap(c.help, 78))
	if len(c.subs) > 0 {
		fmt.Fprintf(w, "\nCommands:\n")
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		for _, s := range c.subs {
			fmt.Fprintf(tw, "  %s %s %s\t%s\n", name, s.name, s.args, s.summary)
		}
		tw.Flush()
	}
	fmt.Fprintf(w, "\nFlags:\n")
	f.printDefaults(w)
	if len(c.examples) > 0 {
		fmt.Fprintf(w, "\nExamples:\n")
		for _, e := range c.examples {
			fmt.Fprintf(w, "  %s\n", e)
		}
	}
	fmt.Fprintf(w, "\n%s", strings.ReplaceAll(precedenceHelp, "SECTION", path[0]))
}

// precedenceHelp documents where settings come from, for every --help.
const precedenceHelp = `Settings, highest precedence first:
  1. flags on the command line
  2. environment variables: FLEETSIM_ and the flag name in upper case with
     '-' as '_' (--log-level is FLEETSIM_LOG_LEVEL)
  3. the config file named by --config or FLEETSIM_CONFIG, YAML or JSON:
     top-level keys are flag names and apply to every command that has the
     flag; a section named after a command applies to it alone and wins
     over the top level:
         log-level: debug
         SECTION:
           data: ./fleetsim-data
  4. the defaults shown with each flag
`

// wrap folds paragraphs (separated by blank lines) at width columns;
// lines that start with spaces are kept as they are.
func wrap(text string, width int) string {
	var out []string
	for _, para := range strings.Split(strings.TrimSpace(text), "\n\n") {
		if strings.HasPrefix(para, " ") {
			out = append(out, para)
			continue
		}
		var lines []string
		line := ""
		for _, w := range strings.Fields(para) {
			if line != "" && len(line)+1+len(w) > width {
				lines = append(lines, line)
				line = ""
			}
			if line != "" {
				line += " "
			}
			line += w
		}
		lines = append(lines, line)
		out = append(out, strings.Join(lines, "\n"))
	}
	return strings.Join(out, "\n\n")
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
