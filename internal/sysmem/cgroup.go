package sysmem

import (
	"os"
	"strconv"
	"strings"
)

// Available returns the memory this process may use, in bytes: the
// machine's (Total), or its cgroup's memory limit (a container's or a
// Kubernetes pod's) when that is lower; 0 when neither is known.
func Available() int64 {
	return available(Total(), cgroupLimit("/proc/self/cgroup", "/sys/fs/cgroup"))
}

func available(total, cgroup int64) int64 {
	if cgroup > 0 && (total == 0 || cgroup < total) {
		return cgroup
	}
	return total
}

// cgroupLimit reads the cgroup v2 memory.max of the process's cgroup (as
// procCgroup names it, under root), or of the root of a namespaced mount;
// 0 when there is none, it is "max", or it cannot be read.
func cgroupLimit(procCgroup, root string) int64 {
	var dirs []string
	if b, err := os.ReadFile(procCgroup); err == nil {
		for line := range strings.SplitSeq(string(b), "\n") {
			if rest, ok := strings.CutPrefix(line, "0::"); ok {
				dirs = append(dirs, root+strings.TrimSuffix(rest, "/"))
			}
		}
	}
	dirs = append(dirs, root)
	for _, d := range dirs {
		b, err := os.ReadFile(d + "/memory.max")
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(b))
		if v == "max" {
			return 0
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n <= 0 {
			return 0
		}
		return n
	}
	return 0
}
