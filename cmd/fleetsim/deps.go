package main

// This file is the one place that calls the scenarios, runner and restapi
// packages' entry points; the rest of the command works on the small types
// below.

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/hubjobs/query"
	"github.com/fleetsim/fleetsim/hubjobs/restapi"
	"github.com/fleetsim/fleetsim/internal/fleetmem"
	"github.com/fleetsim/fleetsim/internal/iothub"
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
	// ConsoleAddr serves the web console there; ConsoleReady gets its
	// one-time login URL.
	ConsoleAddr  string
	ConsoleReady func(loginURL string)
	// Hub, when set, is the service connection string of a remote hub;
	// HubURL, MQTTURL and CAFile say how to reach it.
	Hub, HubURL, MQTTURL, CAFile string
	// Plan is the fleet's memory plan (planFleet), applied for the run.
	Plan fleetmem.Plan
	// Run is how a remote run's shards meet on the hub.
	Run runner.Coordination
	// DeviceCAFile and DeviceCAKeyFile are the CA that signs the
	// certificateAuthority groups' certificates.
	DeviceCAFile, DeviceCAKeyFile string
}

// serveOptions configure serveHub.
type serveOptions struct {
	DataDir, Hostname, HTTPSAddr, MQTTAddr string
	CACertFile, CAKeyFile, OwnerKey        string
	Scenario                               scenario
	Pacing                                 string
	MaxInFlight                            int
	Logger                                 zerolog.Logger
	Ready                                  func(endpoints)
	// Plan is the scenario fleet's memory plan (planFleet).
	Plan fleetmem.Plan
	// TrustedCAFiles are CA certificates that sign CA-signed devices' certificates.
	TrustedCAFiles []string
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
	if o.DataDir != "" {
		unlock, err := lockDataDir(o.DataDir)
		if err != nil {
			return nil, err
		}
		defer unlock()
	}
	ro := runner.Options{
		Seed: o.Seed, Shard: o.Shard, Shards: o.Shards, DataDir: o.DataDir,
		Logger: o.Logger, Progress: o.Progress, Run: o.Run,
		ConsoleAddr: o.ConsoleAddr, ConsoleReady: o.ConsoleReady,
	}
	if o.DeviceCAFile != "" {
		ca, err := tlsutil.LoadDeviceCAFiles(o.DeviceCAFile, o.DeviceCAKeyFile)
		if err != nil {
			return nil, fmt.Errorf("--device-ca: %w", err)
		}
		ro.DeviceCA = ca
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
	defer o.Plan.Apply()()
	logPlan(o.Logger, o.Plan)
	rep, err := runner.Run(ctx, s, ro)
	if rep != nil {
		rep.Runtime = runtimeSettings(o.Plan, os.Getenv)
	}
	return rep, err
}

// serveHub runs a hub until ctx ends: it builds the hub with hubjobs.New,
// runs it, and with a scenario hands it to the runner to host that
// scenario's fleet. Devices stop before the hub does.
func serveHub(ctx context.Context, o serveOptions) error {
	if o.DataDir == "" {
		return errors.New("a data directory is required")
	}
	var sc *scenarios.Scenario
	if o.Scenario != nil {
		var ok bool
		if sc, ok = o.Scenario.(*scenarios.Scenario); !ok {
			return fmt.Errorf("scenario %s: not a loaded scenario", o.Scenario.Name())
		}
	}
	unlock, err := lockDataDir(o.DataDir)
	if err != nil {
		return err
	}
	defer unlock()
	pacing := o.Pacing
	if pacing == "" && sc != nil {
		pacing = sc.Hub.Pacing
	}
	maxInFlight := o.MaxInFlight
	if maxInFlight <= 0 && sc != nil {
		maxInFlight = sc.Hub.MaxInFlight
	}
	if sc != nil {
		defer o.Plan.Apply()()
		logPlan(o.Logger, o.Plan)
	}
	hub, err := hubjobs.New(hubjobs.Config{
		DataDir: o.DataDir, Hostname: o.Hostname, HTTPSAddr: o.HTTPSAddr, MQTTAddr: o.MQTTAddr,
		Pacing: pacing, MaxInFlight: maxInFlight, Logger: o.Logger, TrustedCAFiles: o.TrustedCAFiles,
		CACertFile: o.CACertFile, CAKeyFile: o.CAKeyFile, OwnerKey: o.OwnerKey,
		Rollouts: rolloutHost(o.Logger),
	})
	if err != nil {
		return err
	}
	raiseDescriptorLimit(o.Logger, hub.Registry.Statistics().TotalDeviceCount)

	hubCtx, stopHub := context.WithCancel(ctx)
	defer stopHub()
	hubDone := make(chan error, 1)
	go func() { hubDone <- hub.Run(hubCtx) }()
	// stop stops the hub, waits for it, and returns err, or the hub's
	// error when err is nil.
	stop := func(err error) error {
		stopHub()
		if herr := <-hubDone; err == nil && herr != nil {
			err = fmt.Errorf("hub: %w", herr)
		}
		return err
	}
	select {
	case <-hub.Ready():
	case err := <-hubDone:
		if err == nil {
			err = errors.New("hub stopped before it was ready")
		}
		return fmt.Errorf("hub: %w", err)
	case <-ctx.Done():
		return stop(ctx.Err())
	}
	ready := func() {
		if o.Ready != nil {
			ep := hub.Endpoints()
			o.Ready(endpoints{HostName: ep.HostName, ServiceConnectionString: ep.ServiceConnectionString,
				CAFile: ep.CAFile, HTTPSAddr: ep.HTTPSAddr, MQTTAddr: ep.MQTTAddr,
				ConsoleURL: ep.ConsoleURL, ConsoleLoginURL: ep.ConsoleLoginURL})
		}
	}
	if sc == nil {
		ready()
		select {
		case <-ctx.Done():
			return stop(nil)
		case err := <-hubDone:
			if err != nil {
				return fmt.Errorf("hub: %w", err)
			}
			return nil
		}
	}
	fleetCtx, stopFleet := context.WithCancel(ctx)
	defer stopFleet()
	fleetDone := make(chan error, 1)
	go func() {
		fleetDone <- runner.HostFleet(fleetCtx, hub, sc, runner.HostOptions{
			DataDir: o.DataDir, Logger: o.Logger, Started: func(int) { ready() },
		})
	}()
	var herr error
	select {
	case <-ctx.Done():
	case herr = <-hubDone:
		hubDone = nil
	case ferr := <-fleetDone:
		fleetDone = nil
		if ferr != nil {
			return stop(ferr)
		}
	}
	stopFleet()
	if fleetDone != nil {
		if ferr := <-fleetDone; ferr != nil {
			o.Logger.Warn().Err(ferr).Msg("fleet stopped with an error")
		}
	}
	if hubDone == nil {
		if herr != nil {
			return fmt.Errorf("hub: %w", herr)
		}
		return nil
	}
	return stop(nil)
}

// newHubClient connects to a hub's REST API through restapi.Client, the one
// Go client of the service API.
func newHubClient(connStr, baseURL string, tlsConf *tls.Config) (hubClient, error) {
	c, err := restapi.NewClient(connStr, restapi.ClientOptions{BaseURL: baseURL, TLSConfig: tlsConf})
	if err != nil {
		return nil, err
	}
	return restHub{c}, nil
}

// restHub is the client commands' hubClient over restapi.Client.
type restHub struct{ c *restapi.Client }

func (h restHub) CreateJob(ctx context.Context, req jobRequest) (json.RawMessage, error) {
	return h.c.CreateJob(ctx, req.JobID, req)
}

func (h restHub) GetJob(ctx context.Context, id string) (json.RawMessage, error) {
	return h.c.GetJob(ctx, id)
}

func (h restHub) ListJobs(ctx context.Context, jobType, status string) (json.RawMessage, error) {
	items, err := h.c.ListJobs(ctx, jobType, status, 0)
	if err != nil {
		return nil, err
	}
	return json.Marshal(items)
}

func (h restHub) CancelJob(ctx context.Context, id string) (json.RawMessage, error) {
	return h.c.CancelJob(ctx, id)
}

func (h restHub) CreateDevice(ctx context.Context, id string) (json.RawMessage, error) {
	return h.c.CreateDevice(ctx, id)
}

func (h restHub) ListDevices(ctx context.Context) (json.RawMessage, error) {
	return h.c.ListDevices(ctx, 0)
}

func (h restHub) GetDevice(ctx context.Context, id string) (json.RawMessage, error) {
	return h.c.GetDevice(ctx, id)
}

func (h restHub) DeleteDevice(ctx context.Context, id string) error {
	return h.c.DeleteDevice(ctx, id, "*")
}

func (h restHub) GetTwin(ctx context.Context, id string) (json.RawMessage, error) {
	return h.c.GetTwin(ctx, id)
}

func (h restHub) UpdateTwin(ctx context.Context, id string, patch json.RawMessage, etag string) (json.RawMessage, error) {
	return h.c.UpdateTwin(ctx, id, patch, etag)
}

func (h restHub) Invoke(ctx context.Context, id string, req methodRequest) (json.RawMessage, error) {
	mr := iothub.MethodRequest{MethodName: req.MethodName, Payload: req.Payload}
	if req.ResponseTimeoutInSeconds > 0 {
		mr.ResponseTimeoutInSeconds = &req.ResponseTimeoutInSeconds
	}
	if req.ConnectTimeoutInSeconds > 0 {
		mr.ConnectTimeoutInSeconds = &req.ConnectTimeoutInSeconds
	}
	res, err := h.c.InvokeMethod(ctx, id, mr)
	if err != nil {
		return nil, err
	}
	return json.Marshal(res)
}

func (h restHub) Query(ctx context.Context, q string) (json.RawMessage, error) {
	items, err := h.c.Query(ctx, q, 0)
	if err != nil {
		return nil, err
	}
	return json.Marshal(items)
}

// endpoints mirror hubjobs.Endpoints: how to reach a running hub.
type endpoints struct {
	HostName, ServiceConnectionString, CAFile, HTTPSAddr, MQTTAddr string
	// ConsoleURL is the web console; ConsoleLoginURL signs a browser in once.
	ConsoleURL, ConsoleLoginURL string
}

// jobSelection is how many of a scenario's devices a job's condition selects.
type jobSelection struct {
	JobID, Condition string
	At               time.Duration
	Selected         int
	// Reported says the condition reads reported properties, which the
	// devices set only once they run: the count is of the twins as the
	// scenario registers them.
	Reported bool
}

// scenarioSummary describes a loaded scenario for 'scenarios validate'.
type scenarioSummary struct {
	Devices, Groups, Expectations int
	Jobs                          []jobSelection
	// Rollouts describe the timeline's rollouts, a line each.
	Rollouts []string
}

// summarize evaluates each job's query condition against the scenario's
// fleet as it is registered: device ids, tags, status enabled, empty
// desired and reported properties, disconnected.
func summarize(sc scenario) (scenarioSummary, error) {
	s, ok := sc.(*scenarios.Scenario)
	if !ok {
		return scenarioSummary{}, fmt.Errorf("scenario %s: not a loaded scenario", sc.Name())
	}
	sum := scenarioSummary{Devices: s.DeviceCount(), Groups: len(s.Groups), Expectations: len(s.Expectations) + len(s.RolloutExpectations)}
	for _, act := range s.Actions() {
		r, ok := act.(scenarios.RolloutAction)
		if !ok {
			continue
		}
		var stages []string
		for _, st := range r.Plan.Stages {
			switch {
			case st.Condition != "":
				stages = append(stages, fmt.Sprintf("%s (%s)", st.Name, st.Condition))
			case st.Share != nil:
				stages = append(stages, fmt.Sprintf("%s (%g %% of the population)", st.Name, 100**st.Share))
			default:
				stages = append(stages, st.Name+" (the rest)")
			}
		}
		sum.Rollouts = append(sum.Rollouts, fmt.Sprintf("rollout %s at T+%s: stages %s", r.Plan.ID, r.At, strings.Join(stages, ", ")))
	}
	type cond struct {
		q   *query.Query
		sel *jobSelection
	}
	var conds []cond
	for _, j := range s.Jobs() {
		q, err := query.ParseCondition(j.Condition)
		if err != nil {
			return sum, fmt.Errorf("job %s: %w", j.JobID, err)
		}
		sum.Jobs = append(sum.Jobs, jobSelection{JobID: j.JobID, Condition: j.Condition, At: j.At,
			Reported: strings.Contains(j.Condition, "properties.reported")})
		conds = append(conds, cond{q: q})
	}
	for i := range conds {
		conds[i].sel = &sum.Jobs[i]
	}
	for d := range s.DeviceSpecs(0, 1) {
		doc := map[string]any{
			"deviceId": d.ID, "status": "enabled", "connectionState": "Disconnected",
			"properties": map[string]any{"desired": map[string]any{}, "reported": map[string]any{}},
		}
		if d.Tags != nil {
			doc["tags"] = d.Tags
		}
		for _, c := range conds {
			if c.q.Match(doc) {
				c.sel.Selected++
			}
		}
	}
	return sum, nil
}

// scenarioSchema is the JSON Schema of scenario files.
func scenarioSchema() []byte { return scenarios.JSONSchema() }
