package tlsutil

import (
	"crypto/tls"
	"os"
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
		go func() {
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
	}
}
