package hubjobs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"

	"github.com/fleetsim/fleetsim/broker"
	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
)

// TrustedCADir is the folder of a data directory whose *.pem files are CA
// certificates the hub trusts for certificateAuthority devices.
const TrustedCADir = "trusted-ca"

// loadTrustedCAs reads the CA certificates in files and in
// dataDir/trusted-ca/*.pem; nil when there are none.
func loadTrustedCAs(dataDir string, files []string) (*x509.CertPool, error) {
	all := append([]string(nil), files...)
	if dataDir != "" {
		found, err := filepath.Glob(filepath.Join(dataDir, TrustedCADir, "*.pem"))
		if err != nil {
			return nil, fmt.Errorf("trusted CAs: %w", err)
		}
		all = append(all, found...)
	}
	if len(all) == 0 {
		return nil, nil
	}
	pool, err := tlsutil.LoadCertPool(all...)
	if err != nil {
		return nil, fmt.Errorf("trusted CAs: %w", err)
	}
	return pool, nil
}

// TrustCA adds a CA certificate (PEM) to dataDir/trusted-ca as name.pem, for
// hubs started on dataDir afterwards.
func TrustCA(dataDir, name string, certPEM []byte) error {
	dir := filepath.Join(dataDir, TrustedCADir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("trusted CAs: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".pem"), certPEM, 0o644); err != nil {
		return fmt.Errorf("trusted CAs: %w", err)
	}
	return nil
}

// brokerCredentials is a device's authentication as the broker takes it.
func brokerCredentials(a registry.DeviceAuth) broker.Credentials {
	c := broker.Credentials{PrimaryKey: a.Primary, SecondaryKey: a.Secondary, Enabled: a.Enabled}
	switch a.Type {
	case registry.AuthenticationSelfSigned:
		c.Auth, c.Thumbprints = broker.AuthSelfSigned, a.Thumbprints[:]
	case registry.AuthenticationCA:
		c.Auth = broker.AuthCertificateAuthority
	}
	return c
}

// DialDeviceTLS opens an in-process connection on which the broker speaks
// TLS, for a simulated X.509 device: the device runs the TLS client over it
// with DeviceTLSConfig and its certificate.
func (s *Hub) DialDeviceTLS(ctx context.Context) (net.Conn, error) {
	return s.Broker.DialMemoryTLS(ctx)
}

// DeviceTLSConfig is a TLS client configuration that trusts the hub's
// server certificate, for devices in this process.
func (s *Hub) DeviceTLSConfig() (*tls.Config, error) {
	tc, err := tlsutil.ClientConfig(s.certs)
	if err != nil {
		return nil, err
	}
	tc.ServerName = s.opts.Hostname
	return tc, nil
}

// TrustCA makes the running hub trust a CA for certificateAuthority devices
// (a run trusts the CA it made for its fleet).
func (s *Hub) TrustCA(ca *x509.Certificate) { s.Broker.TrustCA(ca) }
