//go:build unix

package main

import "syscall"

// openFilesLimit is the process's descriptor limit (the soft one, which the
// Go runtime raised to the hard one at start).
func openFilesLimit() (uint64, bool) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, false
	}
	return l.Cur, true
}
