package main

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

func versionCommand() *command {
	return &command{
		name:    "version",
		summary: "print the fleetsim version",
		help: `Prints the fleetsim version (the module version, or the one a release build
set), the VCS revision it was built from (with "modified" when the work tree
had changes) and its time, the Go version and the platform.`,
		examples: []string{"fleetsim version"},
		setup: func(f *flagSet) action {
			return func(ctx context.Context, a *app, args []string) error {
				if len(args) > 0 {
					return usagef(f.name, "takes no arguments, got %q", args[0])
				}
				bi, _ := debug.ReadBuildInfo()
				fmt.Fprintln(a.stdout, versionLine(fleetsimVersion(), bi))
				return nil
			}
		},
	}
}

// versionLine is what 'fleetsim version' prints: the version, then the VCS
// revision and time from the build info when the build recorded them.
func versionLine(version string, bi *debug.BuildInfo) string {
	parts := []string{}
	if bi != nil {
		var rev, at string
		modified := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.time":
				at = s.Value
			case "vcs.modified":
				modified = s.Value == "true"
			}
		}
		if rev != "" {
			r := "revision " + rev[:min(12, len(rev))]
			if modified {
				r += " (modified)"
			}
			if at != "" {
				r += " of " + at
			}
			parts = append(parts, r)
		}
	}
	parts = append(parts, runtime.Version(), runtime.GOOS+"/"+runtime.GOARCH)
	return fmt.Sprintf("fleetsim %s (%s)", version, strings.Join(parts, ", "))
}
