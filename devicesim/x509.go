package devicesim

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
)

// FleetCertificateConfig is a clone of base (or of an empty TLS 1.2+
// configuration) whose client certificate is that of the device connecting
// with it: one configuration serves a whole fleet of X.509 devices, where a
// configuration per device would cost memory per device. Set it as
// Transport.TLSConfig. WebSocket connections, whose handshake does not carry
// the device, still get a clone per connection.
func FleetCertificateConfig(base *tls.Config) *tls.Config {
	var tc *tls.Config
	if base != nil {
		tc = base.Clone()
	} else {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tc.Certificates = nil
	tc.GetClientCertificate = func(cri *tls.CertificateRequestInfo) (*tls.Certificate, error) {
		if c, ok := cri.Context().Value(certKey{}).(*tls.Certificate); ok {
			return c, nil
		}
		return &tls.Certificate{}, nil // no certificate: the hub decides
	}
	return tc
}

// certKey is the context key of the certificate a TLS handshake presents.
type certKey struct{}

// withCertificate is base (or an empty configuration) presenting cert as the
// TLS client certificate. A configuration from FleetCertificateConfig is
// returned as it is unless perConn: the handshake's context carries cert.
func withCertificate(base *tls.Config, cert *tls.Certificate, perConn bool) *tls.Config {
	if base != nil && base.GetClientCertificate != nil && !perConn {
		return base
	}
	var tc *tls.Config
	if base != nil {
		tc = base.Clone()
	} else {
		tc = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	tc.GetClientCertificate = nil
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
