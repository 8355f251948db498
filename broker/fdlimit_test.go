//go:build unix

package broker

import (
	"bytes"
	"errors"
	"net"
	"os"
	"os/exec"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// fdChildEnv makes the test binary, run again as a child, play the part of a
// hub that runs out of file descriptors.
const fdChildEnv = "FLEETSIM_TEST_FD_EXHAUSTION_CHILD"

// TestListenerSurvivesDescriptorExhaustion runs a hub in a child process
// with a low RLIMIT_NOFILE, fills its descriptor table with idle sockets
// until accept fails, frees them, and expects a device to connect over
// MQTT/TLS again. The child is needed because the limit is per process.
func TestListenerSurvivesDescriptorExhaustion(t *testing.T) {
	if os.Getenv(fdChildEnv) == "1" {
		descriptorExhaustionChild(t)
		return
	}
	if testing.Short() {
		t.Skip("runs a child process")
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestListenerSurvivesDescriptorExhaustion$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), fdChildEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("child hub: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("--- PASS")) {
		t.Fatalf("child hub did not run the test:\n%s", out)
	}
}

// syncBuffer is a log sink safe for the broker's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) contains(sub string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Contains(s.b.Bytes(), []byte(sub))
}

func descriptorExhaustionChild(t *testing.T) {
	logs := &syncBuffer{}
	e := start(t, func(c *Config) { c.Logger = zerolog.New(logs) })

	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	low := lim
	low.Cur = uint64(openDescriptors(t) + 64)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim) }()

	// Idle sockets to the TLS port until this process can open no more:
	// each costs a descriptor here and one where the broker accepts it.
	var idle []net.Conn
	defer func() {
		for _, c := range idle {
			c.Close()
		}
	}()
	for len(idle) < 1000 {
		c, err := net.DialTimeout("tcp", e.s.Addrs().TLS, 5*time.Second)
		if err != nil {
			if !errors.Is(err, syscall.EMFILE) {
				t.Fatalf("dial: %v", err)
			}
			break
		}
		idle = append(idle, c)
	}
	// The broker's accept now fails: free one descriptor here, so the next
	// dial succeeds but the broker has none left to accept it with.
	waitFor(t, "a failing accept", func() bool {
		if logs.contains("accepting connections failed") {
			return true
		}
		if len(idle) > 0 {
			idle[len(idle)-1].Close()
			idle = idle[:len(idle)-1]
		}
		if c, err := net.DialTimeout("tcp", e.s.Addrs().TLS, 5*time.Second); err == nil {
			idle = append(idle, c)
		}
		return false
	})

	for _, c := range idle {
		c.Close()
	}
	idle = nil
	if _, err := connect(t, e, tlsTCP, "d1", token("d1", key1, time.Hour), true); err != nil {
		t.Fatalf("device could not connect once descriptors were free: %v", err)
	}
	waitFor(t, "the listener's recovery log", func() bool { return logs.contains("accepting connections again") })
}

// openDescriptors counts this process's open file descriptors.
func openDescriptors(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/dev/fd")
	if err != nil {
		t.Skipf("cannot count descriptors: %v", err)
	}
	return len(ents)
}
