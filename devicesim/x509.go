package devicesim

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
)

// withCertificate is base (or an empty configuration) presenting cert as the
// TLS client certificate.
func withCertificate(base *tls.Config, cert *tls.Certificate) *tls.Config {
	var tc *tls.Config
	if base != nil {
		tc = base.Clone()
	} else {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tc.Certificates = []tls.Certificate{*cert}
	return tc
}

// dialTLS opens an in-process connection with dial and runs the TLS
// handshake over it, bounded by ctx.
func dialTLS(ctx context.Context, dial Dialer, tc *tls.Config) (net.Conn, error) {
	if dial == nil {
		return nil, errors.New("in-process TLS needs Transport.DialTLS")
	}
	raw, err := dial(ctx)
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, tc)
	if err := c.HandshakeContext(ctx); err != nil {
		raw.Close()
		return nil, err
	}
	return &pipeTLSConn{Conn: c, raw: raw}, nil
}

// pipeTLSConn closes the in-process pipe before the TLS state: the pipe has
// no buffer, and a TLS close waits for its close_notify alert to be read.
type pipeTLSConn struct {
	*tls.Conn
	raw net.Conn
}

// Close implements net.Conn.
func (c *pipeTLSConn) Close() error {
	err := c.raw.Close()
	_ = c.Conn.Close()
	return err
}
