//go:build unix

package main

import (
	"bytes"
	"strings"
	"syscall"
	"testing"

	"github.com/rs/zerolog"
)

func TestCheckDescriptorLimit(t *testing.T) {
	tests := []struct {
		name      string
		soft      uint64
		hard      uint64
		setFails  bool
		devices   int
		wantSoft  uint64
		wantWarns []string
	}{
		{name: "raised to the hard limit, enough", soft: 1024, hard: 1 << 20, devices: 10000, wantSoft: 1 << 20},
		{name: "already at the hard limit, enough", soft: 4096, hard: 4096, devices: 100, wantSoft: 4096},
		{name: "raised, still short", soft: 256, hard: 4096, devices: 10000, wantSoft: 4096,
			wantWarns: []string{"below one descriptor per registered device"}},
		{name: "cannot raise, short", soft: 200, hard: 4096, setFails: true, devices: 0, wantSoft: 200,
			wantWarns: []string{"cannot raise", "below one descriptor per registered device"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			lim := syscall.Rlimit{Cur: tt.soft, Max: tt.hard}
			get := func(res int, r *syscall.Rlimit) error {
				if res != syscall.RLIMIT_NOFILE {
					t.Fatalf("resource %d", res)
				}
				*r = lim
				return nil
			}
			set := func(res int, r *syscall.Rlimit) error {
				if tt.setFails {
					return syscall.EPERM
				}
				if r.Cur > r.Max || r.Max > lim.Max {
					return syscall.EINVAL
				}
				lim = *r
				return nil
			}
			var logs bytes.Buffer
			checkDescriptorLimit(zerolog.New(&logs), tt.devices, get, set)
			if lim.Cur != tt.wantSoft {
				t.Errorf("soft limit %d, want %d", lim.Cur, tt.wantSoft)
			}
			lines := strings.Count(logs.String(), "\n")
			if lines != len(tt.wantWarns) {
				t.Errorf("%d log lines, want %d:\n%s", lines, len(tt.wantWarns), logs.String())
			}
			for _, w := range tt.wantWarns {
				if !strings.Contains(logs.String(), w) {
					t.Errorf("no warning %q in:\n%s", w, logs.String())
				}
			}
		})
	}
}
