package main

import (
	"context"
	"fmt"
	"runtime"
)

func versionCommand() *command {
	return &command{
		name:     "version",
		summary:  "print the fleetsim version",
		help:     "Prints the fleetsim version, the Go version it was built with, and the platform.",
		examples: []string{"fleetsim version"},
		setup: func(f *flagSet) action {
			return func(ctx context.Context, a *app, args []string) error {
				if len(args) > 0 {
					return usagef(f.name, "takes no arguments, got %q", args[0])
				}
				fmt.Fprintf(a.stdout, "fleetsim %s (%s, %s/%s)\n", fleetsimVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
				return nil
			}
		},
	}
}
