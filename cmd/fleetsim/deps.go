package main

// This file is the one place that calls the scenarios, runner and restapi
// packages' entry points; the rest of the command works on the small types
// below.

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/fleetsim/fleetsim/internal/tlsutil"
	"github.com/fleetsim/fleetsim/scenarios"
	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// scenario is a loaded scenario.
type scenario interface {
	Name() string
	Description() string
	// Source is the scenario file's text.
	Source() []byte
}

// playOptions mirror runner.Options.
type playOptions struct {
	Seed          *int64
	Shard, Shards int
	DataDir       string
	Logger        zerolog.Logger
	Progress      func(runner.Progress)
	// Hub, when set, is the service connection string of a remote hub;
	// HubURL, MQTTURL and CAFile say how to reach it.
	Hub, HubURL, MQTTURL, CAFile string
}

// serveOptions mirror runner.ServeOptions.
type serveOptions struct {
	DataDir, Hostname, HTTPSAddr, MQTTAddr string
	CACertFile, CAKeyFile, OwnerKey        string
	Scenario                               scenario
	Pacing                                 string
	Logger                                 zerolog.Logger
	Ready                                  func(endpoints)
}

// openScenario loads an embedded scenario by name or a scenario file by path.
// Errors: see scenarioProblems and isUnknownScenario.
func openScenario(nameOrPath string) (scenario, error) {
	sc, err := scenarios.Load(nameOrPath)
	if err != nil {
		return nil, err
	}
	return sc, nil
}

// scenarioProblems returns the file:line:col problem lines of a malformed scenario.
func scenarioProblems(err error) ([]string, bool) {
	var pe *scenarios.ParseError
	if errors.As(err, &pe) {
		return pe.Lines(), true
	}
	return nil, false
}

// isUnknownScenario reports whether err says no such scenario exists.
func isUnknownScenario(err error) bool { return errors.Is(err, scenarios.ErrUnknownScenario) }

// scenarioNames lists the embedded scenarios.
func scenarioNames() []string { return scenarios.Names() }

// playScenario runs a scenario to its report.
func playScenario(ctx context.Context, sc scenario, o playOptions) (*runner.Report, error) {
	s, ok := sc.(*scenarios.Scenario)
	if !ok {
		return nil, fmt.Errorf("scenario %s: not a loaded scenario", sc.Name())
	}
	ro := runner.Options{
		Seed: o.Seed, Shard: o.Shard, Shards: o.Shards, DataDir: o.DataDir,
		Logger: o.Logger, Progress: o.Progress,
	}
	if o.Hub != "" {
		ro.Remote = &runner.Remote{ServiceConnectionString: o.Hub, RESTURL: o.HubURL, MQTTURL: o.MQTTURL}
		if o.CAFile != "" {
			tc, err := tlsutil.ClientConfig(tlsutil.Files{CAFile: o.CAFile})
			if err != nil {
				return nil, err
			}
			ro.Remote.TLSConfig = tc
		}
	}
	return runner.Run(ctx, s, ro)
}

// serveHub runs a hub until ctx ends.
func serveHub(ctx context.Context, o serveOptions) error {
	so := runner.ServeOptions{
		DataDir: o.DataDir, Hostname: o.Hostname, HTTPSAddr: o.HTTPSAddr, MQTTAddr: o.MQTTAddr,
		Pacing: o.Pacing, Logger: o.Logger,
		CACertFile: o.CACertFile, CAKeyFile: o.CAKeyFile, OwnerKey: o.OwnerKey,
	}
	if o.Scenario != nil {
		s, ok := o.Scenario.(*scenarios.Scenario)
		if !ok {
			return fmt.Errorf("scenario %s: not a loaded scenario", o.Scenario.Name())
		}
		so.Scenario = s
	}
	if o.Ready != nil {
		so.Ready = func(ep runner.Endpoints) {
			o.Ready(endpoints{HostName: ep.HostName, ServiceConnectionString: ep.ServiceConnectionString,
				CAFile: ep.CAFile, HTTPSAddr: ep.HTTPSAddr, MQTTAddr: ep.MQTTAddr})
		}
	}
	return runner.Serve(ctx, so)
}

// newHubClient connects to a hub's REST API.
func newHubClient(connStr, baseURL string, tlsConf *tls.Config) (hubClient, error) {
	return newHTTPHub(connStr, baseURL, tlsConf)
}

// endpoints mirror runner.Endpoints: how to reach a running hub.
type endpoints struct {
	HostName, ServiceConnectionString, CAFile, HTTPSAddr, MQTTAddr string
}
