package broker

import (
	"strings"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// moduleIdents is a fake of ModuleIdentities keyed by "deviceId/moduleId".
type moduleIdents map[string]Credentials

func (m moduleIdents) ModuleCredentials(deviceID, moduleID string) (Credentials, error) {
	c, ok := m[deviceID+"/"+moduleID]
	if !ok {
		return Credentials{}, ErrUnknownModule
	}
	return c, nil
}

var (
	modKey1 = []byte("module-one-32-bytes-long-0123456")
	modKey2 = []byte("module-two-32-bytes-long-0123456")
)

func withModules(c *Config) {
	c.Modules = moduleIdents{
		"d1/m1":       {PrimaryKey: modKey1, Enabled: true},
		"d1/m2":       {PrimaryKey: modKey2, Enabled: true},
		"disabled/m1": {PrimaryKey: modKey1, Enabled: false},
	}
}

func moduleToken(dev, mod string, key []byte) string {
	return iothub.NewSAS(iothub.ModuleResource(host, dev, mod), key, "", time.Now().Add(time.Hour))
}

// connectModule connects identity "dev/mod" with the username IoT Hub expects.
func connectModule(t *testing.T, e *env, identity, password string) (paho.Client, error) {
	t.Helper()
	o := e.options(t, memory, identity, password, true)
	o.SetUsername(host + "/" + identity + "/?api-version=" + iothub.APIVersion)
	c := paho.NewClient(o)
	tok := c.Connect()
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatal("connect timed out")
	}
	if err := tok.Error(); err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Disconnect(0) })
	return c, nil
}

func TestModuleAuthentication(t *testing.T) {
	e := start(t, withModules)
	tests := []struct {
		name     string
		identity string
		password string
		wantErr  string
	}{
		{"module key", "d1/m1", moduleToken("d1", "m1", modKey1), ""},
		{"policy with DeviceConnect", "d1/m1", iothub.NewSAS(iothub.ModuleResource(host, "d1", "m1"), policyKey, "device", time.Now().Add(time.Hour)), ""},
		{"device key for the module", "d1/m1", moduleToken("d1", "m1", key1), "not Authorized"},
		{"device token for the module", "d1/m1", token("d1", key1, time.Hour), "not Authorized"},
		{"another module's key", "d1/m1", moduleToken("d1", "m1", modKey2), "not Authorized"},
		{"another module's token", "d1/m1", moduleToken("d1", "m2", modKey2), "not Authorized"},
		{"unknown module", "d1/ghost", moduleToken("d1", "ghost", modKey1), "not Authorized"},
		{"module of a disabled device", "disabled/m1", moduleToken("disabled", "m1", modKey1), "unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := connectModule(t, e, tt.identity, tt.password)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				c.Disconnect(0)
				return
			}
			if err == nil || !strings.Contains(strings.ToLower(err.Error()), strings.ToLower(tt.wantErr)) {
				t.Fatalf("err = %v, want %q", err, tt.wantErr)
			}
		})
	}
	// A module's key does not authenticate its device, whatever resource it signs.
	for name, pw := range map[string]string{
		"module key, device resource": token("d1", modKey1, time.Hour),
		"module token":                moduleToken("d1", "m1", modKey1),
	} {
		if _, err := connect(t, e, memory, "d1", pw, true); err == nil || !strings.Contains(err.Error(), "not Authorized") {
			t.Errorf("device with %s: err = %v, want a refusal", name, err)
		}
	}
	// Without ModuleIdentities every module is refused.
	plain := start(t)
	if _, err := connectModule(t, plain, "d1/m1", moduleToken("d1", "m1", modKey1)); err == nil {
		t.Error("a hub without modules accepted a module")
	}
}

func TestModuleIsolation(t *testing.T) {
	e := start(t, withModules)
	got := map[string]chan string{"d1": make(chan string, 10), "d1/m1": make(chan string, 10)}
	dev, err := connect(t, e, memory, "d1", token("d1", key1, time.Hour), true)
	if err != nil {
		t.Fatal(err)
	}
	mod, err := connectModule(t, e, "d1/m1", moduleToken("d1", "m1", modKey1))
	if err != nil {
		t.Fatal(err)
	}
	for id, c := range map[string]paho.Client{"d1": dev, "d1/m1": mod} {
		ch := got[id]
		subscribe(t, c, iothub.FilterMethods, 0, func(_ paho.Client, m paho.Message) { ch <- m.Topic() })
	}
	waitFor(t, "subscriptions", func() bool {
		return e.s.Subscribed("d1", iothub.FilterMethods) && e.s.Subscribed("d1/m1", iothub.FilterMethods)
	})
	if e.s.Subscribed("d1/m2", iothub.FilterMethods) {
		t.Fatal("an unconnected module reads as subscribed")
	}
	// Each call reaches its own connection only: the module's call is sent
	// first, so the device sees it first if it leaked.
	if err := e.s.Deliver("d1/m1", iothub.MethodRequestTopic("mod", "1"), []byte("null")); err != nil {
		t.Fatal(err)
	}
	if err := e.s.Deliver("d1", iothub.MethodRequestTopic("dev", "2"), []byte("null")); err != nil {
		t.Fatal(err)
	}
	if m := receive(t, got["d1"], "device call"); m != iothub.MethodRequestTopic("dev", "2") {
		t.Fatalf("device saw %q", m)
	}
	if m := receive(t, got["d1/m1"], "module call"); m != iothub.MethodRequestTopic("mod", "1") {
		t.Fatalf("module saw %q", m)
	}
	// Module telemetry reaches the hub under the module's identity.
	if tok := mod.Publish(iothub.ModuleTelemetryTopic("d1", "m1"), 1, false, "t"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("module telemetry: %v", tok.Error())
	}
	waitFor(t, "module telemetry at the hub", func() bool {
		for _, p := range e.hub.snapshot() {
			if p == "d1/m1 telemetry  t" {
				return true
			}
		}
		return false
	})
}

func TestModuleTopicViolations(t *testing.T) {
	e := start(t, withModules)
	tests := []struct {
		name     string
		identity string
		act      func(c paho.Client) paho.Token
	}{
		{"device subscribes to its module's inputs", "d1", func(c paho.Client) paho.Token {
			return c.Subscribe("devices/d1/modules/m1/inputs/#", 1, nil)
		}},
		{"device publishes as its module", "d1", func(c paho.Client) paho.Token {
			return c.Publish(iothub.ModuleTelemetryTopic("d1", "m1"), 1, false, "x")
		}},
		{"module subscribes to its device's messages", "d1/m1", func(c paho.Client) paho.Token {
			return c.Subscribe("devices/d1/messages/devicebound/#", 1, nil)
		}},
		{"module subscribes to another module's inputs", "d1/m1", func(c paho.Client) paho.Token {
			return c.Subscribe("devices/d1/modules/m2/inputs/#", 1, nil)
		}},
		{"module publishes as its device", "d1/m1", func(c paho.Client) paho.Token {
			return c.Publish(iothub.TelemetryTopic("d1"), 1, false, "x")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c paho.Client
			var err error
			if tt.identity == "d1" {
				c, err = connect(t, e, memory, "d1", token("d1", key1, time.Hour), true)
			} else {
				c, err = connectModule(t, e, tt.identity, moduleToken("d1", "m1", modKey1))
			}
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, "connected", func() bool { return e.s.Connected(tt.identity) })
			tt.act(c).WaitTimeout(2 * time.Second)
			waitFor(t, "the connection to close", func() bool { return !c.IsConnectionOpen() && !e.s.Connected(tt.identity) })
		})
	}
	// A module's own input filter is allowed.
	c, err := connectModule(t, e, "d1/m1", moduleToken("d1", "m1", modKey1))
	if err != nil {
		t.Fatal(err)
	}
	subscribe(t, c, "devices/d1/modules/m1/inputs/#", 1, func(paho.Client, paho.Message) {})
	if !c.IsConnectionOpen() {
		t.Fatal("the module's own input filter closed its connection")
	}
}
