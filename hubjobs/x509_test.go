package hubjobs_test

import (
	"context"
	"crypto/tls"
	"errors"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/internal/iothub"
	"github.com/fleetsim/fleetsim/internal/testkit"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
)

// TestX509DevicesEndToEnd: a hub trusts the CAs in its data directory's
// trusted-ca folder, and X.509 devices registered through the registry
// connect over MQTT/TLS with their certificates.
func TestX509DevicesEndToEnd(t *testing.T) {
	dir := t.TempDir()
	ca, err := tlsutil.NewDeviceCA("test CA", 1)
	if err != nil {
		t.Fatal(err)
	}
	if err := hubjobs.TrustCA(dir, "test", tlsutil.EncodeCertPEM(ca.Cert.Raw)); err != nil {
		t.Fatal(err)
	}
	h := testkit.StartHub(t, testkit.HubOptions{DataDir: dir})
	ctx := context.Background()
	caCert, err := ca.Issue("ca-dev", tlsutil.Validity{})
	if err != nil {
		t.Fatal(err)
	}
	selfCert, err := tlsutil.SelfSigned("self-dev", tlsutil.Validity{})
	if err != nil {
		t.Fatal(err)
	}
	thumb, _ := tlsutil.Thumbprints(selfCert.Certificate[0])
	for _, d := range []registry.Device{
		{DeviceID: "ca-dev", Authentication: registry.Authentication{Type: "certificateAuthority"}},
		{DeviceID: "self-dev", Authentication: registry.Authentication{X509Thumbprint: registry.X509Thumbprint{PrimaryThumbprint: &thumb}}},
	} {
		if _, err := h.Registry.CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	connect := func(id string, cert tls.Certificate) error {
		return connectOver(t, h, "ssl://"+h.Endpoints().MQTTAddr, id, cert)
	}
	if err := connect("ca-dev", caCert); err != nil {
		t.Errorf("CA-signed device: %v", err)
	}
	if err := connect("self-dev", selfCert); err != nil {
		t.Errorf("self-signed device: %v", err)
	}
	if err := connect("self-dev", caCert); err == nil || !strings.Contains(err.Error(), "not Authorized") {
		t.Errorf("self-signed device with another certificate: %v", err)
	}
	// MQTT over WebSocket on the REST listener sees the client certificate too.
	ws := "wss://" + h.Endpoints().HTTPSAddr + "/$iothub/websocket"
	if err := connectOver(t, h, ws, "ca-dev", caCert); err != nil {
		t.Errorf("CA-signed device over WebSocket: %v", err)
	}
	if err := connectOver(t, h, ws, "self-dev", selfCert); err != nil {
		t.Errorf("self-signed device over WebSocket: %v", err)
	}
}

// connectOver connects device id at broker with cert as its TLS client certificate.
func connectOver(t *testing.T, h *hubjobs.Hub, broker, id string, cert tls.Certificate) error {
	t.Helper()
	cc, err := tlsutil.ClientConfig(tlsutil.Files{CAFile: h.Endpoints().CAFile})
	if err != nil {
		t.Fatal(err)
	}
	cc.ServerName = "localhost"
	cc.Certificates = []tls.Certificate{cert}
	o := paho.NewClientOptions().SetClientID(id).SetUsername(iothub.DeviceUsername("localhost", id, "test")).
		SetProtocolVersion(4).SetAutoReconnect(false).SetConnectRetry(false).SetConnectTimeout(5 * time.Second).
		AddBroker(broker).SetTLSConfig(cc)
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		return errors.New("connect timed out")
	}
	if tok.Error() == nil {
		c.Disconnect(0)
	}
	return tok.Error()
}
