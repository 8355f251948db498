// Package broker is fleetsim's embedded MQTT broker: mochi-mqtt speaking Azure
// IoT Hub's device dialect. It authenticates devices by SAS token, keeps each
// device's traffic to itself, hands what devices send to the hub through the
// Hub interface, and delivers what the hub sends to one device's connection
// only. It knows nothing of jobs, twins or the REST API.
package broker

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"
	"github.com/rs/zerolog"

	"github.com/fleetsim/fleetsim/internal/clock"
	"github.com/fleetsim/fleetsim/internal/iothub"
	"github.com/fleetsim/fleetsim/internal/memnet"
)

// Errors callers branch on.
var (
	// ErrUnknownDevice is returned (wrapped) by Identities for a device that is not registered.
	ErrUnknownDevice = errors.New("unknown device")
	// ErrNotConnected is returned by Deliver when the device has no live connection.
	ErrNotConnected = errors.New("device not connected")
)

// Identities gives device credentials; the hub's registry implements it.
// DeviceCredentials is called on the connecting device's goroutine and must not do I/O.
type Identities interface {
	// DeviceCredentials returns the device's keys and whether it is enabled,
	// or an error wrapping ErrUnknownDevice.
	DeviceCredentials(deviceID string) (Credentials, error)
}

// Credentials are a device's symmetric keys (raw, base64-decoded) and status.
type Credentials struct {
	PrimaryKey, SecondaryKey []byte
	Enabled                  bool
}

// Hub receives what devices send to the hub and their connection events. Every
// method is called on the device's own connection goroutine: it must not block.
type Hub interface {
	DevicePublished(deviceID string, topic iothub.DeviceTopic, payload []byte)
	DeviceConnected(deviceID string)
	DeviceDisconnected(deviceID string)
	DeviceSubscribed(deviceID, filter string)
}

// Config configures a Server.
type Config struct {
	// Hostname is the hub host name devices sign their SAS tokens for (compared case-insensitively).
	Hostname   string
	Identities Identities
	// Hub receives device messages and events; nil drops them.
	Hub Hub
	// TLSAddr is MQTT over TLS (IoT Hub's 8883); "" means off.
	TLSAddr string
	// TLSConfig is required for TLSAddr and WSAddr.
	TLSConfig *tls.Config
	// WSAddr is an own HTTPS listener for MQTT over WebSocket at /$iothub/websocket; "" means off
	// (the REST server can mount WebSocketHandler instead).
	WSAddr string
	// TCPAddr is plain MQTT for debugging; off by default and refused unless on loopback.
	TCPAddr string
	// MaxPendingWrites is mochi's per-client outbound queue (default 64; mochi's own default of 8,192 costs 64 KiB a connection).
	MaxPendingWrites int
	Logger           zerolog.Logger
	Clock            clock.Clock
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
	Disconnects      int64
	MessagesIn       int64 // device publishes handed to the hub
	MessagesOut      int64 // hub messages delivered to devices
	DeliverFailures  int64 // deliveries to a device that was not connected
	Violations       int64 // connections closed for breaking IoT Hub's rules
	MessagesDropped  int64 // mochi: dropped to a full outbound queue
	InflightDropped  int64 // mochi: QoS 1 dropped over the in-flight limit
}

// Server is the embedded broker. Create it with New and start it with Run.
type Server struct {
	cfg   Config
	mochi *mqtt.Server
	log   zerolog.Logger
	mem   *memnet.Listener
	ws    *connListener

	// conns maps device id → the *mqtt.Client of its live (or last) connection.
	conns sync.Map

	tlsLn, wsLn, tcpLn net.Listener
	wsServer           *http.Server

	ready                                                             chan struct{}
	ran                                                               atomic.Bool
	connects, rejected, disconnects, in, out, deliverFail, violations atomic.Int64
}

// New builds a Server and binds its listeners (so Addrs is valid at once).
func New(cfg Config) (*Server, error) {
	if cfg.Identities == nil {
		return nil, errors.New("broker: Identities is required")
	}
	if cfg.Hostname == "" {
		return nil, errors.New("broker: Hostname is required")
	}
	if cfg.MaxPendingWrites <= 0 {
		cfg.MaxPendingWrites = 64
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real
	}
	if (cfg.TLSAddr != "" || cfg.WSAddr != "") && cfg.TLSConfig == nil {
		return nil, errors.New("broker: TLSConfig is required for the TLS and WebSocket listeners")
	}
	caps := mqtt.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = int32(cfg.MaxPendingWrites)
	caps.MaximumQos = 1 // iothub.md §1.4: QoS 2 subscriptions are granted QoS 1
	caps.RetainAvailable = 0
	caps.MaximumPacketSize = iothub.MaxTelemetryBytes + 64*1024
	caps.MaximumInflight = 1024
	caps.ReceiveMaximum = 256
	caps.MinimumProtocolVersion = 4
	caps.SharedSubAvailable = 0
	caps.SubIDAvailable = 0
	caps.TopicAliasMaximum = 0
	s := &Server{
		cfg:   cfg,
		log:   cfg.Logger,
		mem:   memnet.Listen("fleetsim-inprocess"),
		ws:    newConnListener("websocket"),
		ready: make(chan struct{}),
	}
	s.mochi = mqtt.New(&mqtt.Options{
		Capabilities:             caps,
		ClientNetWriteBufferSize: 1024,
		ClientNetReadBufferSize:  1024,
		InlineClient:             false,
		SysTopicResendInterval:   0,
		Logger:                   slog.New(slog.DiscardHandler),
	})
	if err := s.mochi.AddHook(&hook{s: s}, nil); err != nil {
		return nil, fmt.Errorf("broker: add hook: %w", err)
	}
	var err error
	defer func() {
		if err != nil {
			s.closeListeners()
		}
	}()
	if err = s.mochi.AddListener(listeners.NewNet("inprocess", s.mem)); err != nil {
		return nil, fmt.Errorf("broker: in-process listener: %w", err)
	}
	if err = s.mochi.AddListener(listeners.NewNet("websocket", s.ws)); err != nil {
		return nil, fmt.Errorf("broker: websocket listener: %w", err)
	}
	if cfg.TLSAddr != "" {
		if s.tlsLn, err = tls.Listen("tcp", cfg.TLSAddr, cfg.TLSConfig); err != nil {
			return nil, fmt.Errorf("broker: MQTT over TLS on %s: %w", cfg.TLSAddr, err)
		}
		if err = s.mochi.AddListener(listeners.NewNet("tls", s.tlsLn)); err != nil {
			return nil, fmt.Errorf("broker: TLS listener: %w", err)
		}
	}
	if cfg.TCPAddr != "" {
		if err = requireLoopback(cfg.TCPAddr); err != nil {
			return nil, err
		}
		if s.tcpLn, err = net.Listen("tcp", cfg.TCPAddr); err != nil {
			return nil, fmt.Errorf("broker: plain MQTT on %s: %w", cfg.TCPAddr, err)
		}
		if err = s.mochi.AddListener(listeners.NewNet("tcp", s.tcpLn)); err != nil {
			return nil, fmt.Errorf("broker: TCP listener: %w", err)
		}
	}
	if cfg.WSAddr != "" {
		if s.wsLn, err = tls.Listen("tcp", cfg.WSAddr, cfg.TLSConfig); err != nil {
			return nil, fmt.Errorf("broker: MQTT over WebSocket on %s: %w", cfg.WSAddr, err)
		}
		mux := http.NewServeMux()
		mux.Handle(WebSocketPath, s.WebSocketHandler())
		s.wsServer = &http.Server{Handler: mux}
	}
	return s, nil
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

// Run serves until ctx ends, then disconnects every client, closes the
// listeners and waits for every connection goroutine to end.
func (s *Server) Run(ctx context.Context) error {
	if !s.ran.CompareAndSwap(false, true) {
		return errors.New("broker: Run called twice")
	}
	if err := s.mochi.Serve(); err != nil {
		s.closeListeners()
		return fmt.Errorf("broker: serve: %w", err)
	}
	var wg sync.WaitGroup
	if s.wsServer != nil {
		wg.Go(func() {
			if err := s.wsServer.Serve(s.wsLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
				s.log.Error().Err(err).Msg("websocket listener stopped")
			}
		})
	}
	close(s.ready)
	<-ctx.Done()
	if s.wsServer != nil {
		s.wsServer.Close()
	}
	s.ws.Close()
	s.mochi.Close()
	s.mochi.Listeners.ClientsWg.Wait()
	wg.Wait()
	return nil
}

func (s *Server) closeListeners() {
	for _, l := range []net.Listener{s.tlsLn, s.wsLn, s.tcpLn} {
		if l != nil {
			l.Close()
		}
	}
	s.mem.Close()
	s.ws.Close()
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
// over an in-memory pipe, no sockets.
func (s *Server) DialMemory(ctx context.Context) (net.Conn, error) { return s.mem.Dial(ctx) }

// client returns the device's current live connection, if any.
func (s *Server) client(deviceID string) *mqtt.Client {
	v, ok := s.conns.Load(deviceID)
	if !ok {
		return nil
	}
	cl := v.(*mqtt.Client)
	if cl.Closed() {
		return nil
	}
	return cl
}

// Deliver sends a hub message to that device's connection only, at QoS 0
// (iothub.md §1.4: the hub sends methods, twin responses and desired patches
// at QoS 0). It never passes through the topic tree, so no other client can see it.
func (s *Server) Deliver(deviceID, topic string, payload []byte) error {
	cl := s.client(deviceID)
	if cl == nil {
		s.deliverFail.Add(1)
		return fmt.Errorf("%w: %s", ErrNotConnected, deviceID)
	}
	pk := packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   topic,
		Payload:     payload,
	}
	if err := cl.WritePacket(pk); err != nil {
		s.deliverFail.Add(1)
		return fmt.Errorf("%w: %s: %v", ErrNotConnected, deviceID, err)
	}
	s.out.Add(1)
	return nil
}

// Connected reports whether the device has a live connection.
func (s *Server) Connected(deviceID string) bool { return s.client(deviceID) != nil }

// Subscribed reports whether the device has a live connection whose session holds filter.
func (s *Server) Subscribed(deviceID, filter string) bool {
	cl := s.client(deviceID)
	if cl == nil {
		return false
	}
	_, ok := cl.State.Subscriptions.Get(filter)
	return ok
}

// Disconnect closes the device's connection, if any (device disabled or deleted).
func (s *Server) Disconnect(deviceID string) {
	if cl := s.client(deviceID); cl != nil {
		cl.Stop(errDisconnectedByHub) // MQTT 3.1.1 has no server DISCONNECT: close the connection
	}
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
		Violations:       s.violations.Load(),
		MessagesDropped:  atomic.LoadInt64(&info.MessagesDropped),
		InflightDropped:  atomic.LoadInt64(&info.InflightDropped),
	}
}
