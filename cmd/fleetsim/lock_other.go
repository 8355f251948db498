//go:build !unix

package main

// lockDataDir does not lock on this platform: two fleetsim processes on
// one data directory are not detected.
func lockDataDir(string) (unlock func(), err error) { return func() {}, nil }

// lockStateFile does not lock on this platform: two rollout engines on one
// state file are not detected.
func lockStateFile(string) (unlock func(), err error) { return func() {}, nil }
