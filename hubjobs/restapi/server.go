package restapi

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"path"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// Defaults of Config.
const (
	DefaultMaxBodyBytes      = 1 << 20
	DefaultShutdownTimeout   = 5 * time.Second
	DefaultReadHeaderTimeout = 30 * time.Second
	DefaultBodyReadTimeout   = 30 * time.Second
	// MaxHeaderBytes caps a request's header block: a SAS token and the
	// SDKs' headers fit many times over.
	MaxHeaderBytes = 64 << 10
)

const jsonContentType = "application/json; charset=utf-8"

// Config configures a Server.
type Config struct {
	// Hostname is the hub host name service tokens must be signed for (sr).
	Hostname string
	// Policies are the shared access policies; names must be unique.
	Policies []Policy
	// Devices serves the identity registry (/devices). Required.
	Devices Devices
	// Statistics serves the registry and service statistics. Required.
	Statistics Statistics
	// Twins serves device twins. Required.
	Twins Twins
	// Methods serves device direct methods. Required.
	Methods Methods
	// Queries serves queries of the devices collection. Required.
	Queries DeviceQueries
	// Modules serves module identities, module twins and module methods;
	// when nil those endpoints are not served.
	Modules Modules
	// Jobs serves Jobs v2 and devices.jobs queries. When nil those endpoints
	// answer 503 ServiceUnavailable.
	Jobs Jobs
	// Logger receives request logs (Debug) and server errors (Error).
	Logger zerolog.Logger
	// Extra serves other paths on the same listener without service auth,
	// e.g. "/$iothub/websocket" (the broker's MQTT over WebSocket) or
	// "/metrics". A key matches that exact path, or every path below it when
	// it ends in "/"; the key "/" matches the root path only.
	Extra map[string]http.Handler
	// C2D serves cloud-to-device queues at C2DPath; when nil those
	// endpoints are not served.
	C2D C2D
	// Settings, when set, are served at SettingsPath to service clients,
	// so remote runs read the hub's pacing and in-flight limit.
	Settings func() Settings
	// Rollouts, when set, runs rollouts on the hub, served at RolloutsPath;
	// when nil those endpoints answer 404.
	Rollouts Rollouts
	// Events, when set, serves device events at EventsPath.
	Events Events
	// MaxBodyBytes caps request bodies; larger ones get 413 (default 1 MiB).
	MaxBodyBytes int64
	// ShutdownTimeout bounds the graceful part of Serve's shutdown (default 5 s).
	ShutdownTimeout time.Duration
	// ReadHeaderTimeout bounds the TLS handshake and the request headers of
	// a new request (default 30 s).
	ReadHeaderTimeout time.Duration
	// BodyReadTimeout bounds reading a service request's body, from the end
	// of its headers (default 30 s). A request that is refused before its
	// body is read (bad token, say) is answered at once and its connection
	// closed, so its body is never waited for.
	BodyReadTimeout time.Duration
}

// Server is the service REST API. Its handler is safe for concurrent use and
// takes no lock of its own on the request path.
type Server struct {
	cfg      Config
	log      zerolog.Logger
	policies map[string]Policy
	mux      *http.ServeMux
	handler  http.Handler
	stopping chan struct{} // closed by stopStreams
	stopOnce sync.Once
}

// New checks cfg and builds the server's routes.
func New(cfg Config) (*Server, error) {
	if cfg.Hostname == "" {
		return nil, errors.New("restapi: Hostname is required")
	}
	if cfg.Devices == nil || cfg.Statistics == nil || cfg.Twins == nil || cfg.Methods == nil || cfg.Queries == nil {
		return nil, errors.New("restapi: Devices, Statistics, Twins, Methods and Queries are required")
	}
	if len(cfg.Policies) == 0 {
		return nil, errors.New("restapi: at least one shared access policy is required")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.ShutdownTimeout <= 0 {
		cfg.ShutdownTimeout = DefaultShutdownTimeout
	}
	if cfg.ReadHeaderTimeout <= 0 {
		cfg.ReadHeaderTimeout = DefaultReadHeaderTimeout
	}
	if cfg.BodyReadTimeout <= 0 {
		cfg.BodyReadTimeout = DefaultBodyReadTimeout
	}
	s := &Server{cfg: cfg, log: cfg.Logger, policies: map[string]Policy{}, mux: http.NewServeMux(), stopping: make(chan struct{})}
	for _, p := range cfg.Policies {
		if p.Name == "" {
			return nil, errors.New("restapi: a shared access policy has no name")
		}
		if _, dup := s.policies[p.Name]; dup {
			return nil, fmt.Errorf("restapi: shared access policy %q is defined twice", p.Name)
		}
		if len(p.PrimaryKey) == 0 && len(p.SecondaryKey) == 0 {
			return nil, fmt.Errorf("restapi: shared access policy %q has no key", p.Name)
		}
		s.policies[p.Name] = p
	}
	for k, h := range cfg.Extra {
		if !strings.HasPrefix(k, "/") || h == nil {
			return nil, fmt.Errorf("restapi: extra handler %q needs a path starting with / and a handler", k)
		}
	}
	s.routes()
	s.handler = http.HandlerFunc(s.serveHTTP)
	return s, nil
}

// Handler returns the HTTP handler: the Extra paths, then the service API.
func (s *Server) Handler() http.Handler { return s.handler }

// Serve serves HTTPS on ln (plain HTTP when tlsConfig is nil) until ctx ends,
// then shuts down gracefully for at most Config.ShutdownTimeout before
// closing the remaining connections and cancelling their requests. It
// speaks HTTP/1.1 with keep-alive, as the SDKs use it, and returns nil after
// a shutdown caused by ctx. It closes ln.
func (s *Server) Serve(ctx context.Context, ln net.Listener, tlsConfig *tls.Config) error {
	if tlsConfig != nil {
		tc := tlsConfig.Clone()
		// HTTP/1.1 only: the SDKs use it, and WebSocket upgrades need it.
		tc.NextProtos = []string{"http/1.1"}
		ln = tls.NewListener(ln, tc)
	}
	// Above TLS, where net/http's own error answers can still be read.
	ln = hubErrorListener{Listener: ln, s: s}
	base, cancelBase := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelBase()
	hs := &http.Server{
		Handler:           withTLSState(s.handler),
		ConnContext:       connContext,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		MaxHeaderBytes:    MaxHeaderBytes,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          log.New(debugWriter{s.log}, "", 0),
		BaseContext:       func(net.Listener) context.Context { return base },
	}
	hs.RegisterOnShutdown(s.stopStreams)
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve REST API on %s: %w", ln.Addr(), err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := hs.Shutdown(sctx); err != nil {
		s.log.Warn().Err(err).Msg("REST API: graceful shutdown timed out; closing connections")
		cancelBase()
		hs.Close()
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve REST API: %w", err)
	}
	return nil
}

// debugWriter sends net/http's own log lines (TLS handshake errors and the
// like) to the logger at Debug.
type debugWriter struct{ log zerolog.Logger }

func (w debugWriter) Write(p []byte) (int, error) {
	w.log.Debug().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}

// requestKey carries the request id in the request's context.
type requestKey struct{}

// serveHTTP is the front of every request: Extra paths first, then the
// common headers, the body cap, path normalisation and panic recovery
// around the service routes.
func (s *Server) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if h := s.extra(r.URL.Path); h != nil {
		h.ServeHTTP(w, r)
		return
	}
	rid := requestID(r.Header.Get("Request-Id"))
	// docs/iothub.md §2.3, §4.1: JSON content type on every answer (the Node SDK
	// parses bodies only then) and the request id.
	w.Header().Set("Content-Type", jsonContentType)
	w.Header().Set("x-ms-request-id", rid)
	rw := &recorder{ResponseWriter: w}
	r = r.WithContext(context.WithValue(r.Context(), requestKey{}, rid))
	start := time.Now()
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			s.log.Error().Str("requestId", rid).Str("method", r.Method).Str("path", r.URL.Path).
				Interface("panic", v).Bytes("stack", debug.Stack()).Msg("REST handler panicked")
			if !rw.wrote {
				s.writeError(rw, r, &iothub.Error{Code: iothub.CodeServerError, Message: "Internal server error", Err: fmt.Errorf("panic: %v", v)})
			}
		}
		s.log.Debug().Str("requestId", rid).Str("method", r.Method).Str("path", r.URL.Path).
			Int("status", rw.status).Dur("took", time.Since(start)).Msg("REST request")
	}()
	tb := &trackedBody{ReadCloser: http.MaxBytesReader(rw, r.Body, s.cfg.MaxBodyBytes), none: r.ContentLength == 0}
	if !tb.none {
		// The body gets its own deadline (net/http's ReadTimeout would also
		// bound the Extra paths, such as MQTT over WebSocket). net/http
		// lifts it when the body has been read, as it starts watching the
		// idle connection; a request without a body is watched from the
		// start, and a deadline set then would cancel it.
		_ = http.NewResponseController(rw).SetReadDeadline(time.Now().Add(s.cfg.BodyReadTimeout))
	}
	r.Body = tb
	nr, err := normalizePath(r)
	if err != nil {
		s.writeError(rw, r, err)
		return
	}
	s.mux.ServeHTTP(rw, nr)
}

// extra returns the Extra handler for p, or nil.
func (s *Server) extra(p string) http.Handler {
	if len(s.cfg.Extra) == 0 {
		return nil
	}
	if h, ok := s.cfg.Extra[p]; ok {
		return h
	}
	for k, h := range s.cfg.Extra {
		if k != "/" && strings.HasSuffix(k, "/") && strings.HasPrefix(p, k) {
			return h
		}
	}
	return nil
}

// normalizePath drops trailing slashes (C# and Node send "/devices/",
// docs/iothub.md §4.1) and rejects paths that are not canonical, so the router
// never answers with a redirect.
func normalizePath(r *http.Request) (*http.Request, error) {
	esc := r.URL.EscapedPath()
	trimmed := strings.TrimRight(esc, "/")
	if trimmed == "" {
		trimmed = "/"
	}
	if r.Method == http.MethodConnect || path.Clean(trimmed) != trimmed || !strings.HasPrefix(trimmed, "/") {
		return nil, iothub.Errorf(iothub.CodeGenericBadRequest, "malformed request path %q", esc)
	}
	if trimmed == esc {
		return r, nil
	}
	dec, err := url.PathUnescape(trimmed)
	if err != nil {
		return nil, iothub.Errorf(iothub.CodeGenericBadRequest, "malformed request path %q", esc)
	}
	u := *r.URL
	u.Path, u.RawPath = dec, ""
	if u.EscapedPath() != trimmed {
		u.RawPath = trimmed
	}
	nr := *r
	nr.URL = &u
	return &nr, nil
}

// requestID echoes a sane Request-Id, or makes one up.
func requestID(given string) string {
	if n := len(given); n > 0 && n <= 128 {
		ok := true
		for i := 0; i < n; i++ {
			if c := given[i]; c <= ' ' || c > '~' {
				ok = false
				break
			}
		}
		if ok {
			return given
		}
	}
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// trackedBody remembers whether the request body was read to its end.
type trackedBody struct {
	io.ReadCloser
	none bool // there was no body
	done bool // read to EOF
}

func (b *trackedBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err == io.EOF {
		b.done = true
	}
	return n, err
}

// bodyUnread reports whether r has a body the handler has not read to its
// end. net/http reads such a body before it sends the answer, so that the
// connection can be kept; an answer given without reading the body closes
// the connection instead, rather than wait for a client that may never send it.
func bodyUnread(r *http.Request) bool {
	b, ok := r.Body.(*trackedBody)
	return ok && !b.none && !b.done
}

// recorder remembers the status, so a panic after the answer began is not
// answered twice and the request log has the status.
type recorder struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (r *recorder) WriteHeader(code int) {
	if !r.wrote {
		r.status, r.wrote = code, true
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *recorder) Write(b []byte) (int, error) {
	if !r.wrote {
		r.status, r.wrote = http.StatusOK, true
	}
	return r.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (r *recorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }
