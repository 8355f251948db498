package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/fleetsim/fleetsim/internal/iothub"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
)

// x509Fixture is a CA the broker trusts, one it does not, and devices of each kind.
type x509Fixture struct {
	trusted, untrusted *tlsutil.DeviceCA
	self, self2, other tls.Certificate // self2 is the self-signed device's secondary certificate
}

func newX509Fixture(t *testing.T) *x509Fixture {
	t.Helper()
	f := &x509Fixture{}
	var err error
	if f.trusted, err = tlsutil.NewDeviceCA("trusted", 1); err != nil {
		t.Fatal(err)
	}
	if f.untrusted, err = tlsutil.NewDeviceCA("untrusted", 1); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*tls.Certificate{&f.self, &f.self2, &f.other} {
		if *c, err = tlsutil.SelfSigned("self", tlsutil.Validity{}); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

func (f *x509Fixture) issue(t *testing.T, ca *tlsutil.DeviceCA, id string, v tlsutil.Validity) tls.Certificate {
	t.Helper()
	c, err := ca.Issue(id, v)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (f *x509Fixture) start(t *testing.T) *env {
	sha1Hex, _ := tlsutil.Thumbprints(f.self.Certificate[0])
	_, sha256Hex := tlsutil.Thumbprints(f.self2.Certificate[0])
	pool := x509.NewCertPool()
	pool.AddCert(f.trusted.Cert)
	return start(t, func(c *Config) {
		ids := c.Identities.(idents)
		// Thumbprints are matched in any case, SHA-1 or SHA-256.
		ids["self"] = Credentials{Auth: AuthSelfSigned, Thumbprints: []string{strings.ToLower(sha1Hex), sha256Hex}, Enabled: true}
		ids["ca-dev"] = Credentials{Auth: AuthCertificateAuthority, Enabled: true}
		ids["ca-off"] = Credentials{Auth: AuthCertificateAuthority, Enabled: false}
		c.TrustedCAs = pool
	})
}

// withCert presents cert as the TLS client certificate, over the transport
// e.options chose (the in-process one becomes in-process TLS).
func withCert(e *env, tr transport, cert *tls.Certificate) func(*paho.ClientOptions) {
	return func(o *paho.ClientOptions) {
		cc := o.TLSConfig.Clone()
		if cc == nil || tr == memory {
			cc, _ = tlsutil.ClientConfig(e.certs)
			cc.ServerName = "localhost"
		}
		if cert != nil {
			cc.Certificates = []tls.Certificate{*cert}
		}
		o.SetTLSConfig(cc)
		if tr == memory {
			o.SetCustomOpenConnectionFn(func(*url.URL, paho.ClientOptions) (net.Conn, error) {
				c, err := e.s.DialMemoryTLS(context.Background())
				if err != nil {
					return nil, err
				}
				return tls.Client(c, cc), nil
			})
		}
	}
}

func TestX509Authentication(t *testing.T) {
	f := newX509Fixture(t)
	e := f.start(t)
	now := time.Now()
	caDev := f.issue(t, f.trusted, "ca-dev", tlsutil.Validity{})
	caOff := f.issue(t, f.trusted, "ca-off", tlsutil.Validity{})
	wrongCN := f.issue(t, f.trusted, "someone-else", tlsutil.Validity{})
	expired := f.issue(t, f.trusted, "ca-dev", tlsutil.Validity{NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)})
	notYet := f.issue(t, f.trusted, "ca-dev", tlsutil.Validity{NotBefore: now.Add(24 * time.Hour), NotAfter: now.Add(48 * time.Hour)})
	untrusted := f.issue(t, f.untrusted, "ca-dev", tlsutil.Validity{})
	selfExpired, err := tlsutil.SelfSigned("self", tlsutil.Validity{NotBefore: now.Add(-48 * time.Hour), NotAfter: now.Add(-24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			tests := []struct {
				name     string
				id       string
				cert     *tls.Certificate
				password string
				wantErr  string // "" accepted; else part of paho's CONNACK error text
			}{
				{name: "self-signed, primary thumbprint (SHA-1)", id: "self", cert: &f.self},
				{name: "self-signed, secondary thumbprint (SHA-256)", id: "self", cert: &f.self2},
				{name: "self-signed, another certificate", id: "self", cert: &f.other, wantErr: "not Authorized"},
				{name: "self-signed, no certificate", id: "self", wantErr: "not Authorized"},
				{name: "self-signed, expired", id: "self", cert: &selfExpired, wantErr: "not Authorized"},
				{name: "self-signed with a SAS token", id: "self", cert: &f.self, password: token("self", key1, time.Hour), wantErr: "not Authorized"},
				{name: "CA-signed", id: "ca-dev", cert: &caDev},
				{name: "CA-signed, wrong CN", id: "ca-dev", cert: &wrongCN, wantErr: "not Authorized"},
				{name: "CA-signed, expired", id: "ca-dev", cert: &expired, wantErr: "not Authorized"},
				{name: "CA-signed, not yet valid", id: "ca-dev", cert: &notYet, wantErr: "not Authorized"},
				{name: "CA-signed, untrusted CA", id: "ca-dev", cert: &untrusted, wantErr: "not Authorized"},
				{name: "CA-signed, self-signed certificate", id: "ca-dev", cert: &f.self, wantErr: "not Authorized"},
				{name: "CA-signed, another device's certificate", id: "ca-dev", cert: &caOff, wantErr: "not Authorized"},
				{name: "CA-signed, disabled", id: "ca-off", cert: &caOff, wantErr: "unavailable"},
				{name: "SAS device presenting a certificate", id: "d1", cert: &caDev, password: token("d1", key1, time.Hour)},
				{name: "SAS device with a certificate and no token", id: "d1", cert: &caDev, wantErr: "not Authorized"},
			}
			for _, tt := range tests {
				o := e.options(t, tr, tt.id, tt.password, true)
				withCert(e, tr, tt.cert)(o)
				c := paho.NewClient(o)
				tok := c.Connect()
				if !tok.WaitTimeout(10 * time.Second) {
					t.Fatalf("%s: connect timed out", tt.name)
				}
				err := tok.Error()
				if tt.wantErr == "" {
					if err != nil {
						t.Errorf("%s: %v", tt.name, err)
					}
					c.Disconnect(0)
					continue
				}
				if err == nil || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tt.wantErr)) {
					t.Errorf("%s: err = %v, want %q", tt.name, err, tt.wantErr)
				}
			}
		})
	}
}

// TestX509InProcessWithoutTLS: the plain in-process transport carries no
// certificate, so an X.509 device is refused on it.
func TestX509InProcessWithoutTLS(t *testing.T) {
	f := newX509Fixture(t)
	e := f.start(t)
	if _, err := connect(t, e, memory, "self", "", true); err == nil || !strings.Contains(err.Error(), "not Authorized") {
		t.Fatalf("err = %v, want not authorized", err)
	}
}

// TestTrustCA: a CA trusted after start admits its devices.
func TestTrustCA(t *testing.T) {
	f := newX509Fixture(t)
	e := start(t, func(c *Config) {
		c.Identities.(idents)["ca-dev"] = Credentials{Auth: AuthCertificateAuthority, Enabled: true}
	})
	cert := f.issue(t, f.trusted, "ca-dev", tlsutil.Validity{})
	try := func() error {
		o := e.options(t, tlsTCP, "ca-dev", "", true)
		withCert(e, tlsTCP, &cert)(o)
		c := paho.NewClient(o)
		tok := c.Connect()
		tok.WaitTimeout(10 * time.Second)
		if tok.Error() == nil {
			c.Disconnect(0)
		}
		return tok.Error()
	}
	if err := try(); err == nil {
		t.Fatal("connected before its CA was trusted")
	}
	e.s.TrustCA(f.trusted.Cert)
	if err := try(); err != nil {
		t.Fatalf("after TrustCA: %v", err)
	}
}

// TestClientConnIsTheAcceptedConn guards the broker's one reach into mochi's
// client: Net.Conn is the connection the listener accepted, so its TLS
// state is the device's.
func TestClientConnIsTheAcceptedConn(t *testing.T) {
	f := newX509Fixture(t)
	e := f.start(t)
	o := e.options(t, tlsTCP, "self", "", true)
	withCert(e, tlsTCP, &f.self)(o)
	c := paho.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	defer c.Disconnect(0)
	cl, ok := e.s.mochi.Clients.Get("self")
	if !ok {
		t.Fatal("mochi has no client self")
	}
	tc, ok := clientConn(cl).(*tls.Conn)
	if !ok {
		t.Fatalf("client connection is %T, want *tls.Conn", clientConn(cl))
	}
	if got := tc.ConnectionState().PeerCertificates; len(got) == 0 || !got[0].Equal(f.self.Leaf) {
		t.Fatal("the connection's peer certificate is not the device's")
	}
}

// TestModuleX509: a module registered with a self-signed certificate's
// thumbprint connects as deviceId/moduleId with that certificate, over TLS
// and in-process TLS; another certificate, none, and the certificates of
// its device or another identity are refused, and the module's certificate
// does not authenticate a device.
func TestModuleX509(t *testing.T) {
	f := newX509Fixture(t)
	modCert, err := tlsutil.SelfSigned("d1/xm", tlsutil.Validity{})
	if err != nil {
		t.Fatal(err)
	}
	modThumb, _ := tlsutil.Thumbprints(modCert.Certificate[0])
	sha1Hex, _ := tlsutil.Thumbprints(f.self.Certificate[0])
	e := start(t, func(c *Config) {
		ids := c.Identities.(idents)
		ids["self"] = Credentials{Auth: AuthSelfSigned, Thumbprints: []string{sha1Hex}, Enabled: true}
		c.Modules = moduleIdents{
			"d1/xm": {Auth: AuthSelfSigned, Thumbprints: []string{modThumb}, Enabled: true},
			"d1/m1": {PrimaryKey: modKey1, Enabled: true},
		}
	})
	for _, tr := range transports {
		t.Run(string(tr), func(t *testing.T) {
			tests := []struct {
				name, identity string
				cert           *tls.Certificate
				password       string
				wantErr        string
			}{
				{name: "module certificate", identity: "d1/xm", cert: &modCert},
				{name: "another certificate", identity: "d1/xm", cert: &f.other, wantErr: "not Authorized"},
				{name: "no certificate", identity: "d1/xm", wantErr: "not Authorized"},
				{name: "a device's certificate for the module", identity: "d1/xm", cert: &f.self, wantErr: "not Authorized"},
				{name: "module certificate and a SAS token", identity: "d1/xm", cert: &modCert, password: moduleToken("d1", "xm", modKey1), wantErr: "not Authorized"},
				{name: "module certificate for a SAS module", identity: "d1/m1", cert: &modCert, wantErr: "not Authorized"},
				{name: "module certificate for a self-signed device", identity: "self", cert: &modCert, wantErr: "not Authorized"},
			}
			for _, tt := range tests {
				o := e.options(t, tr, tt.identity, tt.password, true)
				if strings.Contains(tt.identity, "/") {
					o.SetUsername(host + "/" + tt.identity + "/?api-version=" + iothub.APIVersion)
				}
				withCert(e, tr, tt.cert)(o)
				c := paho.NewClient(o)
				tok := c.Connect()
				if !tok.WaitTimeout(10 * time.Second) {
					t.Fatalf("%s: connect timed out", tt.name)
				}
				err := tok.Error()
				if tt.wantErr == "" {
					if err != nil {
						t.Errorf("%s: %v", tt.name, err)
					} else {
						waitFor(t, tt.identity+" connected", func() bool { return e.s.Connected(tt.identity) })
					}
					c.Disconnect(0)
					continue
				}
				if err == nil || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tt.wantErr)) {
					t.Errorf("%s: err = %v, want %q", tt.name, err, tt.wantErr)
				}
			}
		})
	}
}
