package broker

import (
	"errors"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/mochi-mqtt/server/v2/listeners"
)

// connectTimeout bounds how long an accepted connection may take to finish its
// TLS handshake and send CONNECT. Mochi sets no deadline before CONNECT, so
// without it a silent socket would hold a goroutine for ever.
const connectTimeout = 30 * time.Second

// mqttListener hands the connections of a net.Listener to mochi. Unlike
// mochi's own listeners.Net it owns every goroutine it starts: the server
// waits for the accept loop (served) and for each connection (Server.connWG),
// and can close connections that have not sent CONNECT yet.
type mqttListener struct {
	id     string
	ln     net.Listener
	s      *Server
	served chan struct{} // closed when Serve returns
	stop   chan struct{} // closed by close: ends a back-off wait
	once   sync.Once
}

// Accept back-off after an error that is not the listener closing (out of
// file descriptors, mostly): the first wait, and the longest, as net/http.
const (
	minAcceptDelay = 5 * time.Millisecond
	maxAcceptDelay = time.Second
	// acceptLogEvery is the least time between two log lines of a failing accept.
	acceptLogEvery = 10 * time.Second
)

var _ listeners.Listener = (*mqttListener)(nil)

func newMQTTListener(s *Server, id string, ln net.Listener) *mqttListener {
	return &mqttListener{id: id, ln: ln, s: s, served: make(chan struct{}), stop: make(chan struct{})}
}

// ID implements listeners.Listener.
func (l *mqttListener) ID() string { return l.id }

// Address implements listeners.Listener.
func (l *mqttListener) Address() string { return l.ln.Addr().String() }

// Protocol implements listeners.Listener.
func (l *mqttListener) Protocol() string { return l.ln.Addr().Network() }

// Init implements listeners.Listener; the listener is already bound.
func (l *mqttListener) Init(*slog.Logger) error { return nil }

// Serve accepts connections until the listener closes. Mochi runs it on a
// goroutine of its own; Run waits for served. Any other accept error (the
// process is out of file descriptors, say) is waited out with a doubling
// back-off and logged, so the listener serves again once it can.
func (l *mqttListener) Serve(establish listeners.EstablishFn) {
	defer close(l.served)
	var delay time.Duration
	var lastLog time.Time
	var failed int
	for {
		c, err := l.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			delay = min(max(2*delay, minAcceptDelay), maxAcceptDelay)
			failed++
			if now := time.Now(); now.Sub(lastLog) >= acceptLogEvery {
				l.s.log.Error().Err(err).Str("listener", l.id).Int("failures", failed).Dur("retryIn", delay).
					Msg("accepting connections failed; retrying")
				lastLog, failed = now, 0
			}
			t := time.NewTimer(delay)
			select {
			case <-t.C:
				continue
			case <-l.stop:
				t.Stop()
				return
			}
		}
		if delay > 0 {
			l.s.log.Info().Str("listener", l.id).Msg("accepting connections again")
			delay, lastLog, failed = 0, time.Time{}, 0
		}
		if l.s.closing.Load() {
			c.Close()
			continue
		}
		l.s.open.Store(c, struct{}{})
		l.s.connWG.Add(1) // on the accept goroutine: Run waits for served before connWG
		go func() {
			defer l.s.connWG.Done()
			defer l.s.open.Delete(c)
			_ = c.SetDeadline(time.Now().Add(connectTimeout)) // mochi replaces it after CONNECT
			if err := establish(l.id, c); err != nil {
				l.s.log.Debug().Err(err).Str("listener", l.id).Msg("connection ended")
			}
		}()
	}
}

// Close implements listeners.Listener: it stops accepting. Run closes the
// connections itself.
func (l *mqttListener) Close(listeners.CloseFn) { l.close() }

func (l *mqttListener) close() {
	l.once.Do(func() {
		close(l.stop)
		l.ln.Close()
	})
}

// chanListener is a net.Listener fed by pushed connections (upgraded WebSockets).
type chanListener struct {
	name  string
	conns chan net.Conn
	done  chan struct{}
	once  sync.Once
}

func newChanListener(name string) *chanListener {
	return &chanListener{name: name, conns: make(chan net.Conn), done: make(chan struct{})}
}

// push hands c to Accept, or fails once the listener is closed.
func (l *chanListener) push(c net.Conn) error {
	select {
	case l.conns <- c:
		return nil
	case <-l.done:
		return net.ErrClosed
	}
}

// Accept implements net.Listener.
func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.done) })
	return nil
}

// Addr implements net.Listener.
func (l *chanListener) Addr() net.Addr { return chanAddr(l.name) }

type chanAddr string

func (a chanAddr) Network() string { return "websocket" }
func (a chanAddr) String() string  { return string(a) }
