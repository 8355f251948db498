// Package sysmem reads the machine's and the process's memory from /proc
// (and the memory limit of the process's cgroup).
package sysmem

import (
	"bufio"
	"os"
	"strconv"
	"strings"
)

// Total returns the machine's memory in bytes (MemTotal), or 0 where that
// is not known (not Linux, or unreadable).
func Total() int64 { return kBField("/proc/meminfo", "MemTotal") }

// RSS returns the process's resident memory in bytes (VmRSS), or 0.
func RSS() int64 { return kBField("/proc/self/status", "VmRSS") }

// PeakRSS returns the process's peak resident memory in bytes (VmHWM), or 0.
func PeakRSS() int64 { return kBField("/proc/self/status", "VmHWM") }

// kBField reads a "Name:   123 kB" line of a /proc file, in bytes; 0 when
// the file or the field is missing or malformed.
func kBField(path, name string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), name+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return 0
			}
			return kb * 1024
		}
	}
	return 0
}
