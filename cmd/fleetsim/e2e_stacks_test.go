//go:build linux

package main

import (
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
)

// TestBinaryServeKeepsStacks checks that serve re-executes itself with
// gcshrinkstackoff=1 added to the GODEBUG it was given, under the same pid,
// and that an explicit setting is left alone.
func TestBinaryServeKeepsStacks(t *testing.T) {
	for _, tc := range []struct{ given, want string }{
		{"", "gcshrinkstackoff=1"},
		{"madvdontneed=1", "madvdontneed=1,gcshrinkstackoff=1"},
		{"gcshrinkstackoff=0", "gcshrinkstackoff=0"},
	} {
		t.Run(tc.given, func(t *testing.T) {
			t.Setenv("GODEBUG", tc.given)
			s := startServe(t, t.TempDir())
			raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/environ", s.cmd.Process.Pid))
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for kv := range strings.SplitSeq(string(raw), "\x00") {
				if v, ok := strings.CutPrefix(kv, "GODEBUG="); ok {
					got = append(got, v)
				}
			}
			if !slices.Equal(got, []string{tc.want}) {
				t.Errorf("GODEBUG of the served process = %q, want [%q]", got, tc.want)
			}
			s.kill(t)
		})
	}
}
