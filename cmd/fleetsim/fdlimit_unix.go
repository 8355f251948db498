//go:build unix

package main

import (
	"syscall"

	"github.com/rs/zerolog"
)

// descriptorHeadroom is what a served hub needs besides one descriptor per
// device connection: listeners, stores, logs and REST clients.
const descriptorHeadroom = 512

// raiseDescriptorLimit raises the soft RLIMIT_NOFILE to the hard one and
// warns when even that is below what devices connections plus the headroom
// need: past it, new connections wait in the kernel's backlog until
// descriptors are free again.
func raiseDescriptorLimit(log zerolog.Logger, devices int) {
	checkDescriptorLimit(log, devices, syscall.Getrlimit, syscall.Setrlimit)
}

// checkDescriptorLimit is raiseDescriptorLimit with the system calls passed in.
func checkDescriptorLimit(log zerolog.Logger, devices int,
	get, set func(resource int, rlim *syscall.Rlimit) error) {
	var lim syscall.Rlimit
	if err := get(syscall.RLIMIT_NOFILE, &lim); err != nil {
		log.Warn().Err(err).Msg("cannot read the open-file limit (RLIMIT_NOFILE)")
		return
	}
	if lim.Cur < lim.Max {
		raised := lim
		raised.Cur = raised.Max
		if err := set(syscall.RLIMIT_NOFILE, &raised); err != nil {
			log.Warn().Err(err).Uint64("soft", lim.Cur).Uint64("hard", lim.Max).Msg("cannot raise the open-file limit (RLIMIT_NOFILE)")
		} else {
			lim = raised
		}
	}
	need := uint64(devices) + descriptorHeadroom
	if lim.Cur < need {
		log.Warn().Uint64("limit", lim.Cur).Uint64("needed", need).Int("devices", devices).
			Msg("the open-file limit (ulimit -n) is below one descriptor per registered device plus headroom; raise it, or devices past it wait to connect")
	}
}
