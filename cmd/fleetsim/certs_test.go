package main

import (
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCertsCommands(t *testing.T) {
	dir := t.TempDir()
	caDir, devDir := filepath.Join(dir, "ca"), filepath.Join(dir, "devices")
	if code, out, errOut := testApp(t, nil, "certs", "ca", "--out", caDir); code != 0 {
		t.Fatalf("certs ca: %d %s %s", code, out, errOut)
	}
	if code, _, errOut := testApp(t, nil, "certs", "ca", "--out", caDir); code == 0 || !strings.Contains(errOut, "--force") {
		t.Errorf("certs ca over an existing CA: %d %s", code, errOut)
	}
	code, out, errOut := testApp(t, nil, "certs", "device", "thermostat-1", "--ca", caDir, "--out", devDir)
	if code != 0 {
		t.Fatalf("certs device: %d %s %s", code, out, errOut)
	}
	if !strings.Contains(out, "certificateAuthority") || strings.Contains(out, "PRIVATE KEY") {
		t.Errorf("certs device printed:\n%s", out)
	}
	if code, out, _ := testApp(t, nil, "certs", "device", "sensor-9", "--self-signed", "--out", devDir); code != 0 || !strings.Contains(out, "SHA-1 thumbprint") {
		t.Errorf("certs device --self-signed: %d %s", code, out)
	}
	for _, k := range []string{filepath.Join(caDir, "ca-key.pem"), filepath.Join(devDir, "thermostat-1-key.pem"), filepath.Join(devDir, "sensor-9-key.pem")} {
		if st, err := os.Stat(k); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v %v, want mode 0600", k, st.Mode(), err)
		}
	}
	// The device certificate chains to the CA and names the device.
	pair, err := tls.LoadX509KeyPair(filepath.Join(devDir, "thermostat-1.pem"), filepath.Join(devDir, "thermostat-1-key.pem"))
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(pair.Certificate[0])
	caPEM, _ := os.ReadFile(filepath.Join(caDir, "ca.pem"))
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil || leaf.Subject.CommonName != "thermostat-1" {
		t.Errorf("device certificate: CN %q, %v", leaf.Subject.CommonName, err)
	}
	for _, args := range [][]string{
		{"certs", "device", "x", "--out", devDir},
		{"certs", "device", "x", "--ca", caDir, "--self-signed", "--out", devDir},
		{"certs", "device", "--ca", caDir, "--out", devDir},
		{"certs", "ca"},
	} {
		if code, _, _ := testApp(t, nil, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
}
