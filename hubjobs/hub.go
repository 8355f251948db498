package hubjobs

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/fleetsim/fleetsim/broker"
	"github.com/fleetsim/fleetsim/hubjobs/c2d"
	"github.com/fleetsim/fleetsim/hubjobs/c2dstore"
	"github.com/fleetsim/fleetsim/hubjobs/console"
	"github.com/fleetsim/fleetsim/hubjobs/events"
	"github.com/fleetsim/fleetsim/hubjobs/jobs"
	"github.com/fleetsim/fleetsim/hubjobs/jobstore"
	"github.com/fleetsim/fleetsim/hubjobs/metrics"
	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/hubjobs/regstore"
	"github.com/fleetsim/fleetsim/hubjobs/restapi"
	"github.com/fleetsim/fleetsim/internal/iothub"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
)

// The wiring checks that each part satisfies the interfaces its consumers declare.
var (
	_ jobs.MethodInvoker      = (*registry.Registry)(nil)
	_ jobs.TwinPatcher        = (*registry.Registry)(nil)
	_ jobs.DeviceSelector     = (*registry.Registry)(nil)
	_ broker.Hub              = (*registry.Registry)(nil)
	_ broker.Hub              = deviceEvents{}
	_ broker.Acks             = (*c2d.Queues)(nil)
	_ c2d.Link                = (*broker.Server)(nil)
	_ c2d.Devices             = c2dDevices{}
	_ restapi.C2D             = (*c2d.Queues)(nil)
	_ broker.Identities       = identities{}
	_ broker.ModuleIdentities = identities{}
	_ broker.Policies         = policyKeys(nil)
	_ registry.DeviceLink     = (*broker.Server)(nil)
	_ registry.DeviceLink     = (*brokerLink)(nil)
	_ restapi.Devices         = (*registry.Registry)(nil)
	_ restapi.Statistics      = (*registry.Registry)(nil)
	_ restapi.Twins           = (*registry.Registry)(nil)
	_ restapi.Methods         = (*registry.Registry)(nil)
	_ restapi.DeviceQueries   = (*registry.Registry)(nil)
	_ restapi.Modules         = (*registry.Registry)(nil)
	_ restapi.Jobs            = (*jobs.Engine)(nil)
	_ console.Devices         = consoleDevices{}
	_ console.Jobs            = (*jobs.Engine)(nil)
	_ console.Counters        = consoleCounters{}
	_ console.Rollouts        = RolloutHost(nil)
	_ restapi.Events          = apiEvents{}
	_ console.C2D             = consoleC2D{}
)

// Config configures a hub: broker, registry, jobs engine and REST API.
type Config struct {
	// DataDir holds the stores, certificates and connection.json. Empty means
	// in-memory stores and certificates in a temporary directory.
	DataDir string
	// Hostname is the hub host name in connection strings, SAS tokens and certificates (default "localhost").
	Hostname string
	// HTTPSAddr is the REST API and MQTT-over-WebSocket listener; empty means none.
	HTTPSAddr string
	// MQTTAddr is MQTT over TLS; empty means none (simulated devices use the in-process transport).
	MQTTAddr string
	// Pacing is the jobs pacing profile: unlimited, S1, S2, S3, optionally xN units (default unlimited).
	Pacing string
	// MaxInFlight bounds concurrent device operations of the jobs engine (default 1000).
	MaxInFlight int
	// CACertFile and CAKeyFile, when set, are the CA that signs the server
	// certificate, instead of one generated in the data directory.
	CACertFile, CAKeyFile string
	// OwnerKey, when set, is the iothubowner policy's primary key (base64),
	// instead of the generated one, so that a service connection string
	// can be made before the hub first starts.
	OwnerKey string
	// Logger receives structured logs (default: none).
	Logger zerolog.Logger
	// TrustedCAFiles are PEM files of CA certificates that sign the
	// certificates of certificateAuthority devices, in addition to the
	// *.pem files in DataDir/trusted-ca.
	TrustedCAFiles []string
	// Rollouts, when set, builds the rollout host the hub runs (fleetsim
	// serve passes scenarios/rollout's, so the hub imports no scenario
	// code): it is given the hub, whose in-process service the rollouts'
	// jobs run on, and the folder for their state (DataDir/rollouts/hub).
	// The REST API serves it under /fleetsim/v1/rollouts, the console
	// shows it, and Run runs it until the hub stops.
	Rollouts func(h *Hub, dir string) (RolloutHost, error)
}

// RolloutHost runs rollouts on the hub: submitted through the REST API or
// driven from the console, resumed after a restart from the state it keeps
// in its folder. Run owns its goroutines until ctx ends.
type RolloutHost interface {
	restapi.Rollouts
	Run(ctx context.Context) error
}

// Endpoints tells clients how to reach a running hub; serve writes it to DataDir/connection.json.
type Endpoints struct {
	HostName                string `json:"hostName"`
	ServiceConnectionString string `json:"serviceConnectionString"`
	CAFile                  string `json:"caFile"`
	HTTPSAddr               string `json:"httpsAddr,omitempty"`
	MQTTAddr                string `json:"mqttAddr,omitempty"`
	// ConsoleURL is the web console, on the HTTPS listener.
	ConsoleURL string `json:"consoleUrl,omitempty"`
	// ConsoleLoginURL signs a browser in to the console once; it is a
	// secret, printed at start and never written to connection.json.
	ConsoleLoginURL string `json:"-"`
}

// Hub is a whole hub in one process: it owns the broker, the registry, the
// stores, the jobs engine, the REST API and the goroutines that run them.
type Hub struct {
	opts     Config
	Broker   *broker.Server
	Registry *registry.Registry
	Jobs     *jobs.Engine
	REST     *restapi.Server
	// Metrics serves Prometheus metrics at /metrics on the REST listener.
	Metrics *metrics.Metrics
	// Console is the web console at / on the REST listener.
	Console *console.Console
	// Rollouts runs rollouts on the hub; nil unless Config.Rollouts is set.
	Rollouts RolloutHost
	// Events keeps the devices' recent events for watchers.
	Events *events.Stream
	// C2D holds the devices' cloud-to-device queues (durable with a DataDir).
	C2D *c2d.Queues

	regStore *regstore.Store
	jobStore *jobstore.Store
	c2dStore *c2dstore.Store
	tlsConf  *tls.Config
	certs    tlsutil.Files
	tmpDir   string
	httpsLn  net.Listener
	policies []restapi.Policy

	ready     chan struct{}
	mu        sync.Mutex
	endpoints Endpoints
}

// consoleDevices is the registry as the console sees it: twins as JSON,
// direct-method calls measured as the API's are.
type consoleDevices struct {
	*registry.Registry
	methods metrics.MethodInvoker
}

func (d consoleDevices) TwinJSON(id string) ([]byte, error) {
	t, err := d.GetTwin(id)
	if err != nil {
		return nil, err
	}
	return json.Marshal(t)
}

func (d consoleDevices) PatchTwinJSON(ctx context.Context, id string, patch []byte, ifMatch string) ([]byte, error) {
	t, err := d.PatchTwin(ctx, id, patch, ifMatch)
	if err != nil {
		return nil, err
	}
	return json.Marshal(t)
}

func (d consoleDevices) InvokeMethod(ctx context.Context, id string, req iothub.MethodRequest) (iothub.MethodResult, error) {
	return d.methods.InvokeMethod(ctx, id, req)
}

// consoleC2D sends the console's cloud-to-device messages to the queues.
type consoleC2D struct{ q *c2d.Queues }

func (c consoleC2D) SendC2D(id string, m console.C2DMessage) (string, int, error) {
	msg := c2d.Message{MessageID: m.MessageID, CorrelationID: m.CorrelationID, Body: []byte(m.Data),
		TTL: time.Duration(min(m.TTLSeconds, int64(iothub.MaxC2DTTL/time.Second))) * time.Second}
	for _, k := range slices.Sorted(maps.Keys(m.Properties)) {
		msg.Properties = append(msg.Properties, iothub.Property{Key: k, Value: m.Properties[k]})
	}
	sent, err := c.q.Send(id, msg)
	return sent.MessageID, sent.Queued, err
}

// consoleCounters reads the counters /metrics exports for the console.
type consoleCounters struct {
	b *broker.Server
	r *registry.Registry
	m *metrics.Metrics
}

func (c consoleCounters) Totals() console.Totals {
	bs := c.b.Stats()
	return console.Totals{
		Devices: c.r.Statistics().TotalDeviceCount, Connected: c.r.ConnectedCount(),
		MessagesIn: bs.MessagesIn, MessagesOut: bs.MessagesOut,
		MethodCalls: c.m.MethodCallsTotal(), JobOps: c.m.JobOperationsTotal(),
	}
}

// consolePolicies are the shared access policies as the console checks a
// sign-in: reading needs RegistryRead or ServiceConnect, changing needs
// ServiceConnect (twins, methods and jobs are service endpoints).
func consolePolicies(ps []restapi.Policy) []console.Policy {
	out := make([]console.Policy, 0, len(ps))
	for _, p := range ps {
		out = append(out, console.Policy{
			Name: p.Name, Keys: [][]byte{p.PrimaryKey, p.SecondaryKey},
			Read:  p.Rights&(restapi.RegistryRead|restapi.ServiceConnect) != 0,
			Write: p.Rights.Has(restapi.ServiceConnect),
		})
	}
	return out
}

// deviceEvents hands the broker's device events to the registry and then to
// the cloud-to-device queues, which deliver on connect and subscribe.
type deviceEvents struct {
	broker.Hub
	c2d *c2d.Queues
}

func (e deviceEvents) DeviceConnected(id string, filters []string) {
	e.Hub.DeviceConnected(id, filters)
	e.c2d.DeviceConnected(id, filters)
}

func (e deviceEvents) DeviceDisconnected(id string) {
	e.Hub.DeviceDisconnected(id)
	e.c2d.DeviceDisconnected(id)
}

func (e deviceEvents) DeviceSubscriptions(id string, filters []string) {
	e.Hub.DeviceSubscriptions(id, filters)
	e.c2d.DeviceSubscriptions(id, filters)
}

// c2dDevices tells the cloud-to-device queues which devices the registry holds.
type c2dDevices struct{ r *registry.Registry }

func (d c2dDevices) DeviceExists(id string) bool {
	_, err := d.r.GetDevice(id)
	return err == nil
}

// identities adapts the registry to the broker's Identities interface.
type identities struct{ r *registry.Registry }

func (i identities) DeviceCredentials(id string) (broker.Credentials, error) {
	a, err := i.r.Authentication(id)
	if errors.Is(err, registry.ErrDeviceNotFound) {
		return broker.Credentials{}, fmt.Errorf("%w: %s", broker.ErrUnknownDevice, id)
	}
	if err != nil {
		return broker.Credentials{}, err
	}
	return brokerCredentials(a), nil
}

// ModuleCredentials adapts the registry's module keys to the broker's
// ModuleIdentities.
func (i identities) ModuleCredentials(deviceID, moduleID string) (broker.Credentials, error) {
	a, err := i.r.ModuleAuthentication(deviceID, moduleID)
	var e *iothub.Error
	switch {
	case errors.Is(err, registry.ErrDeviceNotFound):
		return broker.Credentials{}, fmt.Errorf("%w: %s", broker.ErrUnknownDevice, deviceID)
	case errors.As(err, &e) && e.Code == iothub.CodeModuleNotFound:
		return broker.Credentials{}, fmt.Errorf("%w: %s/%s", broker.ErrUnknownModule, deviceID, moduleID)
	case err != nil:
		return broker.Credentials{}, err
	}
	return brokerCredentials(a), nil
}

// policyKeys adapts the shared access policies to the broker's Policies.
type policyKeys []restapi.Policy

func (ps policyKeys) PolicyCredentials(name string) (broker.PolicyCredentials, error) {
	for _, p := range ps {
		if p.Name == name {
			return broker.PolicyCredentials{PrimaryKey: p.PrimaryKey, SecondaryKey: p.SecondaryKey, DeviceConnect: p.Rights.Has(restapi.DeviceConnect)}, nil
		}
	}
	return broker.PolicyCredentials{}, fmt.Errorf("%w: %s", broker.ErrUnknownPolicy, name)
}

// New opens the stores and builds every part; Run starts them.
func New(opts Config) (h *Hub, err error) {
	if opts.Hostname == "" {
		opts.Hostname = "localhost"
	}
	if opts.Pacing == "" {
		opts.Pacing = "unlimited"
	}
	s := &Hub{opts: opts, ready: make(chan struct{})}
	defer func() {
		if err != nil {
			s.close()
		}
	}()
	dir := opts.DataDir
	if dir == "" {
		if s.tmpDir, err = os.MkdirTemp("", "fleetsim-"); err != nil {
			return nil, fmt.Errorf("temporary data directory: %w", err)
		}
		dir = s.tmpDir
	} else if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("data directory %s: %w", dir, err)
	}
	if opts.CACertFile != "" || opts.CAKeyFile != "" {
		s.certs, err = tlsutil.EnsureCertsWithCA(filepath.Join(dir, "tls"), opts.CACertFile, opts.CAKeyFile, opts.Hostname)
	} else {
		s.certs, err = tlsutil.EnsureCerts(filepath.Join(dir, "tls"), opts.Hostname)
	}
	if err != nil {
		return nil, fmt.Errorf("certificates: %w", err)
	}
	if s.tlsConf, err = tlsutil.ServerConfig(s.certs); err != nil {
		return nil, fmt.Errorf("certificates: %w", err)
	}
	log := opts.Logger
	s.Metrics = metrics.New()
	s.Events = events.New(events.Options{})

	var persist registry.Persistence
	var jstore jobs.Store
	if opts.DataDir != "" {
		if s.regStore, err = regstore.Open(filepath.Join(dir, "registry.db")); err != nil {
			return nil, err
		}
		persist = s.Metrics.RegistryStore(s.regStore)
		if s.jobStore, err = jobstore.Open(filepath.Join(dir, "jobs.db")); err != nil {
			return nil, err
		}
		jstore = s.Metrics.JobStore(s.jobStore)
		if s.c2dStore, err = c2dstore.Open(filepath.Join(dir, "c2d.db")); err != nil {
			return nil, err
		}
	}
	// The registry sends to devices through the broker, which is built
	// after it (it calls the registry); link is filled in below, before
	// anything runs.
	link := &brokerLink{}
	if s.Registry, err = registry.New(registry.Options{Hostname: opts.Hostname, Store: persist, Link: link, Logger: log.With().Str("component", "registry").Logger()}); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	if s.policies, err = loadPolicies(dir, opts.DataDir != "", opts.OwnerKey); err != nil {
		return nil, err
	}
	trusted, err := loadTrustedCAs(opts.DataDir, opts.TrustedCAFiles)
	if err != nil {
		return nil, err
	}
	c2dCfg := c2d.Config{Devices: c2dDevices{s.Registry}, Logger: log.With().Str("component", "c2d").Logger()}
	if s.c2dStore != nil {
		c2dCfg.Store = s.c2dStore
	}
	if s.C2D, err = c2d.New(c2dCfg); err != nil {
		return nil, fmt.Errorf("cloud-to-device queues: %w", err)
	}
	if s.Broker, err = broker.New(broker.Config{
		TrustedCAs: trusted,
		Hostname:   opts.Hostname,
		Identities: identities{s.Registry},
		Modules:    identities{s.Registry},
		Policies:   policyKeys(s.policies),
		Hub:        deviceEvents{hubTap{s.Registry, s.Events}, s.C2D},
		Acks:       s.C2D,
		TLSAddr:    opts.MQTTAddr,
		TLSConfig:  s.tlsConf,
		Logger:     log.With().Str("component", "broker").Logger(),
	}); err != nil {
		return nil, fmt.Errorf("broker: %w", err)
	}
	link.DeviceLink = linkTap{s.Broker, s.Events}
	s.C2D.SetLink(s.Broker)
	profile, err := jobs.ParseProfile(opts.Pacing)
	if err != nil {
		return nil, err
	}
	if s.Jobs, err = jobs.NewEngine(jobs.Config{
		Store:       jstore,
		Methods:     s.Metrics.Methods("job", s.Registry),
		Twins:       s.Metrics.Twins(s.Registry),
		Devices:     s.Registry,
		Pacing:      profile,
		MaxInFlight: opts.MaxInFlight,
		Logger:      log.With().Str("component", "jobs").Logger(),
	}); err != nil {
		return nil, fmt.Errorf("jobs engine: %w", err)
	}
	var consoleRollouts console.Rollouts
	if opts.Rollouts != nil {
		if s.Rollouts, err = opts.Rollouts(s, filepath.Join(dir, "rollouts", "hub")); err != nil {
			return nil, fmt.Errorf("rollouts: %w", err)
		}
		consoleRollouts = s.Rollouts
	}
	if s.Console, err = console.New(console.Config{
		Hostname: opts.Hostname,
		Policies: consolePolicies(s.policies),
		Devices:  consoleDevices{s.Registry, s.Metrics.Methods("api", s.Registry)},
		Jobs:     s.Jobs,
		Counters: consoleCounters{s.Broker, s.Registry, s.Metrics},
		Rollouts: consoleRollouts,
		Events:   s.Events,
		C2D:      consoleC2D{s.C2D},
		Logger:   log.With().Str("component", "console").Logger(),
	}); err != nil {
		return nil, fmt.Errorf("console: %w", err)
	}
	if s.REST, err = restapi.New(restapi.Config{
		Hostname:   opts.Hostname,
		Policies:   s.policies,
		Devices:    s.Registry,
		Statistics: s.Registry,
		Twins:      s.Registry,
		Methods:    s.Metrics.Methods("api", s.Registry), // direct-method calls measured
		Queries:    s.Registry,
		Modules:    s.Registry,
		Jobs:       s.Jobs,
		C2D:        s.C2D,
		Settings:   hubSettings(profile, opts.MaxInFlight),
		Rollouts:   s.Rollouts,
		Events:     apiEvents{s.Events, s.Registry},
		Logger:     log.With().Str("component", "rest").Logger(),
		Extra: map[string]http.Handler{
			"/$iothub/websocket": s.Broker.WebSocketHandler(),
			"/metrics":           s.Metrics.Handler(),
			"/healthz":           http.HandlerFunc(s.healthz),
			"/":                  s.Console.Handler(),
			"/console/":          s.Console.Handler(),
		},
	}); err != nil {
		return nil, fmt.Errorf("REST API: %w", err)
	}
	s.Metrics.Watch(metrics.Sources{Broker: s.Broker, Devices: s.Registry, Jobs: s.Jobs})
	registerEventMetrics(s.Metrics.Registry(), s.Events)
	if opts.HTTPSAddr != "" {
		if s.httpsLn, err = net.Listen("tcp", opts.HTTPSAddr); err != nil {
			return nil, fmt.Errorf("REST listener: %w", err)
		}
	}
	return s, nil
}

// loadPolicies reads the shared access policies from dir/policies.json, or
// generates them on first start, and saves them when persist is set.
// ownerKey, when set, replaces the iothubowner policy's primary key.
func loadPolicies(dir string, persist bool, ownerKey string) ([]restapi.Policy, error) {
	var owner []byte
	if ownerKey != "" {
		var err error
		if owner, err = base64.StdEncoding.DecodeString(strings.TrimSpace(ownerKey)); err != nil || len(owner) < 16 {
			return nil, errors.New("owner key: want at least 16 bytes in base64, e.g. from: head -c 32 /dev/urandom | base64")
		}
	}
	path := filepath.Join(dir, "policies.json")
	var ps []restapi.Policy
	changed := false
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &ps); err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
	} else if ps, err = restapi.DefaultPolicies(); err != nil {
		return nil, err
	} else {
		changed = true
	}
	for i := range ps {
		if owner != nil && ps[i].Name == "iothubowner" && !bytes.Equal(ps[i].PrimaryKey, owner) {
			ps[i].PrimaryKey, changed = owner, true
		}
	}
	if persist && changed {
		b, _ := json.MarshalIndent(ps, "", "  ")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			return nil, fmt.Errorf("write %s: %w", path, err)
		}
	}
	return ps, nil
}

// Hostname is the hub's host name.
func (s *Hub) Hostname() string { return s.opts.Hostname }

// Ready is closed once every listener is up and Endpoints is filled in.
func (s *Hub) Ready() <-chan struct{} { return s.ready }

// healthz answers GET /healthz without authentication, for load balancers
// and scripts: 200 {"status":"ok"} once the hub is ready, 503
// {"status":"starting"} before. It says nothing else about the hub.
func (s *Hub) healthz(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	select {
	case <-s.ready:
		io.WriteString(w, `{"status":"ok"}`+"\n")
	default:
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, `{"status":"starting"}`+"\n")
	}
}

// Endpoints returns how to reach the hub; valid after Ready.
func (s *Hub) Endpoints() Endpoints {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.endpoints
}

// Run starts every part and blocks until ctx ends, then shuts them down in
// order and closes the stores. It can be called once.
func (s *Hub) Run(ctx context.Context) error {
	defer s.close()
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return s.Registry.Run(gctx) })
	g.Go(func() error { return s.Broker.Run(gctx) })
	g.Go(func() error { return s.Jobs.Run(gctx) })
	g.Go(func() error { return s.C2D.Run(gctx) })
	if s.httpsLn != nil {
		g.Go(func() error { return s.REST.Serve(gctx, s.httpsLn, s.tlsConf) })
		g.Go(func() error { return s.Console.Run(gctx) })
	}
	if s.Rollouts != nil {
		// The rollouts resume once the hub is up: their jobs need the engine
		// and the registry running.
		g.Go(func() error {
			select {
			case <-s.ready:
			case <-gctx.Done():
				return nil
			}
			return s.Rollouts.Run(gctx)
		})
	}
	g.Go(func() error {
		select {
		case <-s.Broker.Ready():
		case <-gctx.Done():
			return nil
		}
		owner := s.owner()
		ep := Endpoints{
			HostName:                s.opts.Hostname,
			ServiceConnectionString: restapi.ServiceConnectionString(s.opts.Hostname, owner),
			CAFile:                  s.certs.CAFile,
			MQTTAddr:                s.Broker.Addrs().TLS,
		}
		if s.httpsLn != nil {
			ep.HTTPSAddr = s.httpsLn.Addr().String()
			ep.ConsoleURL = consoleURL(s.opts.Hostname, s.httpsLn.Addr())
			ep.ConsoleLoginURL = strings.TrimSuffix(ep.ConsoleURL, "/") + s.Console.LoginURLPath()
		}
		s.mu.Lock()
		s.endpoints = ep
		s.mu.Unlock()
		if s.opts.DataDir != "" {
			b, _ := json.MarshalIndent(ep, "", "  ")
			if err := writeFileAtomic(filepath.Join(s.opts.DataDir, "connection.json"), b); err != nil {
				return fmt.Errorf("write connection.json: %w", err)
			}
		}
		close(s.ready)
		return nil
	})
	err := g.Wait()
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		err = nil
	}
	return err
}

// consoleURL is the console's address: the hub's host name (which the
// certificate names) and the listener's port.
func consoleURL(host string, addr net.Addr) string {
	_, port, err := net.SplitHostPort(addr.String())
	if err != nil {
		return ""
	}
	return "https://" + net.JoinHostPort(host, port) + "/"
}

func (s *Hub) owner() restapi.Policy {
	for _, p := range s.policies {
		if p.Name == "iothubowner" {
			return p
		}
	}
	return s.policies[0]
}

// close releases the stores and the temporary directory.
func (s *Hub) close() {
	if s.Registry != nil {
		s.Registry.Close()
	}
	if s.regStore != nil {
		s.regStore.Close()
	}
	if s.jobStore != nil {
		s.jobStore.Close()
	}
	if s.c2dStore != nil {
		s.c2dStore.Close()
	}
	if s.httpsLn != nil {
		s.httpsLn.Close()
	}
	if s.tmpDir != "" {
		os.RemoveAll(s.tmpDir)
	}
}

// brokerLink is the registry's DeviceLink: the broker (with the event
// stream's tap), set once it is built, before the hub runs.
type brokerLink struct{ registry.DeviceLink }

// writeFileAtomic writes data to path through a temporary file renamed over
// it, so a client that reads path (the client commands, a shard waiting for
// a restarted hub) never sees it half written.
func writeFileAtomic(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // after a successful rename, there is nothing to remove
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
