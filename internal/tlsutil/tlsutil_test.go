package tlsutil

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"os"
	"path/filepath"
	"testing"
)

func TestEnsureCertsCreatesReusesAndReissues(t *testing.T) {
	dir := t.TempDir()
	f, err := EnsureCerts(dir, "hub.example")
	if err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(f.CertFile)
	ca1, _ := os.ReadFile(f.CAFile)
	if _, err := EnsureCerts(dir, "hub.example"); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(f.CertFile); string(again) != string(first) {
		t.Fatal("server certificate was re-issued although nothing changed")
	}
	if _, err := EnsureCerts(dir, "other.example"); err != nil {
		t.Fatal(err)
	}
	if again, _ := os.ReadFile(f.CertFile); string(again) == string(first) {
		t.Fatal("server certificate not re-issued for a new host name")
	}
	if ca2, _ := os.ReadFile(f.CAFile); string(ca2) != string(ca1) {
		t.Fatal("the CA changed; clients would have to trust it again")
	}
	if st, _ := os.Stat(f.KeyFile); st.Mode().Perm() != 0o600 {
		t.Fatalf("key mode = %v", st.Mode().Perm())
	}
	// A TLS handshake with a client that trusts only the CA verifies every name.
	srv, err := ServerConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	cli, err := ClientConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"localhost", "127.0.0.1", "other.example"} {
		ln, err := tls.Listen("tcp", "127.0.0.1:0", srv)
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan struct{})
		go func() {
			defer close(served)
			c, err := ln.Accept()
			if err == nil {
				_ = c.(*tls.Conn).Handshake()
				c.Close()
			}
		}()
		cfg := cli.Clone()
		cfg.ServerName = name
		c, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err != nil {
			t.Errorf("handshake as %s: %v", name, err)
		} else {
			c.Close()
		}
		ln.Close()
		<-served
	}
}

func TestEnsureCertsNamesAndRepair(t *testing.T) {
	dir := t.TempDir()
	f, err := EnsureCerts(dir, "Hub.Example:18883", "::1", "")
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.LoadX509KeyPair(f.CertFile, f.KeyFile)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		ok   bool
	}{
		{"hub.example", true},
		{"localhost", true},
		{"127.0.0.1", true},
		{"::1", true},
		{"other.example", false},
	}
	for _, tt := range tests {
		if err := cert.VerifyHostname(tt.name); (err == nil) != tt.ok {
			t.Errorf("VerifyHostname(%q) = %v", tt.name, err)
		}
	}
	if len(cert.IPAddresses) != 2 {
		t.Errorf("IP SANs = %v, want 127.0.0.1 and ::1", cert.IPAddresses)
	}
	ca, _ := os.ReadFile(f.CAFile)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "hub.example"}); err != nil {
		t.Fatalf("chain: %v", err)
	}

	// A damaged server certificate is issued again from the same CA.
	if err := os.WriteFile(f.CertFile, []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := EnsureCerts(dir, "hub.example"); err != nil {
		t.Fatal(err)
	}
	if _, err := ServerConfig(f); err != nil {
		t.Fatalf("after repair: %v", err)
	}
	if again, _ := os.ReadFile(f.CAFile); string(again) != string(ca) {
		t.Fatal("repairing the server certificate replaced the CA")
	}

	if _, err := LoadFiles(f.CertFile, f.KeyFile); err != nil {
		t.Fatalf("LoadFiles: %v", err)
	}
	if _, err := LoadFiles(f.CAFile, f.KeyFile); err == nil {
		t.Fatal("LoadFiles accepted a certificate with another certificate's key")
	}
	if _, err := LoadFiles(filepath.Join(dir, "missing.pem"), f.KeyFile); err == nil {
		t.Fatal("LoadFiles accepted a missing file")
	}
}

// TestEnsureCertsWithCA: a CA made elsewhere signs the server certificate
// (replacing one signed by a CA the data directory made earlier), is
// copied to dir/ca.pem without its key, and a certificate that is no CA is
// refused. Keys in PKCS #8 load as well as SEC 1.
func TestEnsureCertsWithCA(t *testing.T) {
	caDir := t.TempDir()
	made, err := EnsureCerts(caDir)
	if err != nil {
		t.Fatal(err)
	}
	caKeyFile := filepath.Join(caDir, "ca-key.pem")
	_, key, err := loadPair(made.CAFile, caKeyFile)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	pkcs8 := filepath.Join(caDir, "ca-key-pkcs8.pem")
	os.WriteFile(pkcs8, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)

	for _, keyFile := range []string{caKeyFile, pkcs8} {
		dir := t.TempDir()
		if _, err := EnsureCerts(dir, "fleetsim-hub.fleetsim.svc"); err != nil { // its own CA first
			t.Fatal(err)
		}
		f, err := EnsureCertsWithCA(dir, made.CAFile, keyFile, "fleetsim-hub.fleetsim.svc")
		if err != nil {
			t.Fatal(err)
		}
		want, _ := os.ReadFile(made.CAFile)
		if got, _ := os.ReadFile(f.CAFile); string(got) != string(want) {
			t.Error("dir/ca.pem is not the given CA")
		}
		if _, err := os.Stat(filepath.Join(dir, "ca-key.pem")); !os.IsNotExist(err) {
			t.Errorf("the data directory's own CA key is still there: %v", err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(want)
		cert, _, err := loadPair(f.CertFile, f.KeyFile)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := cert.Verify(x509.VerifyOptions{Roots: pool, DNSName: "fleetsim-hub.fleetsim.svc"}); err != nil {
			t.Errorf("server certificate with key %s: %v", filepath.Base(keyFile), err)
		}
	}
	if _, err := EnsureCertsWithCA(t.TempDir(), made.CertFile, made.KeyFile); err == nil {
		t.Error("a server certificate was taken as a CA")
	}
	if _, err := EnsureCertsWithCA(t.TempDir(), made.CAFile, filepath.Join(caDir, "missing.pem")); err == nil {
		t.Error("a missing CA key was not an error")
	}
}

// BenchmarkDeviceCertificates measures what a fleet's certificates cost at
// the start of a run: a key and a certificate per device.
func BenchmarkDeviceCertificates(b *testing.B) {
	ca, err := NewDeviceCA("bench CA", 1)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("ca-signed", func(b *testing.B) {
		for b.Loop() {
			if _, err := ca.Issue("bench-device-000001", Validity{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("self-signed", func(b *testing.B) {
		for b.Loop() {
			if _, err := SelfSigned("bench-device-000001", Validity{}); err != nil {
				b.Fatal(err)
			}
		}
	})
}
