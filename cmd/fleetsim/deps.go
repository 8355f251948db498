package main

// This file is the one place that calls the scenarios, runner and restapi
// packages' entry points; the rest of the command works on the small types
// below.

import (
	"context"
	"crypto/tls"
	"errors"

	"github.com/rs/zerolog"

	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// errNotBuilt is returned while a part of fleetsim is not in this build.
var errNotBuilt = errors.New("not available in this build yet")

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
}

// serveOptions mirror runner.ServeOptions.
type serveOptions struct {
	DataDir, Hostname, HTTPSAddr, MQTTAddr string
	Scenario                               scenario
	Pacing                                 string
	Logger                                 zerolog.Logger
	Ready                                  func(endpoints)
}

// openScenario loads an embedded scenario by name or a scenario file by path.
// Errors: see scenarioProblems and isUnknownScenario.
func openScenario(nameOrPath string) (scenario, error) { return nil, errNotBuilt }

// scenarioProblems returns the file:line:col problem lines of a malformed scenario.
func scenarioProblems(err error) ([]string, bool) { return nil, false }

// isUnknownScenario reports whether err says no such scenario exists.
func isUnknownScenario(err error) bool { return false }

// scenarioNames lists the embedded scenarios.
func scenarioNames() []string { return nil }

// playScenario runs a scenario to its report.
func playScenario(ctx context.Context, sc scenario, o playOptions) (*runner.Report, error) {
	return nil, errNotBuilt
}

// serveHub runs a hub until ctx ends.
func serveHub(ctx context.Context, o serveOptions) error { return errNotBuilt }

// newHubClient connects to a hub's REST API.
func newHubClient(connStr, baseURL string, tlsConf *tls.Config) (hubClient, error) {
	return newHTTPHub(connStr, baseURL, tlsConf)
}

// endpoints mirror runner.Endpoints: how to reach a running hub.
type endpoints struct {
	HostName, ServiceConnectionString, CAFile, HTTPSAddr, MQTTAddr string
}
