package registry_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs/query"
	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/hubjobs/regstore"
	"github.com/fleetsim/fleetsim/internal/iothub"
	"github.com/fleetsim/fleetsim/internal/testkit"
)

func hasCode(err error, c iothub.Code) bool {
	var e *iothub.Error
	return errors.As(err, &e) && e.Code == c
}

func TestModuleIdentities(t *testing.T) {
	for _, persistent := range []bool{false, true} {
		t.Run(fmt.Sprintf("persistent=%v", persistent), func(t *testing.T) {
			ctx := context.Background()
			r, _, _ := newReg(t, persistent)
			if _, err := r.CreateModule(ctx, registry.Module{DeviceID: "ghost", ModuleID: "m"}); !errors.Is(err, registry.ErrDeviceNotFound) {
				t.Fatalf("module on an unknown device: %v", err)
			}
			if _, err := r.CreateDevice(ctx, registry.Device{DeviceID: "d1"}); err != nil {
				t.Fatal(err)
			}
			m, err := r.CreateModule(ctx, registry.Module{DeviceID: "d1", ModuleID: "m1", ManagedBy: "ops"})
			if err != nil {
				t.Fatal(err)
			}
			if m.Authentication.SymmetricKey.PrimaryKey == "" || m.Etag == "" || m.ConnectionState != registry.StateDisconnected {
				t.Fatalf("created module = %+v", m)
			}
			tests := []struct {
				name string
				mod  registry.Module
				code iothub.Code
			}{
				{"twice", registry.Module{DeviceID: "d1", ModuleID: "m1"}, iothub.CodeModuleAlreadyExistsOnDevice},
				{"bad id", registry.Module{DeviceID: "d1", ModuleID: "a b"}, iothub.CodeArgumentInvalid},
				{"bad key", registry.Module{DeviceID: "d1", ModuleID: "m9", Authentication: registry.Authentication{SymmetricKey: registry.SymmetricKey{PrimaryKey: "!"}}}, iothub.CodeArgumentInvalid},
				{"device id naming a module", registry.Module{DeviceID: "d1/m1", ModuleID: "m9"}, iothub.CodeDeviceNotFound},
			}
			for _, tt := range tests {
				if _, err := r.CreateModule(ctx, tt.mod); !hasCode(err, tt.code) {
					t.Errorf("%s: err = %v, want %s", tt.name, err, tt.code.Name)
				}
			}
			if _, err := r.GetModule("d1", "nope"); !hasCode(err, iothub.CodeModuleNotFound) {
				t.Fatalf("unknown module: %v", err)
			}
			if _, err := r.GetDevice("d1/m1"); !hasCode(err, iothub.CodeDeviceNotFound) {
				t.Fatalf("GetDevice of a module key: %v", err)
			}
			if _, err := r.UpdateModule(ctx, registry.Module{DeviceID: "d1", ModuleID: "m1"}, `"stale"`); !hasCode(err, iothub.CodePreconditionFailed) {
				t.Fatalf("stale etag: %v", err)
			}
			up, err := r.UpdateModule(ctx, registry.Module{DeviceID: "d1", ModuleID: "m1", ManagedBy: "edge"}, m.Etag)
			if err != nil || up.ManagedBy != "edge" || up.Etag == m.Etag || up.Authentication != m.Authentication {
				t.Fatalf("update = %+v, %v", up, err)
			}
			// Module twins are their own.
			tw, err := r.PatchModuleTwinWith(ctx, "d1", "m1", mustPatch(t, `{"tags":{"role":"cam"},"properties":{"desired":{"fps":30}}}`), "*")
			if err != nil || tw.ModuleID != "m1" || tw.Tags["role"] != "cam" {
				t.Fatalf("module twin patch = %+v, %v", tw, err)
			}
			if _, err := r.PatchModuleTwinWith(ctx, "d1", "m1", mustPatch(t, `{"tags":{"x":1}}`), `"old"`); !hasCode(err, iothub.CodePreconditionFailed) {
				t.Fatalf("module twin stale etag: %v", err)
			}
			if dt, _ := r.GetTwin("d1"); dt.Tags != nil {
				t.Fatalf("device twin took the module's tags: %+v", dt.Tags)
			}
			q, err := query.Parse("SELECT * FROM devices.modules WHERE tags.role = 'cam'")
			if err != nil {
				t.Fatal(err)
			}
			page, err := r.Query(q, 10, "")
			if err != nil || len(page.Items) != 1 || page.Items[0].(map[string]any)["moduleId"] != "m1" {
				t.Fatalf("devices.modules query = %+v, %v", page.Items, err)
			}
			if _, err := r.CreateModule(ctx, registry.Module{DeviceID: "d1", ModuleID: "m2"}); err != nil {
				t.Fatal(err)
			}
			ms, err := r.ListModules("d1")
			if err != nil || len(ms) != 2 || ms[0].ModuleID != "m1" || ms[1].ModuleID != "m2" {
				t.Fatalf("list = %+v, %v", ms, err)
			}
			if err := r.DeleteModule(ctx, "d1", "m2", `"stale"`); !hasCode(err, iothub.CodePreconditionFailed) {
				t.Fatalf("delete with a stale etag: %v", err)
			}
			if err := r.DeleteModule(ctx, "d1", "m2", "*"); err != nil {
				t.Fatal(err)
			}
			if err := r.DeleteModule(ctx, "d1", "m2", "*"); !hasCode(err, iothub.CodeModuleNotFound) {
				t.Fatalf("second delete: %v", err)
			}
			if st := r.Statistics(); st.TotalDeviceCount != 1 {
				t.Fatalf("modules counted as devices: %+v", st)
			}
			if err := r.DeleteDevice(ctx, "d1", "*"); err != nil {
				t.Fatal(err)
			}
			if _, err := r.GetModule("d1", "m1"); err == nil {
				t.Fatal("a module outlived its device")
			}
			// The id can be registered afresh, without the old modules.
			if _, err := r.CreateDevice(ctx, registry.Device{DeviceID: "d1"}); err != nil {
				t.Fatal(err)
			}
			if ms, err := r.ListModules("d1"); err != nil || len(ms) != 0 {
				t.Fatalf("modules of a re-created device = %+v, %v", ms, err)
			}
		})
	}
}

func mustPatch(t *testing.T, s string) iothub.TwinPatch {
	t.Helper()
	p, err := iothub.ParseTwinPatch([]byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestModuleLimit(t *testing.T) {
	ctx := context.Background()
	r, _, _ := newReg(t, false)
	if _, err := r.CreateDevice(ctx, registry.Device{DeviceID: "d1"}); err != nil {
		t.Fatal(err)
	}
	for i := range registry.MaxModulesPerDevice {
		if _, err := r.CreateModule(ctx, registry.Module{DeviceID: "d1", ModuleID: fmt.Sprintf("m%02d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.CreateModule(ctx, registry.Module{DeviceID: "d1", ModuleID: "one-more"}); !hasCode(err, iothub.CodeIotHubQuotaExceeded) {
		t.Fatalf("module %d: %v", registry.MaxModulesPerDevice+1, err)
	}
}

// TestModulesSurviveReopen: modules, their keys and twins are in the store;
// a module whose device is gone is not loaded.
func TestModulesSurviveReopen(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "registry.db")
	open := func() (*registry.Registry, func()) {
		s, err := regstore.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		r, err := registry.New(registry.Options{Hostname: "hub.local", Store: s})
		if err != nil {
			t.Fatal(err)
		}
		stop := run(t, r)
		return r, func() { stop(); s.Close() }
	}
	r, closeReg := open()
	for _, d := range []string{"d1", "d2"} {
		if _, err := r.CreateDevice(ctx, registry.Device{DeviceID: d}); err != nil {
			t.Fatal(err)
		}
		if _, err := r.CreateModule(ctx, registry.Module{DeviceID: d, ModuleID: "m1"}); err != nil {
			t.Fatal(err)
		}
	}
	want, _ := r.GetModule("d1", "m1")
	if _, err := r.PatchModuleTwinWith(ctx, "d1", "m1", mustPatch(t, `{"properties":{"desired":{"a":1}}}`), "*"); err != nil {
		t.Fatal(err)
	}
	if err := r.DeleteDevice(ctx, "d2", "*"); err != nil {
		t.Fatal(err)
	}
	closeReg()

	r, closeReg = open()
	defer closeReg()
	got, err := r.GetModule("d1", "m1")
	if err != nil || got.Authentication != want.Authentication || got.Etag != want.Etag {
		t.Fatalf("reopened module = %+v, %v; want %+v", got, err, want)
	}
	tw, err := r.GetModuleTwin("d1", "m1")
	if err != nil || tw.Properties.Desired["a"] != 1.0 {
		t.Fatalf("reopened module twin = %+v, %v", tw.Properties.Desired, err)
	}
	if _, err := r.GetModule("d2", "m1"); err == nil {
		t.Fatal("the deleted device's module came back")
	}
	p, _, _, err := r.ModuleCredentials("d1", "m1")
	if err != nil || len(p) == 0 {
		t.Fatalf("module credentials after reopen: %v", err)
	}
}

// TestModuleDeviceSide: a module's twin requests, desired pushes and method
// calls go to the module's own connection, never the device's.
func TestModuleDeviceSide(t *testing.T) {
	ctx := context.Background()
	r, l, _ := newReg(t, true)
	if _, err := r.CreateDevice(ctx, registry.Device{DeviceID: "d1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := r.CreateModule(ctx, registry.Module{DeviceID: "d1", ModuleID: "m1"}); err != nil {
		t.Fatal(err)
	}
	l.setOnline("d1", true)
	l.setOnline("d1/m1", true)
	if got := r.ConnectedCount(); got != 1 {
		t.Fatalf("connected devices = %d; a module is not a device", got)
	}
	if m, _ := r.GetModule("d1", "m1"); m.ConnectionState != registry.StateConnected {
		t.Fatalf("module state = %s", m.ConnectionState)
	}
	if a := answer(t, r, l, "d1/m1", iothub.TwinReportedTopic("1"), `{"temp":21}`); !strings.HasPrefix(a, "d1/m1 $iothub/twin/res/204/?$rid=1") {
		t.Fatalf("reported answer = %q", a)
	}
	if tw, _ := r.GetModuleTwin("d1", "m1"); tw.Properties.Reported["temp"] != 21.0 {
		t.Fatalf("module reported = %v", tw.Properties.Reported)
	}
	if tw, _ := r.GetTwin("d1"); tw.Properties.Reported["temp"] != nil {
		t.Fatal("the module's report reached the device twin")
	}
	if a := answer(t, r, l, "d1/m1", iothub.TwinGetTopic("2"), ""); !strings.HasPrefix(a, "d1/m1 $iothub/twin/res/200/?$rid=2") || !strings.Contains(a, `"temp":21`) {
		t.Fatalf("twin GET answer = %q", a)
	}
	before := len(l.messages())
	if _, err := r.PatchModuleTwinWith(ctx, "d1", "m1", mustPatch(t, `{"properties":{"desired":{"rate":5}}}`), "*"); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, func() bool { return len(l.messages()) > before }, "no desired push")
	if m := l.messages()[before]; !strings.HasPrefix(m, "d1/m1 "+iothub.TwinDesiredPrefix) {
		t.Fatalf("desired push = %q", m)
	}
	l.mu.Lock()
	l.respond = func(id, method, rid string, _ []byte) {
		topic := iothub.MethodResponseTopic(200, rid)
		publish(r, id, topic, `"`+id+`"`)
	}
	l.mu.Unlock()
	req := iothub.MethodRequest{MethodName: "who", Payload: []byte("null")}
	res, err := r.InvokeModuleMethod(ctx, "d1", "m1", req)
	if err != nil || string(res.Payload) != `"d1/m1"` {
		t.Fatalf("module method = %s, %v", res.Payload, err)
	}
	res, err = r.InvokeMethod(ctx, "d1", req)
	if err != nil || string(res.Payload) != `"d1"` {
		t.Fatalf("device method = %s, %v", res.Payload, err)
	}
	if _, err := r.InvokeModuleMethod(ctx, "d1", "ghost", req); !hasCode(err, iothub.CodeModuleNotFound) {
		t.Fatalf("unknown module method: %v", err)
	}
	if _, err := r.InvokeMethod(ctx, "d1/m1", req); !hasCode(err, iothub.CodeDeviceNotFound) {
		t.Fatalf("device method on a module key: %v", err)
	}
	if err := r.DeleteDevice(ctx, "d1", "*"); err != nil {
		t.Fatal(err)
	}
	if l.online("d1/m1") {
		t.Fatal("deleting the device left its module connected")
	}
}

// TestModuleX509Registration: a module registered with a self-signed
// certificate's thumbprints shows them and no keys, and the broker gets
// them; it can go back to SAS; certificateAuthority is refused for modules.
func TestModuleX509Registration(t *testing.T) {
	ctx := context.Background()
	r, _, _ := newReg(t, false)
	if _, err := r.CreateDevice(ctx, registry.Device{DeviceID: "d1"}); err != nil {
		t.Fatal(err)
	}
	thumb := strings.Repeat("AB", 20)
	m, err := r.CreateModule(ctx, registry.Module{DeviceID: "d1", ModuleID: "x", Authentication: registry.Authentication{
		Type: registry.AuthenticationSelfSigned, X509Thumbprint: registry.X509Thumbprint{PrimaryThumbprint: &thumb},
	}})
	if err != nil {
		t.Fatal(err)
	}
	a := m.Authentication
	if a.Type != registry.AuthenticationSelfSigned || a.X509Thumbprint.PrimaryThumbprint == nil || *a.X509Thumbprint.PrimaryThumbprint != thumb || a.SymmetricKey.PrimaryKey != "" {
		t.Fatalf("module authentication %+v", a)
	}
	auth, err := r.ModuleAuthentication("d1", "x")
	if err != nil || auth.Type != registry.AuthenticationSelfSigned || auth.Thumbprints[0] != thumb || len(auth.Primary) != 0 || !auth.Enabled {
		t.Fatalf("ModuleAuthentication = %+v, %v", auth, err)
	}
	back, err := r.UpdateModule(ctx, registry.Module{DeviceID: "d1", ModuleID: "x", Authentication: registry.Authentication{Type: registry.AuthenticationSAS}}, "*")
	if err != nil || back.Authentication.Type != registry.AuthenticationSAS || back.Authentication.SymmetricKey.PrimaryKey == "" {
		t.Fatalf("back to SAS: %+v, %v", back.Authentication, err)
	}
	_, err = r.CreateModule(ctx, registry.Module{DeviceID: "d1", ModuleID: "ca", Authentication: registry.Authentication{Type: registry.AuthenticationCA}})
	if !hasCode(err, iothub.CodeArgumentInvalid) {
		t.Fatalf("certificateAuthority module: %v, want ArgumentInvalid", err)
	}
}
