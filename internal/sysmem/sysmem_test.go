package sysmem

import (
	"runtime"
	"testing"
)

func TestTotal(t *testing.T) {
	got := Total()
	if runtime.GOOS != "linux" {
		if got != 0 {
			t.Errorf("Total = %d off Linux, want 0", got)
		}
		return
	}
	if got < 64<<20 || got > 1<<50 {
		t.Errorf("Total = %d bytes, not a machine's memory", got)
	}
}
