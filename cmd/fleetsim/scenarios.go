package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
)

func scenariosCommand() *command {
	list := func(f *flagSet) action {
		return func(ctx context.Context, a *app, args []string) error {
			if len(args) > 0 {
				return usagef(f.name, "unexpected argument %q (to print a scenario: fleetsim scenarios show NAME)", args[0])
			}
			tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tDESCRIPTION")
			for _, name := range scenarioNames() {
				sc, err := openScenario(name)
				if err != nil {
					return fmt.Errorf("scenario %s: %w", name, err)
				}
				fmt.Fprintf(tw, "%s\t%s\n", name, firstLine(sc.Description()))
			}
			return tw.Flush()
		}
	}
	return &command{
		name:    "scenarios",
		summary: "list the embedded scenarios, or show one",
		help: `Lists the scenarios built into fleetsim with their descriptions. 'fleetsim
scenarios show NAME' prints one scenario file, a starting point for your own.`,
		examples: []string{"fleetsim scenarios", "fleetsim scenarios show quickstart > my.yaml"},
		setup:    list,
		subs: []*command{
			{
				name: "list", summary: "list the embedded scenarios",
				help:     "Lists the scenarios built into fleetsim with their descriptions.",
				examples: []string{"fleetsim scenarios list"},
				setup:    list,
			},
			{
				name: "show", args: "NAME", summary: "print a scenario file",
				help:     "Prints an embedded scenario (or a scenario file, checked) as YAML.",
				examples: []string{"fleetsim scenarios show quickstart", "fleetsim scenarios show ./my.yaml"},
				setup: func(f *flagSet) action {
					return func(ctx context.Context, a *app, args []string) error {
						if len(args) != 1 {
							return usagef(f.name, "want one scenario NAME")
						}
						sc, err := a.loadScenario(f.name, args[0])
						if err != nil {
							return err
						}
						_, err = a.stdout.Write(sc.Source())
						return err
					}
				},
			},
		},
	}
}

// loadScenario opens a scenario for command cmd. A malformed file's problems
// are printed one per line (file:line:col: message) before the final line.
func (a *app) loadScenario(cmd, nameOrPath string) (scenario, error) {
	open := a.open
	if open == nil {
		open = openScenario
	}
	sc, err := open(nameOrPath)
	if err == nil {
		return sc, nil
	}
	if lines, ok := scenarioProblems(err); ok {
		for _, l := range lines {
			fmt.Fprintln(a.stderr, l)
		}
		n := len(lines)
		s := "s"
		if n == 1 {
			s = ""
		}
		return nil, &silentError{code: exitUsage, msg: fmt.Sprintf("%s: scenario %s is invalid (%d problem%s)", cmd, nameOrPath, n, s)}
	}
	if isUnknownScenario(err) {
		names := scenarioNames()
		return nil, usagef(cmd, "unknown scenario %q: not a file, and the embedded ones are %s", nameOrPath, strings.Join(names, ", "))
	}
	return nil, fmt.Errorf("%s: %w", cmd, err)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
