//go:build !unix

package main

// keepStacks is a no-op where the process cannot re-execute itself; set
// GODEBUG=gcshrinkstackoff=1 by hand for large fleets.
func keepStacks([]string) {}
