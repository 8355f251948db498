// Package broker is fleetsim's embedded MQTT broker: mochi-mqtt speaking Azure
// IoT Hub's device dialect. It authenticates devices by SAS token, keeps each
// device's traffic to itself, hands what devices send to the hub through the
// Hub interface, and delivers what the hub sends to one device's connection
// only. It knows nothing of jobs, twins or the REST API.
package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/rs/zerolog"

	"github.com/fleetsim/fleetsim/internal/iothub"
	"github.com/fleetsim/fleetsim/internal/memnet"
)

// Errors callers branch on.
var (
	// ErrUnknownDevice is returned (wrapped) by Identities for a device that is not registered.
	ErrUnknownDevice = errors.New("unknown device")
	// ErrUnknownPolicy is returned (wrapped) by Policies for a policy name the hub does not have.
	ErrUnknownPolicy = errors.New("unknown shared access policy")
	// ErrNotConnected is returned (wrapped) by Deliver when the device has no live connection.
	ErrNotConnected = errors.New("device not connected")
	// ErrQueueFull is returned (wrapped) by Deliver when the device already has
	// MaxPendingWrites messages waiting: it reads too slowly and the message is dropped.
	ErrQueueFull = errors.New("device outbound queue full")
)

// Identities gives device credentials; the hub's registry implements it.
// DeviceCredentials is called on the connecting device's goroutine and must not do I/O.
type Identities interface {
	// DeviceCredentials returns the device's keys and whether it is enabled,
	// or an error wrapping ErrUnknownDevice.
	DeviceCredentials(deviceID string) (Credentials, error)
}

// Credentials are how a device authenticates and its status: symmetric keys
// (raw, base64-decoded) for a SAS device, thumbprints for a self-signed one.
type Credentials struct {
	PrimaryKey, SecondaryKey []byte
	Enabled                  bool
	// Auth is how the device authenticates; the zero value is SAS.
	Auth AuthType
	// Thumbprints are a self-signed device's certificate thumbprints, hex
	// SHA-1 or SHA-256 in any case; empty ones are ignored.
	Thumbprints []string
}

// Policies gives the hub's shared access policies, for device tokens signed
// with a policy key (skn set) rather than the device's own: IoT Hub accepts
// them for any device when the policy grants DeviceConnect. It is called on
// the connecting device's goroutine and must not do I/O.
type Policies interface {
	// PolicyCredentials returns the named policy's keys and whether it
	// grants DeviceConnect, or an error wrapping ErrUnknownPolicy.
	PolicyCredentials(name string) (PolicyCredentials, error)
}

// PolicyCredentials are a shared access policy's keys (raw, base64-decoded)
// and whether it grants DeviceConnect.
type PolicyCredentials struct {
	PrimaryKey, SecondaryKey []byte
	DeviceConnect            bool
}

// Hub receives what devices send to the hub and their connection events. A
// deviceID here is the connection's identity: a device id, or
// "deviceId/moduleId" for a module (see identity.go). Every
// method is called on the device's own connection goroutine: it must not do
// I/O or wait for the broker, and may wait only briefly, to hold a device back
// that sends faster than the hub keeps up (back-pressure on that device
// alone). It may call the Server's Deliver, Connected, Subscribed and
// Disconnect (no broker lock is held). Events of one device arrive in order; a
// takeover may report DeviceConnected for a device that is already connected.
type Hub interface {
	// DevicePublished is a publish on a hub-terminated topic, already checked
	// against the device dialect and its size limit. The payload is the hub's
	// to keep. A retained telemetry message carries mqtt-retain=true in
	// topic.Properties (docs/iothub.md §1.4); a device's Will arrives as telemetry.
	DevicePublished(deviceID string, topic iothub.DeviceTopic, payload []byte)
	// DeviceConnected follows an accepted CONNECT (its CONNACK is sent).
	// filters are the subscriptions the session holds from the start: those
	// of a persistent session it resumed, none for a new one.
	DeviceConnected(deviceID string, filters []string)
	// DeviceDisconnected follows the end of the device's live connection
	// (not of one that a newer connection took over).
	DeviceDisconnected(deviceID string)
	// DeviceSubscriptions follows a SUBSCRIBE that was granted a filter, or an
	// UNSUBSCRIBE, on the device's live connection: filters are all the
	// subscriptions its session now holds. With DeviceConnected it is all the
	// hub needs to know which filters a device holds; it never asks.
	DeviceSubscriptions(deviceID string, filters []string)
}

// Acks hears devices' PUBACKs of the QoS 1 messages the hub sent with
// DeliverQoS1. It is called on the device's own connection goroutine, like
// Hub's methods, and must not do I/O; it may call the Server's Deliver and
// DeliverQoS1.
type Acks interface {
	// DeviceAcked reports the PUBACK of packetID on deviceID's live connection.
	DeviceAcked(deviceID string, packetID uint16)
}

// Config configures a Server.
type Config struct {
	// Hostname is the hub host name devices sign their SAS tokens for (compared case-insensitively).
	Hostname string
	// Identities gives device keys; required.
	Identities Identities
	// Modules gives module keys (broker/identity.go); nil refuses every
	// module connection.
	Modules ModuleIdentities
	// Policies gives shared access policy keys for device tokens with skn;
	// nil refuses such tokens.
	Policies Policies
	// Hub receives device messages and events; nil drops them.
	Hub Hub
	// Acks hears the PUBACKs of messages sent with DeliverQoS1; nil drops them.
	Acks Acks
	// TrustedCAs are the CAs that sign the certificates of certificateAuthority
	// devices; nil trusts none.
	TrustedCAs *x509.CertPool
	// TLSAddr is MQTT over TLS (IoT Hub's 8883, e.g. ":8883"); "" means off.
	TLSAddr string
	// TLSConfig is required for TLSAddr and WSAddr.
	TLSConfig *tls.Config
	// WSAddr is an own HTTPS listener for MQTT over WebSocket at /$iothub/websocket; "" means off
	// (the REST server can mount WebSocketHandler instead).
	WSAddr string
	// TCPAddr is plain MQTT for debugging; off by default and refused unless on loopback.
	TCPAddr string
	// MaxPendingWrites bounds each connection's outbound queue (default 64;
	// mochi's own default of 8,192 allocates a 64 KiB queue for every connection).
	MaxPendingWrites int
	// Logger receives the broker's logs; default zerolog.Nop().
	Logger zerolog.Logger
}

// Addrs are the bound listener addresses ("" when a listener is off).
type Addrs struct {
	TLS, WS, TCP string
}

// Stats are counters of the broker's life so far.
type Stats struct {
	Connected        int64 // live device connections
	Connects         int64 // accepted CONNECTs
	RejectedConnects int64 // refused CONNECTs (bad credentials, disabled, malformed)
	Disconnects      int64 // ends of live connections
	Violations       int64 // connections closed for breaking IoT Hub's rules
	TokensExpired    int64 // connections closed when the SAS token they connected with expired
	MessagesIn       int64 // device publishes handed to the hub
	MessagesOut      int64 // hub messages queued for devices' connections, which write them in order
	DeliverFailures  int64 // Deliver to a device that was not connected
	QueueDropped     int64 // hub messages refused because the connection's write queue was full
	MessagesDropped  int64 // mochi: dropped to a full outbound queue
	InflightDropped  int64 // mochi: QoS 1 dropped over the in-flight limit
}

// Server is the embedded broker. Create it with New and start it with Run.
type Server struct {
	cfg   Config
	mochi *mqtt.Server
	log   zerolog.Logger

	mem       *memnet.Listener
	memTLS    *memnet.Listener // in-process with TLS, for X.509 devices; nil without TLSConfig
	trusted   atomic.Pointer[x509.CertPool]
	ws        *chanListener
	tlsLn     net.Listener
	wsLn      net.Listener
	tcpLn     net.Listener
	wsServer  *http.Server
	listeners []*mqttListener

	devices  sync.Map       // device id → *device
	expiries *expiries      // when each live connection's SAS token expires
	open     sync.Map       // net.Conn → struct{}: accepted connections not yet ended
	connWG   sync.WaitGroup // one per accepted connection
	closing  atomic.Bool

	ready chan struct{}
	ran   atomic.Bool

	connects, rejected, disconnects, in, out, deliverFail, queueDropped, violations, expired atomic.Int64
}

// New builds a Server and binds its listeners, so Addrs is valid at once;
// Run serves them and releases them when its context ends.
func New(cfg Config) (*Server, error) {
	if mochiInternalsErr != nil {
		return nil, mochiInternalsErr
	}
	if cfg.Identities == nil {
		return nil, errors.New("broker: Identities is required")
	}
	if cfg.Hostname == "" {
		return nil, errors.New("broker: Hostname is required")
	}
	if cfg.MaxPendingWrites <= 0 {
		cfg.MaxPendingWrites = 64
	}
	if (cfg.TLSAddr != "" || cfg.WSAddr != "") && cfg.TLSConfig == nil {
		return nil, errors.New("broker: TLSConfig is required for the TLS and WebSocket listeners")
	}
	if cfg.TCPAddr != "" {
		if err := requireLoopback(cfg.TCPAddr); err != nil {
			return nil, err
		}
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = int32(cfg.MaxPendingWrites)
	caps.MaximumQos = 1      // docs/iothub.md §1.4: QoS 2 subscriptions are granted QoS 1
	caps.RetainAvailable = 0 // docs/iothub.md §1.4: RETAIN is never stored
	// The largest legal packet is telemetry: 256 KB of payload plus topic and
	// header. The per-kind limits are checked in the hook.
	caps.MaximumPacketSize = iothub.MaxTelemetryBytes + 16*1024
	caps.MaximumInflight = 1024
	caps.ReceiveMaximum = 256
	caps.MinimumProtocolVersion = 4 // MQTT 3.1.1 only (docs/iothub.md §1.2)
	caps.SharedSubAvailable = 0
	caps.SubIDAvailable = 0
	caps.TopicAliasMaximum = 0
	caps.WildcardSubAvailable = 1
	s := &Server{
		cfg:   cfg,
		log:   cfg.Logger,
		mem:   memnet.Listen("fleetsim-inprocess"),
		ws:    newChanListener("websocket"),
		ready: make(chan struct{}),

		expiries: newExpiries(),
	}
	s.trusted.Store(cfg.TrustedCAs)
	s.mochi = mqtt.New(&mqtt.Options{
		Capabilities: caps,
		// Small per-connection buffers: a device's packets are small and an idle
		// connection should cost little, since a fleet is mostly idle connections.
		ClientNetWriteBufferSize: 1024,
		ClientNetReadBufferSize:  256,
		// Hub messages are written to the device's connection directly
		// (Deliver), so neither the inline client nor $SYS topics are needed.
		// Mochi cannot turn $SYS off (0 means every second), so it is pushed
		// out of reach; see dropRetained for why that matters.
		InlineClient:           false,
		SysTopicResendInterval: sysTopicInterval,
		Logger:                 slog.New(slog.DiscardHandler),
	})
	if err := stretchSweeps(s.mochi, sweepInterval); err != nil {
		return nil, err
	}
	if err := s.mochi.AddHook(&hook{s: s}, nil); err != nil {
		return nil, fmt.Errorf("broker: add hook: %w", err)
	}
	if err := s.bind(); err != nil {
		s.closeListeners()
		return nil, err
	}
	return s, nil
}

// bind opens the configured listeners and hands them to mochi.
func (s *Server) bind() error {
	cfg := s.cfg
	add := func(id string, ln net.Listener) error {
		l := newMQTTListener(s, id, ln)
		s.listeners = append(s.listeners, l)
		if err := s.mochi.AddListener(l); err != nil {
			return fmt.Errorf("broker: %s listener: %w", id, err)
		}
		return nil
	}
	if err := add("inprocess", s.mem); err != nil {
		return err
	}
	if err := add("websocket", s.ws); err != nil {
		return err
	}
	if cfg.TLSConfig != nil {
		s.memTLS = memnet.Listen("fleetsim-inprocess-tls")
		if err := add("inprocess-tls", &memTLSListener{Listener: s.memTLS, cfg: cfg.TLSConfig}); err != nil {
			return err
		}
	}
	var err error
	if cfg.TLSAddr != "" {
		if s.tlsLn, err = tls.Listen("tcp", cfg.TLSAddr, cfg.TLSConfig); err != nil {
			return fmt.Errorf("broker: MQTT over TLS on %s: %w", cfg.TLSAddr, err)
		}
		if err := add("tls", s.tlsLn); err != nil {
			return err
		}
	}
	if cfg.TCPAddr != "" {
		if s.tcpLn, err = net.Listen("tcp", cfg.TCPAddr); err != nil {
			return fmt.Errorf("broker: plain MQTT on %s: %w", cfg.TCPAddr, err)
		}
		if err := add("tcp", s.tcpLn); err != nil {
			return err
		}
	}
	if cfg.WSAddr != "" {
		if s.wsLn, err = tls.Listen("tcp", cfg.WSAddr, cfg.TLSConfig); err != nil {
			return fmt.Errorf("broker: MQTT over WebSocket on %s: %w", cfg.WSAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle(WebSocketPath, s.WebSocketHandler())
		s.wsServer = &http.Server{Handler: mux, ReadHeaderTimeout: connectTimeout}
	}
	return nil
}

// requireLoopback refuses a plain-MQTT address that is not on loopback.
func requireLoopback(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("broker: TCP address %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("broker: plain MQTT (no TLS) listens on loopback only, not %q", addr)
	}
	return nil
}

// Run serves until ctx ends, then closes the listeners and every connection
// and returns once every goroutine it started has ended. It may be called once.
func (s *Server) Run(ctx context.Context) error {
	if !s.ran.CompareAndSwap(false, true) {
		return errors.New("broker: Run called twice")
	}
	if err := s.mochi.Serve(); err != nil { // starts each listener's Serve and returns
		s.closeListeners()
		return fmt.Errorf("broker: serve: %w", err)
	}
	dropRetained(s.mochi)
	var wg sync.WaitGroup
	wg.Go(func() { s.runExpiries(ctx) })
	if s.wsServer != nil {
		wg.Go(func() {
			if err := s.wsServer.Serve(s.wsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error().Err(err).Msg("websocket listener stopped")
			}
		})
	}
	close(s.ready)
	<-ctx.Done()

	s.closing.Store(true)
	if s.wsServer != nil {
		s.wsServer.Close()
	}
	wg.Wait()
	s.closeListeners()
	for _, l := range s.listeners {
		<-l.served // no connWG.Add after this
	}
	s.open.Range(func(c, _ any) bool {
		c.(net.Conn).Close()
		return true
	})
	s.connWG.Wait()
	s.mochi.Close() // stops mochi's event loop; its clients are gone already
	return nil
}

func (s *Server) closeListeners() {
	for _, l := range s.listeners {
		l.close()
	}
	for _, l := range []net.Listener{s.tlsLn, s.wsLn, s.tcpLn, s.mem, s.ws} {
		if l != nil {
			l.Close()
		}
	}
	if s.memTLS != nil {
		s.memTLS.Close()
	}
}

// Ready is closed once Run has started the listeners.
func (s *Server) Ready() <-chan struct{} { return s.ready }

// Addrs returns the bound listener addresses.
func (s *Server) Addrs() Addrs {
	var a Addrs
	if s.tlsLn != nil {
		a.TLS = s.tlsLn.Addr().String()
	}
	if s.wsLn != nil {
		a.WS = s.wsLn.Addr().String()
	}
	if s.tcpLn != nil {
		a.TCP = s.tcpLn.Addr().String()
	}
	return a
}

// DialMemory opens an in-process connection to the broker: full MQTT framing
// over an in-memory pipe, no sockets. It fails once the server has stopped.
func (s *Server) DialMemory(ctx context.Context) (net.Conn, error) {
	c, err := s.mem.Dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("broker: dial in-process: %w", err)
	}
	return c, nil
}

var errDisconnectedByHub = errors.New("disconnected by the hub")

// Stats returns the broker's counters.
func (s *Server) Stats() Stats {
	info := s.mochi.Info
	return Stats{
		Connected:        atomic.LoadInt64(&info.ClientsConnected),
		Connects:         s.connects.Load(),
		RejectedConnects: s.rejected.Load(),
		Disconnects:      s.disconnects.Load(),
		MessagesIn:       s.in.Load(),
		MessagesOut:      s.out.Load(),
		DeliverFailures:  s.deliverFail.Load(),
		QueueDropped:     s.queueDropped.Load(),
		Violations:       s.violations.Load(),
		TokensExpired:    s.expired.Load(),
		MessagesDropped:  atomic.LoadInt64(&info.MessagesDropped),
		InflightDropped:  atomic.LoadInt64(&info.InflightDropped),
	}
}
