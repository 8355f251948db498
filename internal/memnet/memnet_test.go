package memnet

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

func TestDialAcceptRoundTrip(t *testing.T) {
	l := Listen("hub")
	defer l.Close()
	errc := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			errc <- err
			return
		}
		defer c.Close()
		buf := make([]byte, 5)
		if _, err := io.ReadFull(c, buf); err != nil {
			errc <- err
			return
		}
		_, err = c.Write(buf)
		errc <- err
	}()
	c, err := l.Dial(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5)
	if _, err := io.ReadFull(c, got); err != nil {
		t.Fatal(err)
	}
	if string(got) != "hello" {
		t.Fatalf("echo = %q", got)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if c.RemoteAddr().String() != "hub" || c.LocalAddr().Network() != "memnet" {
		t.Fatalf("addresses: %v %v", c.LocalAddr(), c.RemoteAddr())
	}
}

func TestDialAfterClose(t *testing.T) {
	l := Listen("hub")
	l.Close()
	l.Close() // idempotent
	if _, err := l.Dial(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Dial after Close = %v, want ErrClosed", err)
	}
	_, err := l.Accept()
	if !errors.Is(err, ErrClosed) {
		t.Fatalf("Accept after Close = %v, want ErrClosed", err)
	}
	// Accept loops (the broker's, net/http's) stop on net.ErrClosed and
	// retry anything else.
	if !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Accept after Close = %v, want it to match net.ErrClosed", err)
	}
}

func TestDialHonoursContext(t *testing.T) {
	l := Listen("hub")
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := l.Dial(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Dial with nobody accepting = %v, want deadline exceeded", err)
	}
}
