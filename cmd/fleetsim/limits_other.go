//go:build !unix

package main

// openFilesLimit is unknown where there are no rlimits.
func openFilesLimit() (uint64, bool) { return 0, false }
