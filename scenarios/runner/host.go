package runner

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/rs/zerolog"

	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/scenarios"
)

// HostOptions configures HostFleet.
type HostOptions struct {
	// DataDir keeps fleet.key, the secret the fleet's device keys derive
	// from, so that a restarted hub's devices keep their keys (required).
	DataDir string
	// Logger receives the fleet's logs.
	Logger zerolog.Logger
	// Started, when set, is called once the fleet's devices are registered
	// and the fleet is running, with the number of devices.
	Started func(devices int)
}

// HostFleet brings a scenario's fleet (not its timeline) online against hub,
// which the caller runs and which must be ready: it registers the devices
// (keeping those already registered), runs them on the in-process transport
// until ctx ends, and returns once every device has stopped. It returns nil
// when ctx ended, or the error that stopped the fleet.
func HostFleet(ctx context.Context, hub *hubjobs.Hub, sc *scenarios.Scenario, o HostOptions) error {
	if o.DataDir == "" {
		return errors.New("host fleet: a data directory is required")
	}
	p := &player{sc: sc, hub: stackTarget{hub}, shards: 1, log: o.Logger}
	p.indexes = sc.ShardIndexes(0, 1)
	var err error
	if p.secret, err = fleetSecret(o.DataDir); err != nil {
		return err
	}
	if p.ca, err = fleetCA(sc, nil, o.DataDir); err != nil {
		return fmt.Errorf("device CA: %w", err)
	}
	if p.ca != nil {
		hub.TrustCA(p.ca.Cert)
	}
	if err := p.register(ctx, true); err != nil {
		return err
	}
	p.fleet = p.newFleet()
	if hub.Console != nil {
		p.lv = newLiveScenario(sc, "hosted", p.fleet.Len())
		p.lv.start(time.Now(), "hosting")
		hub.Console.SetScenario(p.lv)
		defer hub.Console.SetScenario(nil)
	}
	fctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- p.fleet.Run(fctx) }()
	o.Logger.Info().Int("devices", p.fleet.Len()).Str("scenario", sc.Name()).Msg("fleet started")
	if o.Started != nil {
		o.Started(p.fleet.Len())
	}
	err = <-done
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		err = nil
	}
	if err != nil {
		return fmt.Errorf("fleet: %w", err)
	}
	return nil
}

// fleetSecret reads the secret the hosted fleet's device keys derive from,
// creating it on first start, so restarts keep the devices' keys.
func fleetSecret(dir string) ([]byte, error) {
	path := filepath.Join(dir, "fleet.key")
	if b, err := os.ReadFile(path); err == nil && len(b) >= 32 {
		return b, nil
	}
	b := make([]byte, 32)
	rand.Read(b)
	if err := os.WriteFile(path, b, 0o600); err != nil {
		return nil, fmt.Errorf("write %s: %w", path, err)
	}
	return b, nil
}
