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
scenarios show NAME' prints one scenario file, a starting point for your own;
'fleetsim scenarios validate FILE' checks one without running it; 'fleetsim
scenarios schema' prints the JSON Schema editors use to complete and check
scenario files.`,
		examples: []string{"fleetsim scenarios", "fleetsim scenarios show quickstart > my.yaml", "fleetsim scenarios validate my.yaml"},
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
			{
				name: "validate", args: "FILE", summary: "check a scenario file and count the devices each job selects",
				help: `Parses a scenario file (or an embedded scenario) strictly and validates it,
as 'fleetsim run' would, without running it: every problem is printed as
file:line:col: message. For a valid scenario it prints the fleet and, per job,
how many of the fleet's devices its query condition selects, evaluated on the
twins as the scenario registers them (ids and tags; conditions on reported
properties see none yet, since devices report once they run).

Exit codes: 0 valid, 2 invalid. A job that selects no devices is a warning.`,
				examples: []string{"fleetsim scenarios validate my.yaml", "fleetsim scenarios validate firmware-rollout"},
				setup: func(f *flagSet) action {
					return func(ctx context.Context, a *app, args []string) error {
						if len(args) != 1 {
							return usagef(f.name, "want one scenario FILE")
						}
						sc, err := a.loadScenario(f.name, args[0])
						if err != nil {
							return err
						}
						return a.validateScenario(sc)
					}
				},
			},
			{
				name: "schema", summary: "print the JSON Schema of scenario files",
				help: `Prints the JSON Schema (draft 2020-12) of scenario files, the same as
scenarios/scenario.schema.json in the source. Point your editor's YAML support
at it for completion and checks, e.g. with a first line
# yaml-language-server: $schema=scenario.schema.json`,
				examples: []string{"fleetsim scenarios schema > scenario.schema.json"},
				setup: func(f *flagSet) action {
					return func(ctx context.Context, a *app, args []string) error {
						if len(args) > 0 {
							return usagef(f.name, "takes no arguments, got %q", args[0])
						}
						_, err := a.stdout.Write(scenarioSchema())
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
		if looksLikePath(nameOrPath) {
			return nil, usagef(cmd, "scenario file %s does not exist", nameOrPath)
		}
		if near := nearest(nameOrPath, names); near != "" {
			return nil, usagef(cmd, "unknown scenario %q: did you mean %q? (the embedded ones are %s)", nameOrPath, near, strings.Join(names, ", "))
		}
		return nil, usagef(cmd, "unknown scenario %q: not a file, and the embedded ones are %s", nameOrPath, strings.Join(names, ", "))
	}
	return nil, fmt.Errorf("%s: %w", cmd, err)
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// validateScenario prints what 'scenarios validate' found in a valid scenario.
func (a *app) validateScenario(sc scenario) error {
	sum, err := summarize(sc)
	if err != nil {
		return err
	}
	counts := plural(len(sum.Jobs), "job")
	if len(sum.Rollouts) > 0 {
		counts += ", " + plural(len(sum.Rollouts), "rollout")
	}
	fmt.Fprintf(a.stdout, "scenario %s is valid: %s in %s, %s, %s\n", sc.Name(),
		plural(sum.Devices, "device"), plural(sum.Groups, "group"), counts, plural(sum.Expectations, "expectation"))
	for _, r := range sum.Rollouts {
		fmt.Fprintln(a.stdout, r)
	}
	if len(sum.Jobs) == 0 {
		return nil
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "JOB\tAT\tSELECTS\tCONDITION")
	for _, j := range sum.Jobs {
		fmt.Fprintf(tw, "%s\tT+%s\t%d\t%s\n", j.JobID, j.At, j.Selected, j.Condition)
	}
	tw.Flush()
	for _, j := range sum.Jobs {
		if j.Selected > 0 {
			continue
		}
		if j.Reported {
			fmt.Fprintf(a.stdout, "note: job %s selects no devices as registered; its condition reads reported properties, which devices set once they run\n", j.JobID)
			continue
		}
		fmt.Fprintf(a.stdout, "warning: job %s selects no devices: its query condition matches none of the fleet\n", j.JobID)
	}
	return nil
}

// looksLikePath says a scenario argument is meant as a file, not a name.
func looksLikePath(s string) bool {
	return strings.ContainsAny(s, "/\\") || strings.HasSuffix(s, ".yaml") || strings.HasSuffix(s, ".yml") || strings.HasSuffix(s, ".json")
}

// nearest returns the name closest to s by edit distance, if it is close
// enough to be a typo (at most a third of its length, and at least 1 edit
// allowed), else "".
func nearest(s string, names []string) string {
	best, bestD := "", 0
	for _, n := range names {
		d := editDistance(strings.ToLower(s), strings.ToLower(n))
		if best == "" || d < bestD {
			best, bestD = n, d
		}
	}
	if best == "" || bestD > max(1, len([]rune(best))/3) {
		return ""
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, in runes.
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
