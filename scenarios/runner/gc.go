package runner

import "github.com/fleetsim/fleetsim/internal/sysmem"

// tuneGC prepares the runtime for a fleet of devices (sysmem.TuneGC); small
// fleets keep the defaults. It returns a function that restores the previous
// settings.
func tuneGC(devices int) (restore func()) {
	if devices < 5000 {
		return func() {}
	}
	return sysmem.TuneGC()
}
