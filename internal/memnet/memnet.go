// Package memnet is fleetsim's in-process transport: a net.Listener whose
// connections are in-memory pipes, so simulated devices speak full MQTT to the
// embedded broker without sockets, file descriptors or ephemeral ports. A
// device differs from a TCP one only in its dialer.
package memnet

import (
	"context"
	"net"
	"sync"
)

// ErrClosed is returned by Accept and Dial once the listener is closed. It
// matches net.ErrClosed under errors.Is, as net.Listener implementations'
// errors do, so an accept loop tells a closed listener from a failing one.
var ErrClosed error = closedError{}

type closedError struct{}

func (closedError) Error() string { return "memnet: listener closed" }
func (closedError) Unwrap() error { return net.ErrClosed }

// Addr is the address of an in-memory listener.
type Addr string

// Network implements net.Addr.
func (a Addr) Network() string { return "memnet" }

// String implements net.Addr.
func (a Addr) String() string { return string(a) }

// Listener is an in-memory net.Listener. The zero value is not usable; use Listen.
type Listener struct {
	addr    Addr
	conns   chan net.Conn
	done    chan struct{}
	closeMu sync.Once
}

// Listen returns a listener named name.
func Listen(name string) *Listener {
	return &Listener{addr: Addr(name), conns: make(chan net.Conn), done: make(chan struct{})}
}

// Accept waits for the next Dial.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, ErrClosed
	}
}

// Close stops Accept and makes further Dials fail. It is safe to call twice.
func (l *Listener) Close() error {
	l.closeMu.Do(func() { close(l.done) })
	return nil
}

// Addr implements net.Listener.
func (l *Listener) Addr() net.Addr { return l.addr }

// Dial connects to the listener, blocking until Accept takes the connection,
// ctx ends, or the listener closes.
func (l *Listener) Dial(ctx context.Context) (net.Conn, error) {
	client, server := net.Pipe()
	select {
	case l.conns <- &conn{Conn: server, local: l.addr, remote: Addr("memnet-client")}:
		return &conn{Conn: client, local: Addr("memnet-client"), remote: l.addr}, nil
	case <-ctx.Done():
		client.Close()
		server.Close()
		return nil, ctx.Err()
	case <-l.done:
		client.Close()
		server.Close()
		return nil, ErrClosed
	}
}

// conn gives net.Pipe's ends meaningful addresses (mochi logs them).
type conn struct {
	net.Conn
	local, remote net.Addr
}

func (c *conn) LocalAddr() net.Addr  { return c.local }
func (c *conn) RemoteAddr() net.Addr { return c.remote }
