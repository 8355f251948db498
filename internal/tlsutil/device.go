package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1" //nolint:gosec // IoT Hub's thumbprints are SHA-1 or SHA-256 of the certificate
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// DeviceCA is a certificate authority that signs device certificates: the
// test CA of `fleetsim certs ca`, or the one a run makes for its fleet.
type DeviceCA struct {
	Cert *x509.Certificate
	Key  *ecdsa.PrivateKey
}

// File names in a CA directory and a device directory.
const (
	CACertFile = "ca.pem"
	CAKeyFile  = "ca-key.pem"
)

// DeviceFiles names a device's certificate and key in dir: ID.pem and ID-key.pem.
func DeviceFiles(dir, deviceID string) (certFile, keyFile string) {
	return filepath.Join(dir, deviceID+".pem"), filepath.Join(dir, deviceID+"-key.pem")
}

// NewDeviceCA makes a CA named name, valid from an hour ago for years years.
func NewDeviceCA(name string, years int) (*DeviceCA, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("CA key: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: name, Organization: []string{"fleetsim"}},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(years, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("CA certificate: %w", err)
	}
	return &DeviceCA{Cert: cert, Key: key}, nil
}

// Validity is when a device certificate is valid; the zero value means from
// an hour ago for a year.
type Validity struct {
	NotBefore, NotAfter time.Time
}

func (v Validity) orDefault() Validity {
	if v.NotBefore.IsZero() {
		v.NotBefore = time.Now().Add(-time.Hour)
	}
	if v.NotAfter.IsZero() {
		v.NotAfter = v.NotBefore.AddDate(1, 0, 0)
	}
	return v
}

// Issue makes a client certificate for deviceID (its subject CN, as IoT Hub
// requires of CA-signed devices) signed by ca.
func (ca *DeviceCA) Issue(deviceID string, v Validity) (tls.Certificate, error) {
	return newDeviceCert(deviceID, v, ca.Cert, ca.Key)
}

// SelfSigned makes a self-signed client certificate with subject CN deviceID.
func SelfSigned(deviceID string, v Validity) (tls.Certificate, error) {
	return newDeviceCert(deviceID, v, nil, nil)
}

func newDeviceCert(deviceID string, v Validity, parent *x509.Certificate, parentKey *ecdsa.PrivateKey) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("device key: %w", err)
	}
	v = v.orDefault()
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: deviceID},
		NotBefore:    v.NotBefore,
		NotAfter:     v.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	if parent == nil {
		parent, parentKey = tmpl, key
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("device certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("device certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// Thumbprints are a certificate's SHA-1 and SHA-256 thumbprints in upper-case
// hex, as IoT Hub's registry takes them.
func Thumbprints(der []byte) (sha1Hex, sha256Hex string) {
	s1 := sha1.Sum(der) //nolint:gosec // a thumbprint, not a signature
	s256 := sha256.Sum256(der)
	return strings.ToUpper(hex.EncodeToString(s1[:])), strings.ToUpper(hex.EncodeToString(s256[:]))
}

// WriteCA writes the CA's certificate (0644) and private key (0600) into dir.
func (ca *DeviceCA) WriteCA(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("CA directory %s: %w", dir, err)
	}
	return writePair(filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile), ca.Cert.Raw, ca.Key)
}

// LoadDeviceCA reads a CA that WriteCA wrote.
func LoadDeviceCA(dir string) (*DeviceCA, error) {
	return LoadDeviceCAFiles(filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile))
}

// LoadDeviceCAFiles reads a CA from its certificate and its EC private key
// (SEC 1 or PKCS #8), both PEM.
func LoadDeviceCAFiles(certFile, keyFile string) (*DeviceCA, error) {
	cert, key, err := loadPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("CA %s, %s: %w", certFile, keyFile, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("CA %s is not a CA certificate", certFile)
	}
	return &DeviceCA{Cert: cert, Key: key}, nil
}

// WriteDevice writes a device's certificate (0644) and private key (0600)
// into dir as DeviceFiles names them, and returns their paths.
func WriteDevice(dir, deviceID string, c tls.Certificate) (certFile, keyFile string, err error) {
	key, ok := c.PrivateKey.(*ecdsa.PrivateKey)
	if !ok || len(c.Certificate) == 0 {
		return "", "", errors.New("device certificate: not one made by fleetsim")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("device directory %s: %w", dir, err)
	}
	certFile, keyFile = DeviceFiles(dir, deviceID)
	return certFile, keyFile, writePair(certFile, keyFile, c.Certificate[0], key)
}

// LoadCertPool reads every certificate in the PEM files into a pool.
func LoadCertPool(files ...string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("read CA %s: %w", f, err)
		}
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("CA %s holds no PEM certificate", f)
		}
	}
	return pool, nil
}

// EncodeCertPEM is a certificate in PEM.
func EncodeCertPEM(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
