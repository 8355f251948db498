//go:build unix

package main

import (
	"os"
	"strings"
	"syscall"
)

// keepStacks re-executes a run or serve with GODEBUG=gcshrinkstackoff=1.
//
// A fleet is mostly idle goroutines (eleven per simulated device: nine of
// paho's, two of mochi's). Every GC halves the stack of each idle one, and
// the next job makes each grow back, copying and re-adjusting every frame:
// for a large fleet that churn costs much of a job's CPU while peak RSS is
// no lower (see docs/performance.md). A GODEBUG that already names gcshrinkstackoff (=0 to keep
// shrinking) is left alone, as are the client commands. If the exec fails the
// command runs unchanged. The re-executed process carries stacksMarker: once
// it has read its scenario, its memory plan may turn shrinking back on for
// a fleet that would not fit otherwise (planFleet).
func keepStacks(args []string) {
	if len(args) == 0 || (args[0] != "run" && args[0] != "serve") {
		return
	}
	godebug := os.Getenv("GODEBUG")
	if strings.Contains(godebug, "gcshrinkstackoff=") {
		return
	}
	exe, err := os.Executable()
	if err != nil {
		return
	}
	_ = syscall.Exec(exe, os.Args, stacksEnv(os.Environ(), false)) // returns only on failure
}

// execSelf re-executes the command with env; it returns only on failure.
func execSelf(env []string) {
	exe, err := os.Executable()
	if err != nil {
		return
	}
	_ = syscall.Exec(exe, os.Args, env)
}
