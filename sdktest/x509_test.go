package sdktest

import (
	"crypto/tls"
	"testing"

	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
)

// makeX509Fixtures makes what x509.test.js needs before the hub starts: a CA
// in dataDir's trusted-ca folder, a certificate for device x509-ca signed by
// it, a self-signed certificate for x509-self and a stranger's self-signed
// one. It returns the folder with the device certificates and keys.
func makeX509Fixtures(t *testing.T, dataDir string) string {
	t.Helper()
	ca, err := tlsutil.NewDeviceCA("sdktest CA", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := hubjobs.TrustCA(dataDir, "sdktest", tlsutil.EncodeCertPEM(ca.Cert.Raw)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, d := range []struct {
		file, cn string
		signed   bool
	}{{"x509-ca", "x509-ca", true}, {"x509-self", "x509-self", false}, {"x509-stranger", "x509-self", false}} {
		var c tls.Certificate
		if d.signed {
			c, err = ca.Issue(d.cn, tlsutil.Validity{})
		} else {
			c, err = tlsutil.SelfSigned(d.cn, tlsutil.Validity{})
		}
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := tlsutil.WriteDevice(dir, d.file, c); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}
