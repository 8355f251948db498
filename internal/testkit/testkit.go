// Package testkit holds test helpers: a whole hub on 127.0.0.1:0 and the
// in-process transport, polling with a deadline instead of sleeping, and
// goroutine-leak checks. Only _test.go files may import it (internal/archtest
// enforces that).
package testkit

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fleetsim/fleetsim/hubjobs"
)

// Eventually polls cond every few milliseconds until it returns true, failing
// the test with msg when timeout passes first.
func Eventually(t testing.TB, timeout time.Duration, cond func() bool, msg string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for: "+msg, append([]any{timeout}, args...)...)
		}
		time.Sleep(wait)
		if wait < 50*time.Millisecond {
			wait *= 2
		}
	}
}

// VerifyNoLeaks is for TestMain: it runs the tests and fails if goroutines
// outlive them.
func VerifyNoLeaks(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreCurrent())
}

// HubOptions tunes StartHub; the zero value is an in-memory hub with the
// REST API and MQTT over TLS on 127.0.0.1:0.
type HubOptions struct {
	Persistent bool   // stores in t.TempDir() instead of memory
	DataDir    string // explicit data directory (implies Persistent)
	Pacing     string
	// MaxInFlight bounds the jobs' device operations in flight (0: the
	// engine's default).
	MaxInFlight int
	// Rollouts, when set, builds the hub's rollout host
	// (hubjobs.Config.Rollouts).
	Rollouts func(h *hubjobs.Hub, dir string) (hubjobs.RolloutHost, error)
}

// StartHub runs a whole hub for the test's lifetime and waits until it is
// ready. The hub stops, and the test waits for it, in t.Cleanup.
func StartHub(t testing.TB, o HubOptions) *hubjobs.Hub {
	t.Helper()
	dir := o.DataDir
	if dir == "" && o.Persistent {
		dir = t.TempDir()
	}
	s, err := hubjobs.New(hubjobs.Config{
		DataDir:     dir,
		Hostname:    "localhost",
		HTTPSAddr:   "127.0.0.1:0",
		MQTTAddr:    "127.0.0.1:0",
		Pacing:      o.Pacing,
		MaxInFlight: o.MaxInFlight,
		Rollouts:    o.Rollouts,
	})
	if err != nil {
		t.Fatalf("start hub: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("hub.Run: %v", err)
		}
	})
	select {
	case <-s.Ready():
	case err := <-done:
		done <- err
		t.Fatalf("hub stopped before ready: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("hub not ready after 30s")
	}
	return s
}
