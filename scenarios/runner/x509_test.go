package runner

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/devicesim"
	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/internal/testkit"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
)

// TestSimulatedX509Devices: simulated devices with certificates connect to
// the embedded hub over the in-process TLS transport, CA-signed (the CA
// trusted at run time) and self-signed.
// With the fleet's shared configuration, each device presents its own
// certificate.
func TestSimulatedX509Devices(t *testing.T) {
	for _, shared := range []bool{false, true} {
		t.Run(map[bool]string{false: "config per device", true: "fleet config"}[shared], func(t *testing.T) {
			testSimulatedX509Devices(t, shared)
		})
	}
}

func testSimulatedX509Devices(t *testing.T, shared bool) {
	st := testkit.StartHub(t, testkit.HubOptions{})
	ctx := context.Background()
	ca, err := tlsutil.NewDeviceCA("run CA", 1)
	if err != nil {
		t.Fatal(err)
	}
	st.TrustCA(ca.Cert)
	caCert, err := ca.Issue("sim-ca", tlsutil.Validity{})
	if err != nil {
		t.Fatal(err)
	}
	selfCert, err := tlsutil.SelfSigned("sim-self", tlsutil.Validity{})
	if err != nil {
		t.Fatal(err)
	}
	thumb, _ := tlsutil.Thumbprints(selfCert.Certificate[0])
	for _, d := range []registry.Device{
		{DeviceID: "sim-ca", Authentication: registry.Authentication{Type: registry.AuthenticationCA}},
		{DeviceID: "sim-self", Authentication: registry.Authentication{Type: registry.AuthenticationSelfSigned, X509Thumbprint: registry.X509Thumbprint{PrimaryThumbprint: &thumb}}},
	} {
		if _, err := st.Registry.CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	tc, err := st.DeviceTLSConfig()
	if err != nil {
		t.Fatal(err)
	}
	if shared {
		tc = devicesim.FleetCertificateConfig(tc)
	}
	tr := devicesim.Transport{Dial: st.DialDevice, DialTLS: st.DialDeviceTLS, TLSConfig: tc}
	runCtx, cancel := context.WithCancel(ctx)
	var devs []*devicesim.Device
	done := make(chan error, 2)
	for id, cert := range map[string]*tls.Certificate{"sim-ca": &caCert, "sim-self": &selfCert} {
		d := devicesim.NewDevice(devicesim.DeviceConfig{
			Identity:  devicesim.Identity{DeviceID: id, Hostname: st.Hostname(), Certificate: cert},
			Transport: tr,
		})
		devs = append(devs, d)
		go func() { done <- d.Run(runCtx) }()
	}
	defer func() {
		cancel()
		for range devs {
			if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
				t.Errorf("device Run: %v", err)
			}
		}
	}()
	testkit.Eventually(t, 20*time.Second, func() bool {
		return devs[0].Connected() && devs[1].Connected() && st.Registry.ConnectedCount() == 2
	}, "X.509 simulated devices connected")
}
