package broker

import (
	"context"
	"crypto/sha1" //nolint:gosec // IoT Hub's thumbprints are SHA-1 or SHA-256 of the certificate
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// AuthType is how a device authenticates (the registry's authentication.type).
type AuthType uint8

// Authentication types.
const (
	// AuthSAS devices send a SAS token as the CONNECT password.
	AuthSAS AuthType = iota
	// AuthSelfSigned devices present a client certificate whose thumbprint
	// the registry holds.
	AuthSelfSigned
	// AuthCertificateAuthority devices present a client certificate that
	// chains to a trusted CA and whose subject CN is the device id.
	AuthCertificateAuthority
)

// ErrNoClientCertificate is returned (wrapped) when an X.509 device's
// connection carries no client certificate.
var ErrNoClientCertificate = errors.New("no TLS client certificate")

// peerCertifier is a connection that is not a *tls.Conn but knows the client
// certificates of the TLS connection under it (MQTT over WebSocket).
type peerCertifier interface {
	PeerCertificates() []*x509.Certificate
}

// clientConn is the network connection of a mochi client: the one place the
// broker reaches into mochi's client for it (TestClientConnIsTheAcceptedConn
// guards it).
func clientConn(cl *mqtt.Client) net.Conn { return cl.Net.Conn }

// peerCertificates are the client certificates c's TLS handshake received,
// leaf first; none for a connection without TLS (in-process, plain TCP).
func peerCertificates(c net.Conn) []*x509.Certificate {
	switch c := c.(type) {
	case *tls.Conn:
		return c.ConnectionState().PeerCertificates // the handshake is done: CONNECT was read through it
	case peerCertifier:
		return c.PeerCertificates()
	}
	return nil
}

// authenticateX509 checks the client certificate of an X.509 device
// (docs/iothub.md §1.2): a self-signed device's certificate must match one
// of its thumbprints; a CA-signed device's must chain to a trusted CA and
// name the device in its subject CN. Both must be within their validity
// period. Such a device sends no password.
func (h *hook) authenticateX509(cl *mqtt.Client, deviceID string, creds Credentials, password []byte) error {
	if len(password) > 0 {
		return fmt.Errorf("device %s authenticates with X.509, not a SAS token", deviceID)
	}
	certs := peerCertificates(clientConn(cl))
	if len(certs) == 0 {
		return fmt.Errorf("device %s: %w", deviceID, ErrNoClientCertificate)
	}
	leaf := certs[0]
	now := time.Now()
	switch creds.Auth {
	case AuthSelfSigned:
		if now.Before(leaf.NotBefore) || now.After(leaf.NotAfter) {
			return fmt.Errorf("device %s: certificate is valid from %s to %s", deviceID, leaf.NotBefore, leaf.NotAfter)
		}
		if !thumbprintMatches(leaf.Raw, creds.Thumbprints) {
			return fmt.Errorf("device %s: certificate matches neither registered thumbprint", deviceID)
		}
		return nil
	case AuthCertificateAuthority:
		roots := h.s.trusted.Load()
		if roots == nil {
			return fmt.Errorf("device %s: this hub trusts no CA", deviceID)
		}
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		if _, err := leaf.Verify(x509.VerifyOptions{
			Roots:         roots,
			Intermediates: inter,
			CurrentTime:   now,
			KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		}); err != nil {
			return fmt.Errorf("device %s: certificate: %w", deviceID, err)
		}
		if leaf.Subject.CommonName != deviceID {
			return fmt.Errorf("device %s: certificate subject CN is %q", deviceID, leaf.Subject.CommonName)
		}
		return nil
	}
	return fmt.Errorf("device %s: unknown authentication type %d", deviceID, creds.Auth)
}

// thumbprintMatches reports whether der's SHA-1 or SHA-256 thumbprint is one
// of want (hex, any case; empty entries never match).
func thumbprintMatches(der []byte, want []string) bool {
	s1 := sha1.Sum(der) //nolint:gosec // a thumbprint, not a signature
	s256 := sha256.Sum256(der)
	h1, h256 := hex.EncodeToString(s1[:]), hex.EncodeToString(s256[:])
	for _, w := range want {
		if w != "" && (strings.EqualFold(w, h1) || strings.EqualFold(w, h256)) {
			return true
		}
	}
	return false
}

// TrustCA adds a CA whose device certificates certificateAuthority devices
// may connect with, to those of Config.TrustedCAs (a run makes one for its
// fleet). Connections made before are not checked again.
func (s *Server) TrustCA(ca *x509.Certificate) {
	for {
		old := s.trusted.Load()
		var pool *x509.CertPool
		if old == nil {
			pool = x509.NewCertPool()
		} else {
			pool = old.Clone()
		}
		pool.AddCert(ca)
		if s.trusted.CompareAndSwap(old, pool) {
			return
		}
	}
}

// DialMemoryTLS opens an in-process connection on which the broker speaks
// TLS with Config.TLSConfig, for devices that authenticate with a client
// certificate: the caller runs the TLS client over it. It fails without a
// TLSConfig or once the server has stopped.
func (s *Server) DialMemoryTLS(ctx context.Context) (net.Conn, error) {
	if s.memTLS == nil {
		return nil, errors.New("broker: in-process TLS needs Config.TLSConfig")
	}
	c, err := s.memTLS.Dial(ctx)
	if err != nil {
		return nil, fmt.Errorf("broker: dial in-process TLS: %w", err)
	}
	return c, nil
}

// memTLSListener serves TLS over in-process connections. Their pipe has no
// buffer, so a TLS close (which writes a close_notify alert and waits up to
// five seconds for it to be read) would stall when both ends close at once:
// its connections close the pipe first.
type memTLSListener struct {
	net.Listener
	cfg *tls.Config
}

// Accept implements net.Listener.
func (l *memTLSListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &memTLSConn{Conn: tls.Server(c, l.cfg), raw: c}, nil
}

type memTLSConn struct {
	*tls.Conn
	raw net.Conn
}

// Close closes the pipe, then the TLS state, so no close_notify is waited for.
func (c *memTLSConn) Close() error {
	err := c.raw.Close()
	_ = c.Conn.Close()
	return err
}

// PeerCertificates implements peerCertifier.
func (c *memTLSConn) PeerCertificates() []*x509.Certificate {
	return c.Conn.ConnectionState().PeerCertificates
}
