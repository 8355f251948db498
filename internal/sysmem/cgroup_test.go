package sysmem

import (
	"os"
	"path/filepath"
	"testing"
)

func TestCgroupLimit(t *testing.T) {
	for _, tc := range []struct {
		name  string
		proc  string            // /proc/self/cgroup
		files map[string]string // under the cgroup root
		want  int64
	}{
		{"pod limit", "0::/kubepods/pod1\n", map[string]string{"kubepods/pod1/memory.max": "4294967296\n"}, 4 << 30},
		{"no limit", "0::/user.slice\n", map[string]string{"user.slice/memory.max": "max\n"}, 0},
		{"namespaced mount", "0::/\n", map[string]string{"memory.max": "2147483648\n"}, 2 << 30},
		{"cgroup v1 only", "4:memory:/docker/abc\n", nil, 0},
		{"garbage", "0::/x\n", map[string]string{"x/memory.max": "lots\n"}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			proc := filepath.Join(dir, "cgroup")
			os.WriteFile(proc, []byte(tc.proc), 0o644)
			root := filepath.Join(dir, "fs")
			for name, text := range tc.files {
				p := filepath.Join(root, name)
				os.MkdirAll(filepath.Dir(p), 0o755)
				os.WriteFile(p, []byte(text), 0o644)
			}
			if got := cgroupLimit(proc, root); got != tc.want {
				t.Errorf("cgroupLimit = %d, want %d", got, tc.want)
			}
		})
	}
}

func TestAvailable(t *testing.T) {
	for _, tc := range []struct{ total, cgroup, want int64 }{
		{24 << 30, 0, 24 << 30},
		{24 << 30, 4 << 30, 4 << 30},
		{4 << 30, 1 << 40, 4 << 30},
		{0, 2 << 30, 2 << 30},
		{0, 0, 0},
	} {
		if got := available(tc.total, tc.cgroup); got != tc.want {
			t.Errorf("available(%d, %d) = %d, want %d", tc.total, tc.cgroup, got, tc.want)
		}
	}
	if a, tot := Available(), Total(); tot > 0 && (a <= 0 || a > tot) {
		t.Errorf("Available() = %d with Total() = %d", a, tot)
	}
}
