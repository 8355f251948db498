package ceiling

import (
	"context"
	"testing"
	"time"
)

// The measurements work end to end on a small fleet; their figures are
// the benchmarks' business.
func TestMeasurements(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	const n = 50
	for _, tc := range []struct {
		name string
		run  func(context.Context, int) (Rate, error)
	}{
		{"method round trips", MethodRoundTrips},
		{"twin updates", TwinUpdates},
	} {
		r, err := tc.run(ctx, n)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if r.Ops != n || r.Took <= 0 || r.PerSecond() <= 0 {
			t.Errorf("%s: %+v", tc.name, r)
		}
	}
	m, err := IdleConnections(ctx, n)
	if err != nil {
		t.Fatal(err)
	}
	// paho's goroutines and mochi's: about eleven a connection.
	if m.Goroutines < 5 || m.Goroutines > 20 || m.HeapBytes <= 0 || m.StackBytes <= 0 {
		t.Errorf("idle connection: %+v", m)
	}
}

func TestCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := MethodRoundTrips(ctx, 10); err == nil {
		t.Error("a canceled measurement succeeded")
	}
}
