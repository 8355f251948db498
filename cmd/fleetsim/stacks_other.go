//go:build !unix

package main

// keepStacks is a no-op where the process cannot re-execute itself; set
// GODEBUG=gcshrinkstackoff=1 by hand for large fleets.
func keepStacks([]string) {}

// execSelf cannot re-execute the command here.
var execSelf func(env []string)
