// Package tlsutil makes and keeps fleetsim's local TLS material: a CA created
// on first start and a server certificate for the hub host name, localhost
// and 127.0.0.1, kept in the data directory so that clients can trust the CA
// once (NODE_EXTRA_CA_CERTS, a device SDK's ca option).
package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// Files are the paths of the CA certificate and the server's certificate and key.
type Files struct {
	CAFile, CertFile, KeyFile string
}

// EnsureCerts returns dir's CA and server certificate, creating them when
// missing, and re-issuing the server certificate when its names changed or it
// expires within 30 days. hostnames are added to localhost and 127.0.0.1.
func EnsureCerts(dir string, hostnames ...string) (Files, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Files{}, fmt.Errorf("tls directory %s: %w", dir, err)
	}
	f := Files{
		CAFile:   filepath.Join(dir, "ca.pem"),
		CertFile: filepath.Join(dir, "server.pem"),
		KeyFile:  filepath.Join(dir, "server-key.pem"),
	}
	caKeyFile := filepath.Join(dir, "ca-key.pem")
	names := wantNames(hostnames)
	ca, caKey, err := loadPair(f.CAFile, caKeyFile)
	if err != nil || time.Until(ca.NotAfter) < renewBefore {
		if ca, caKey, err = newCA(f.CAFile, caKeyFile); err != nil {
			return Files{}, err
		}
	}
	if cert, _, err := loadPair(f.CertFile, f.KeyFile); err == nil && covers(cert, names) &&
		time.Until(cert.NotAfter) > renewBefore && cert.CheckSignatureFrom(ca) == nil {
		return f, nil
	}
	return f, newServerCert(f, names, ca, caKey)
}

// EnsureCertsWithCA is EnsureCerts with a CA made elsewhere (for example
// kept in a Kubernetes Secret, so that clients can trust it before the hub
// first starts): caCertFile and caKeyFile are read, never written, and the
// CA certificate is copied to dir/ca.pem for clients of the data
// directory. The server certificate in dir is re-issued when it was not
// signed by that CA. The key is an EC key in SEC 1 or PKCS #8 PEM.
func EnsureCertsWithCA(dir, caCertFile, caKeyFile string, hostnames ...string) (Files, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Files{}, fmt.Errorf("tls directory %s: %w", dir, err)
	}
	f := Files{
		CAFile:   filepath.Join(dir, "ca.pem"),
		CertFile: filepath.Join(dir, "server.pem"),
		KeyFile:  filepath.Join(dir, "server-key.pem"),
	}
	ca, caKey, err := loadPair(caCertFile, caKeyFile)
	if err != nil {
		return Files{}, fmt.Errorf("CA %s, %s: %w", caCertFile, caKeyFile, err)
	}
	if !ca.IsCA {
		return Files{}, fmt.Errorf("CA %s: the certificate is not a CA", caCertFile)
	}
	// A CA generated earlier in dir must not be used with the server
	// certificate of this one.
	os.Remove(filepath.Join(dir, "ca-key.pem"))
	if err := os.WriteFile(f.CAFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.Raw}), 0o644); err != nil {
		return Files{}, fmt.Errorf("write %s: %w", f.CAFile, err)
	}
	names := wantNames(hostnames)
	if cert, _, err := loadPair(f.CertFile, f.KeyFile); err == nil && covers(cert, names) &&
		time.Until(cert.NotAfter) > renewBefore && cert.CheckSignatureFrom(ca) == nil {
		return f, nil
	}
	return f, newServerCert(f, names, ca, caKey)
}

// renewBefore is how long before expiry a certificate is replaced.
const renewBefore = 30 * 24 * time.Hour

// LoadFiles returns Files for a user-supplied certificate and key after checking that they load.
func LoadFiles(certFile, keyFile string) (Files, error) {
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		return Files{}, fmt.Errorf("load certificate %s: %w", certFile, err)
	}
	return Files{CertFile: certFile, KeyFile: keyFile}, nil
}

// ServerConfig is a TLS 1.2+ server configuration for the files that asks
// clients for a certificate.
func ServerConfig(f Files) (*tls.Config, error) {
	cert, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		return nil, fmt.Errorf("load certificate %s: %w", f.CertFile, err)
	}
	// Client certificates are asked for, not required, and not checked here:
	// SAS devices send none, and a self-signed device certificate chains to
	// nothing. The broker checks what a device sends against the registry.
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, ClientAuth: tls.RequestClientCert}, nil
}

// ClientConfig trusts the CA in f (for fleetsim's own clients and tests).
func ClientConfig(f Files) (*tls.Config, error) {
	pem, err := os.ReadFile(f.CAFile)
	if err != nil {
		return nil, fmt.Errorf("read CA %s: %w", f.CAFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA %s holds no certificate", f.CAFile)
	}
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}, nil
}

// wantNames is localhost, 127.0.0.1 and the host names, lower-cased and
// without ports (a hub name such as "localhost:18883" names host localhost).
func wantNames(hostnames []string) []string {
	names := []string{"localhost", "127.0.0.1"}
	for _, h := range hostnames {
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		}
		h = strings.ToLower(strings.Trim(h, "[]"))
		if h != "" && !slices.Contains(names, h) {
			names = append(names, h)
		}
	}
	return names
}

func covers(c *x509.Certificate, names []string) bool {
	for _, n := range names {
		if c.VerifyHostname(n) != nil {
			return false
		}
	}
	return true
}

func loadPair(certFile, keyFile string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	cb, err := os.ReadFile(certFile)
	if err != nil {
		return nil, nil, err
	}
	kb, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, nil, err
	}
	cp, _ := pem.Decode(cb)
	kp, _ := pem.Decode(kb)
	if cp == nil || kp == nil {
		return nil, nil, errors.New("not PEM")
	}
	cert, err := x509.ParseCertificate(cp.Bytes)
	if err != nil {
		return nil, nil, err
	}
	key, err := x509.ParseECPrivateKey(kp.Bytes)
	if err != nil {
		k, err8 := x509.ParsePKCS8PrivateKey(kp.Bytes)
		ek, ok := k.(*ecdsa.PrivateKey)
		if err8 != nil || !ok {
			return nil, nil, fmt.Errorf("the key is not an EC private key: %w", err)
		}
		key = ek
	}
	return cert, key, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	return n
}

func newCA(certFile, keyFile string) (*x509.Certificate, *ecdsa.PrivateKey, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "fleetsim local CA", Organization: []string{"fleetsim"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("CA certificate: %w", err)
	}
	if err := writePair(certFile, keyFile, der, key); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	return cert, key, err
}

func newServerCert(f Files, names []string, ca *x509.Certificate, caKey *ecdsa.PrivateKey) error {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return fmt.Errorf("server key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: names[len(names)-1], Organization: []string{"fleetsim"}},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(1, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		return fmt.Errorf("server certificate: %w", err)
	}
	return writePair(f.CertFile, f.KeyFile, der, key)
}

func writePair(certFile, keyFile string, der []byte, key *ecdsa.PrivateKey) error {
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		return fmt.Errorf("write %s: %w", keyFile, err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", certFile, err)
	}
	return nil
}
