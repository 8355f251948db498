package main

import (
	"crypto/tls"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/fleetsim/fleetsim/internal/iothub"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
)

// TestBinaryModulesAndX509Identities drives the module commands and the
// X.509 registrations against a served hub: a module created with a
// self-signed certificate connects as deviceId/moduleId over MQTT/TLS with
// the files --cert-out wrote, answers `modules invoke`, and sees `modules
// twin` patches; its certificate does not authenticate a device.
func TestBinaryModulesAndX509Identities(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	certs := filepath.Join(dir, "certs")
	startServe(t, data)
	run := func(args ...string) string {
		t.Helper()
		code, stdout, stderr := fleetsim(t, dir, append(args, "--data", data)...)
		if code != 0 {
			t.Fatalf("fleetsim %s: exit %d: %s", strings.Join(args, " "), code, stderr)
		}
		return stdout
	}
	var ident struct {
		DeviceID, ModuleID string
		Authentication     struct {
			Type           string
			X509Thumbprint struct{ PrimaryThumbprint *string }
		}
	}
	run("devices", "create", "gw1")
	clientJSON(t, data, &ident, "modules", "create", "gw1", "edge", "--x509", "self-signed", "--cert-out", certs)
	if ident.Authentication.Type != "selfSigned" || ident.Authentication.X509Thumbprint.PrimaryThumbprint == nil {
		t.Fatalf("X.509 module %+v", ident)
	}
	clientJSON(t, data, &ident, "devices", "create", "cam1", "--x509", "self-signed", "--cert-out", certs)
	if ident.Authentication.Type != "selfSigned" {
		t.Fatalf("X.509 device %+v", ident)
	}
	if code, _, stderr := fleetsim(t, dir, "certs", "ca", "--out", filepath.Join(certs, "ca")); code != 0 {
		t.Fatalf("certs ca: %s", stderr)
	}
	clientJSON(t, data, &ident, "devices", "create", "cam2", "--x509", "ca", "--cert-out", certs,
		"--device-ca", filepath.Join(certs, "ca", "ca.pem"), "--device-ca-key", filepath.Join(certs, "ca", "ca-key.pem"))
	if ident.Authentication.Type != "certificateAuthority" {
		t.Fatalf("CA-signed device %+v", ident)
	}
	run("modules", "create", "gw1", "telemetry")
	var mods []struct{ ModuleID string }
	clientJSON(t, data, &mods, "modules", "list", "gw1")
	if len(mods) != 2 {
		t.Fatalf("modules of gw1: %+v", mods)
	}
	if out := run("modules", "get", "gw1", "edge"); !strings.Contains(out, "selfSigned") {
		t.Errorf("modules get: %s", out)
	}

	var conn connection
	b, _ := os.ReadFile(filepath.Join(data, "connection.json"))
	if err := json.Unmarshal(b, &conn); err != nil {
		t.Fatal(err)
	}
	connect := func(identity, certName string) (paho.Client, error) {
		tc, err := tlsutil.ClientConfig(tlsutil.Files{CAFile: conn.CAFile})
		if err != nil {
			t.Fatal(err)
		}
		certFile, keyFile := tlsutil.DeviceFiles(certs, certName)
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			t.Fatal(err)
		}
		tc.Certificates = []tls.Certificate{cert}
		tc.ServerName = "localhost"
		o := paho.NewClientOptions().AddBroker("ssl://" + dialable(conn.MQTTAddr)).SetClientID(identity).
			SetUsername(conn.HostName + "/" + identity + "/?api-version=" + iothub.APIVersion).
			SetTLSConfig(tc).SetAutoReconnect(false).SetProtocolVersion(4).SetCleanSession(false)
		c := paho.NewClient(o)
		tok := c.Connect()
		if !tok.WaitTimeout(20 * time.Second) {
			t.Fatal("connect timed out")
		}
		if tok.Error() != nil {
			return nil, tok.Error()
		}
		t.Cleanup(func() { c.Disconnect(0) })
		return c, nil
	}
	if _, err := connect("cam1", "gw1.edge"); err == nil || !strings.Contains(err.Error(), "not Authorized") {
		t.Errorf("device cam1 with the module's certificate: %v, want refused", err)
	}
	mod, err := connect("gw1/edge", "gw1.edge")
	if err != nil {
		t.Fatal(err)
	}
	desired := make(chan string, 4)
	answered := func(c paho.Client, m paho.Message) {
		_, rid, err := iothub.ParseMethodRequestTopic(m.Topic())
		if err != nil {
			return
		}
		c.Publish(iothub.MethodResponseTopic(200, rid), 0, false, `{"module":"edge"}`)
	}
	for filter, h := range map[string]paho.MessageHandler{
		"$iothub/methods/POST/#":                  answered,
		"$iothub/twin/PATCH/properties/desired/#": func(_ paho.Client, m paho.Message) { desired <- string(m.Payload()) },
	} {
		if tok := mod.Subscribe(filter, 0, h); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
			t.Fatalf("subscribe %s: %v", filter, tok.Error())
		}
	}
	var res struct {
		Status  int
		Payload map[string]string
	}
	clientJSON(t, data, &res, "modules", "invoke", "gw1", "edge", "ping", "--payload", `{"hello":1}`, "--timeout", "10s")
	if res.Status != 200 || res.Payload["module"] != "edge" {
		t.Errorf("modules invoke: %+v", res)
	}
	var twin struct {
		ModuleID   string
		Properties struct{ Desired map[string]any }
	}
	clientJSON(t, data, &twin, "modules", "twin", "gw1", "edge", "--desired", `{"interval":30}`)
	if twin.ModuleID != "edge" || twin.Properties.Desired["interval"] != 30.0 {
		t.Errorf("modules twin: %+v", twin)
	}
	select {
	case p := <-desired:
		if !strings.Contains(p, `"interval":30`) {
			t.Errorf("the module got desired patch %s", p)
		}
	case <-time.After(20 * time.Second):
		t.Error("the module got no desired patch")
	}
	run("modules", "delete", "gw1", "telemetry")
	clientJSON(t, data, &mods, "modules", "list", "gw1")
	if len(mods) != 1 {
		t.Errorf("modules after delete: %+v", mods)
	}
}
