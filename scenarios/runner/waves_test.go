package runner

import (
	"context"
	"slices"
	"sync"
	"testing"

	"github.com/fleetsim/fleetsim/devicesim"
	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/scenarios"
)

// waveTarget records the registry calls of disconnect waves; a remote hub's
// target, which cannot drop a connection itself.
type waveTarget struct {
	mu    sync.Mutex
	calls []string
}

func (w *waveTarget) setEnabled(ctx context.Context, id string, on bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if on {
		w.calls = append(w.calls, "enable "+id)
	} else {
		w.calls = append(w.calls, "disable "+id)
	}
	return nil
}

func (w *waveTarget) log() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return slices.Clone(w.calls)
}

func (*waveTarget) hostname() string               { return "hub.test" }
func (*waveTarget) transport() devicesim.Transport { return devicesim.Transport{} }
func (*waveTarget) bulk(context.Context, []registry.ExportImportDevice) (registry.BulkResult, error) {
	return registry.BulkResult{IsSuccessful: true}, nil
}
func (*waveTarget) drop(string) bool                                    { return false }
func (*waveTarget) sendC2D(context.Context, string, c2dMessage) error   { return nil }
func (*waveTarget) createJob(context.Context, hubjobs.JobRequest) error { return nil }
func (*waveTarget) cancelJob(context.Context, string) error             { return nil }
func (*waveTarget) job(context.Context, string) (hubjobs.Job, error)    { return hubjobs.Job{}, nil }
func (*waveTarget) rows(context.Context, string) ([]deviceOutcome, error) {
	return nil, nil
}
func (*waveTarget) local() bool                                { return false }
func (*waveTarget) count(context.Context, string) (int, error) { return 0, nil }

// TestDisconnectWavesFollowTheSeed: two runs with the same seed drop the
// same devices and bring them back in the same order; another seed picks
// others.
func TestDisconnectWavesFollowTheSeed(t *testing.T) {
	play := func(seed int64) []string {
		sc, err := scenarios.Parse("waves.yaml", []byte(`
name: waves
duration: 1m
devices:
  - count: 60
    idPattern: "w-{index}"
timeline:
  - at: 1s
    disconnect: {fraction: 0.5, for: {uniform: [1ms, 40ms]}}
  - at: 2s
    connectStorm: {fraction: 0.3}
`))
		if err != nil {
			t.Fatal(err)
		}
		sc.Seed = seed
		hub := &waveTarget{}
		p := &player{sc: sc, hub: hub, shards: 1}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		p.wavesCtx, p.wavesCancelled = ctx, cancel
		for _, a := range sc.Actions() {
			switch a := a.(type) {
			case scenarios.DisconnectAction:
				p.disconnect(ctx, a.Selection, a.For)
			case scenarios.ConnectStormAction:
				p.disconnect(ctx, a.Selection, nil)
			}
			p.waves.Wait() // each wave's devices are back before the next wave
		}
		return hub.log()
	}
	first, second := play(7), play(7)
	if len(first) == 0 {
		t.Fatal("no device was dropped")
	}
	if !slices.Equal(first, second) {
		t.Errorf("same seed, different waves:\n%v\n%v", first, second)
	}
	if other := play(8); slices.Equal(first, other) {
		t.Errorf("seeds 7 and 8 played the same waves: %v", other)
	}
}
