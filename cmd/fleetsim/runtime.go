package main

import "github.com/fleetsim/fleetsim/internal/sysmem"

// tuneRuntime prepares the runtime for a fleet of devices: the GC settings
// of sysmem.TuneGC and the extra P of sysmem.TuneProcs. Small fleets keep
// the defaults. It returns a function that restores the previous settings.
// This and keepStacks (the GODEBUG re-exec) are the command's process-wide
// runtime settings; library packages never change them.
func tuneRuntime(devices int) (restore func()) {
	if devices < 5000 {
		return func() {}
	}
	gc, procs := sysmem.TuneGC(), sysmem.TuneProcs()
	return func() {
		procs()
		gc()
	}
}
