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

// ServeOptions configures Serve.
type ServeOptions struct {
	// DataDir keeps the stores, certificates, policies and connection.json
	// (required: a served hub outlives the process).
	DataDir string
	// Hostname is the hub's host name (default localhost).
	Hostname string
	// HTTPSAddr is the REST API and MQTT-over-WebSocket listener.
	HTTPSAddr string
	// MQTTAddr is the MQTT-over-TLS listener.
	MQTTAddr string
	// Pacing is the jobs pacing profile (default unlimited, or the
	// scenario's when one is given).
	Pacing string
	// MaxInFlight bounds the jobs' device operations in flight (default
	// the scenario's when one is given, else the engine's).
	MaxInFlight int
	// CACertFile and CAKeyFile, when set, are the CA that signs the server
	// certificate (see StackOptions).
	CACertFile, CAKeyFile string
	// OwnerKey, when set, is the iothubowner policy's primary key in base64.
	OwnerKey string
	// Scenario, when set, brings its fleet (not its timeline) online.
	Scenario *scenarios.Scenario
	// Logger receives the hub's logs.
	Logger zerolog.Logger
	// TrustedCAFiles are PEM files of CAs that sign certificateAuthority
	// devices' certificates (besides DataDir/trusted-ca/*.pem).
	TrustedCAFiles []string
	// Ready, when set, is called once with the endpoints when the hub is up.
	Ready func(hubjobs.Endpoints)
}

// Serve runs a hub until ctx ends: the REST API, the MQTT listeners, the
// jobs engine and, with a scenario, its fleet on the in-process transport.
// It returns nil after a clean shutdown (jobs persisted, devices
// disconnected), or the error that stopped the hub.
func Serve(ctx context.Context, o ServeOptions) error {
	if o.DataDir == "" {
		return errors.New("serve: a data directory is required")
	}
	pacing := o.Pacing
	if pacing == "" && o.Scenario != nil {
		pacing = o.Scenario.Hub.Pacing
	}
	maxInFlight := o.MaxInFlight
	if maxInFlight <= 0 && o.Scenario != nil {
		maxInFlight = o.Scenario.Hub.MaxInFlight
	}
	st, err := hubjobs.New(hubjobs.Config{
		DataDir: o.DataDir, Hostname: o.Hostname, HTTPSAddr: o.HTTPSAddr, MQTTAddr: o.MQTTAddr,
		Pacing: pacing, MaxInFlight: maxInFlight, Logger: o.Logger, TrustedCAFiles: o.TrustedCAFiles,
		CACertFile: o.CACertFile, CAKeyFile: o.CAKeyFile, OwnerKey: o.OwnerKey,
	})
	if err != nil {
		return err
	}
	raiseDescriptorLimit(o.Logger, st.Registry.Statistics().TotalDeviceCount)
	hubCtx, stopHub := context.WithCancel(ctx)
	defer stopHub()
	hubDone := make(chan error, 1)
	go func() { hubDone <- st.Run(hubCtx) }()
	if err := waitReady(ctx, st, hubDone); err != nil {
		stopHub()
		select {
		case herr := <-hubDone:
			if herr != nil {
				return herr
			}
		case <-time.After(time.Minute):
		}
		return err
	}
	var fleetDone chan error
	stopFleet := func() {}
	if o.Scenario != nil {
		p := &player{sc: o.Scenario, hub: stackTarget{st}, shards: 1, log: o.Logger}
		p.indexes = o.Scenario.ShardIndexes(0, 1)
		if p.secret, err = fleetSecret(o.DataDir); err != nil {
			stopHub()
			<-hubDone
			return err
		}
		if err := p.register(ctx, true); err != nil {
			stopHub()
			<-hubDone
			return err
		}
		p.fleet = p.newFleet()
		var fctx context.Context
		fctx, stopFleet = context.WithCancel(ctx)
		fleetDone = make(chan error, 1)
		go func() { fleetDone <- p.fleet.Run(fctx) }()
		o.Logger.Info().Int("devices", p.fleet.Len()).Str("scenario", o.Scenario.Name()).Msg("fleet started")
	}
	if o.Ready != nil {
		o.Ready(st.Endpoints())
	}
	var herr error
	select {
	case <-ctx.Done():
	case herr = <-hubDone:
		hubDone = nil
	}
	// Devices first, then the hub.
	stopFleet()
	if fleetDone != nil {
		if ferr := <-fleetDone; ferr != nil && !errors.Is(ferr, context.Canceled) {
			o.Logger.Warn().Err(ferr).Msg("fleet stopped with an error")
		}
	}
	stopHub()
	if hubDone != nil {
		herr = <-hubDone
	}
	if herr != nil {
		return fmt.Errorf("hub: %w", herr)
	}
	return nil
}

// fleetSecret reads the secret the served fleet's device keys derive from,
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

// waitReady waits for the stack or returns ctx's error.
func waitReady(ctx context.Context, s *hubjobs.Hub, errc <-chan error) error {
	select {
	case <-s.Ready():
		return nil
	case err := <-errc:
		if err == nil {
			err = errors.New("hub stopped before it was ready")
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Minute):
		return errors.New("hub not ready after a minute")
	}
}
