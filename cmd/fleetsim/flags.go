package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"gopkg.in/yaml.v3"
)

// flagSet is one command's flags on a standard library FlagSet, plus what the
// FlagSet does not know: short aliases, flags that only come from the command
// line, and the precedence flag > environment > config file > default.
type flagSet struct {
	name    string
	fs      *flag.FlagSet
	aliases map[string]string // alias → canonical name
	local   map[string]bool   // canonical names never read from env or config
	config  string
	level   string
}

// envPrefix starts every environment variable fleetsim reads.
const envPrefix = "FLEETSIM_"

// newFlagSet makes a command's flags with the ones every command has:
// --config and --log-level.
func newFlagSet(name string) *flagSet {
	f := &flagSet{
		name:    name,
		fs:      flag.NewFlagSet("fleetsim "+name, flag.ContinueOnError),
		aliases: map[string]string{},
		local:   map[string]bool{"config": true},
	}
	f.fs.SetOutput(io.Discard)
	f.fs.Usage = func() {}
	f.fs.StringVar(&f.config, "config", "", "config `FILE`, YAML or JSON (env FLEETSIM_CONFIG)")
	f.fs.StringVar(&f.level, "log-level", "info", "log `LEVEL`: debug, info, warn, error or disabled")
	return f
}

// alias makes -short another name for the flag --name.
func (f *flagSet) alias(short, name string) {
	fl := f.fs.Lookup(name)
	f.fs.Var(fl.Value, short, "")
	f.aliases[short] = name
}

// cmdLineOnly marks flags that are never read from the environment or a config file.
func (f *flagSet) cmdLineOnly(names ...string) {
	for _, n := range names {
		f.local[n] = true
	}
}

func (f *flagSet) canonical(name string) string {
	if c, ok := f.aliases[name]; ok {
		return c
	}
	return name
}

// envName is the environment variable for a flag: FLEETSIM_LOG_LEVEL for log-level.
func envName(flagName string) string {
	return envPrefix + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parse parses flags anywhere among the arguments (as in "run quickstart
// --seed 7"); "--" ends the flags. It returns the positional arguments.
func (f *flagSet) parse(args []string) ([]string, error) {
	var pos []string
	rest := args
	for {
		if err := f.fs.Parse(rest); err != nil {
			return nil, flagError(err)
		}
		rem := f.fs.Args()
		if len(rem) == 0 {
			return pos, nil
		}
		if n := len(rest) - len(rem); n > 0 && rest[n-1] == "--" {
			return append(pos, rem...), nil
		}
		pos = append(pos, rem[0])
		rest = rem[1:]
	}
}

// flagError rewords the flag package's errors.
func flagError(err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		return fmt.Errorf("unknown flag -%s", strings.TrimLeft(name, "-"))
	}
	if err == flag.ErrHelp {
		return err
	}
	return fmt.Errorf("%s", strings.Replace(msg, " -", " --", 1))
}

// applyDefaults fills every flag not given on the command line from its
// environment variable, else from the config file, leaving the default
// otherwise. section is the top-level command ("jobs" for "jobs create");
// known lists each top-level command's flag names, to check the config file.
func (f *flagSet) applyDefaults(getenv func(string) string, section string, known map[string]map[string]bool) error {
	set := map[string]bool{}
	f.fs.Visit(func(fl *flag.Flag) { set[f.canonical(fl.Name)] = true })
	path := f.config
	if !set["config"] {
		path = getenv(envPrefix + "CONFIG")
	}
	var cfg map[string]string
	if path != "" {
		var err error
		if cfg, err = loadConfig(path, section, known); err != nil {
			return &usageError{cmd: f.name, msg: err.Error()}
		}
	}
	var errs []string
	f.fs.VisitAll(func(fl *flag.Flag) {
		name := fl.Name
		if _, alias := f.aliases[name]; alias || set[name] || f.local[name] {
			return
		}
		if v := getenv(envName(name)); v != "" {
			if err := fl.Value.Set(v); err != nil {
				errs = append(errs, fmt.Sprintf("%s=%q: %v", envName(name), v, err))
			}
			return
		}
		if v, ok := cfg[name]; ok {
			if err := fl.Value.Set(v); err != nil {
				errs = append(errs, fmt.Sprintf("config file %s: %s: %q: %v", path, name, v, err))
			}
		}
	})
	if len(errs) > 0 {
		return &usageError{cmd: f.name, msg: strings.Join(errs, "; ")}
	}
	return nil
}

// loadConfig reads a YAML or JSON config file and returns the settings for
// section: top-level flag keys, overridden by the section's keys. Keys that
// no command knows are errors, so typos do not go unnoticed.
func loadConfig(path, section string, known map[string]map[string]bool) (map[string]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	var doc map[string]any
	if strings.EqualFold(filepath.Ext(path), ".json") {
		d := json.NewDecoder(bytes.NewReader(b))
		d.UseNumber()
		err = d.Decode(&doc)
	} else {
		err = yaml.Unmarshal(b, &doc)
	}
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	anyFlag := map[string]bool{}
	for _, names := range known {
		for n := range names {
			anyFlag[n] = true
		}
	}
	out := map[string]string{}
	var sectionVals map[string]any
	var problems []string
	for _, k := range sortedKeys(doc) {
		v := doc[k]
		if names, isSection := known[k]; isSection {
			m, ok := v.(map[string]any)
			if !ok {
				problems = append(problems, fmt.Sprintf("%s: want a map of settings for 'fleetsim %s'", k, k))
				continue
			}
			for _, sk := range sortedKeys(m) {
				if !names[sk] {
					problems = append(problems, fmt.Sprintf("%s.%s: 'fleetsim %s' has no flag --%s", k, sk, k, sk))
				}
			}
			if k == section {
				sectionVals = m
			}
			continue
		}
		if !anyFlag[k] {
			problems = append(problems, fmt.Sprintf("%s: no command has a flag --%s", k, k))
			continue
		}
		s, err := scalar(v)
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s: %v", k, err))
			continue
		}
		out[k] = s
	}
	for _, k := range sortedKeys(sectionVals) {
		s, err := scalar(sectionVals[k])
		if err != nil {
			problems = append(problems, fmt.Sprintf("%s.%s: %v", section, k, err))
			continue
		}
		out[k] = s
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("config file %s: %s", path, strings.Join(problems, "; "))
	}
	return out, nil
}

// scalar turns a decoded config value into the text a flag parses.
func scalar(v any) (string, error) {
	switch v := v.(type) {
	case string:
		return v, nil
	case bool, int, int64, uint64, float64, json.Number:
		return fmt.Sprint(v), nil
	case nil:
		return "", nil
	}
	return "", fmt.Errorf("want a single value, not %T", v)
}

// printDefaults lists the flags with their defaults and environment variables.
func (f *flagSet) printDefaults(w io.Writer) {
	short := map[string]string{}
	for s, n := range f.aliases {
		short[n] = s
	}
	var flags []*flag.Flag
	f.fs.VisitAll(func(fl *flag.Flag) {
		if _, alias := f.aliases[fl.Name]; !alias {
			flags = append(flags, fl)
		}
	})
	slices.SortStableFunc(flags, func(a, b *flag.Flag) int {
		// The common flags go last.
		ca, cb := a.Name == "config" || a.Name == "log-level", b.Name == "config" || b.Name == "log-level"
		if ca != cb {
			if ca {
				return 1
			}
			return -1
		}
		return 0
	})
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, fl := range flags {
		arg, usage := flag.UnquoteUsage(fl)
		name := "--" + fl.Name
		if s, ok := short[fl.Name]; ok {
			name = "-" + s + ", " + name
		}
		if arg != "" {
			name += " " + arg
		}
		var notes []string
		if fl.DefValue != "" && fl.DefValue != "false" && fl.DefValue != "0" && fl.DefValue != "0s" && !strings.Contains(usage, "(default") {
			notes = append(notes, "default "+fl.DefValue)
		}
		if !f.local[fl.Name] {
			notes = append(notes, "env "+envName(fl.Name))
		}
		if len(notes) > 0 {
			usage += " (" + strings.Join(notes, "; ") + ")"
		}
		fmt.Fprintf(tw, "  %s\t%s\n", name, usage)
	}
	tw.Flush()
}
