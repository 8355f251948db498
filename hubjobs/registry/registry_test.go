package registry_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/hubjobs/regstore"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeLink stands in for the broker at the interface the registry declares.
// Devices marked online are connected and subscribed to every filter;
// respond, if set, plays the device for method requests (called on its own
// goroutine, as a real device answers over the network).
type fakeLink struct {
	r *registry.Registry

	mu      sync.Mutex
	on      map[string]bool
	sent    []string // "device topic payload"
	respond func(deviceID, method, rid string, payload []byte)
	wg      sync.WaitGroup
}

// newFakeLink returns a link whose r the test sets once the registry is built.
func newFakeLink() *fakeLink {
	return &fakeLink{on: map[string]bool{}}
}

func (l *fakeLink) Deliver(id, topic string, payload []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.on[id] {
		return errors.New("not connected")
	}
	l.sent = append(l.sent, id+" "+topic+" "+string(payload))
	if m, rid, err := iothub.ParseMethodRequestTopic(topic); err == nil && l.respond != nil {
		respond := l.respond
		l.wg.Go(func() { respond(id, m, rid, payload) })
	}
	return nil
}

func (l *fakeLink) Disconnect(id string) { l.setOnline(id, false) }

// setOnline connects (and subscribes) or disconnects a device, telling the
// registry as the broker would.
func (l *fakeLink) setOnline(id string, on bool) {
	l.mu.Lock()
	was := l.on[id]
	l.on[id] = on
	l.mu.Unlock()
	switch {
	case on:
		l.r.DeviceConnected(id, []string{iothub.FilterDesired, iothub.FilterMethods})
	case was:
		l.r.DeviceDisconnected(id)
	}
}

func (l *fakeLink) online(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.on[id]
}

func (l *fakeLink) messages() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.sent...)
}

func (l *fakeLink) last() string {
	m := l.messages()
	if len(m) == 0 {
		return ""
	}
	return m[len(m)-1]
}

// newReg builds a registry with a fake link; with persistent it writes to a
// bbolt store in a temporary directory (returned for reopening).
func newReg(t testing.TB, persistent bool) (*registry.Registry, *fakeLink, string) {
	t.Helper()
	var st registry.Persistence
	path := ""
	if persistent {
		path = filepath.Join(t.TempDir(), "registry.db")
		s, err := regstore.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		st = s
	}
	l := newFakeLink()
	r, err := registry.New(registry.Options{Hostname: "hub.local", Store: st, Link: l})
	if err != nil {
		t.Fatal(err)
	}
	l.r = r
	stop := run(t, r)
	t.Cleanup(func() {
		stop()
		l.wg.Wait()
	})
	return r, l, path
}

// run runs r until the returned stop is called (or the test ends), which
// waits for Run and fails the test if Run returned an error.
func run(t testing.TB, r *registry.Registry) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func code(err error) string {
	if err == nil {
		return "ok"
	}
	var e *iothub.Error
	if !errors.As(err, &e) {
		return "not an iothub.Error: " + err.Error()
	}
	return e.Code.Name
}

func errOf[T any](_ T, err error) error { return err }

func must[T any](t testing.TB) func(T, error) T {
	return func(v T, err error) T {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
}

var ctx = context.Background()

func TestDeviceShape(t *testing.T) {
	r, _, _ := newReg(t, false)
	d := must[registry.Device](t)(r.CreateDevice(ctx, registry.Device{DeviceID: "d1"}))
	b, _ := json.Marshal(d)
	var got map[string]any
	json.Unmarshal(b, &got)
	for k, want := range map[string]any{
		"deviceId": "d1", "status": "enabled", "statusReason": nil, "connectionState": "Disconnected",
		"connectionStateUpdatedTime": "0001-01-01T00:00:00Z", "statusUpdatedTime": "0001-01-01T00:00:00Z",
		"lastActivityTime": "0001-01-01T00:00:00Z", "cloudToDeviceMessageCount": 0.0, "deviceScope": nil,
	} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	for _, k := range []string{"generationId", "etag", "authentication", "capabilities", "parentScopes"} {
		if _, ok := got[k]; !ok {
			t.Errorf("%s missing from %s", k, b)
		}
	}
	for _, k := range []string{d.Authentication.SymmetricKey.PrimaryKey, d.Authentication.SymmetricKey.SecondaryKey} {
		if raw, err := base64.StdEncoding.DecodeString(k); err != nil || len(raw) != 32 {
			t.Errorf("generated key %q is not 32 random bytes", k)
		}
	}
	if e, err := base64.StdEncoding.DecodeString(d.Etag); err != nil || strings.Trim(string(e), "0123456789") != "" {
		t.Errorf("device etag %q is not base64 of a decimal string", d.Etag)
	}
	if d.Authentication.Type != "sas" || d.Authentication.SymmetricKey.PrimaryKey == d.Authentication.SymmetricKey.SecondaryKey {
		t.Errorf("authentication %+v", d.Authentication)
	}
	given := base64.StdEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	d2 := must[registry.Device](t)(r.CreateDevice(ctx, registry.Device{DeviceID: "d2", Status: "Disabled",
		Authentication: registry.Authentication{SymmetricKey: registry.SymmetricKey{PrimaryKey: given}}}))
	if d2.Authentication.SymmetricKey.PrimaryKey != given || d2.Status != "disabled" || d2.GenerationID == d.GenerationID {
		t.Errorf("created %+v", d2)
	}
	p, _, enabled, err := r.Credentials("d2")
	if err != nil || string(p) != "0123456789abcdef0123456789abcdef" || enabled {
		t.Errorf("credentials %q %v %v", p, enabled, err)
	}
}

func TestDeviceErrors(t *testing.T) {
	r, _, _ := newReg(t, false)
	d := must[registry.Device](t)(r.CreateDevice(ctx, registry.Device{DeviceID: "d1"}))
	long := strings.Repeat("r", 129)
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"create duplicate", errOf(r.CreateDevice(ctx, registry.Device{DeviceID: "d1"})), "DeviceAlreadyExists"},
		{"create empty id", errOf(r.CreateDevice(ctx, registry.Device{})), "ArgumentInvalid"},
		{"create id with space", errOf(r.CreateDevice(ctx, registry.Device{DeviceID: "a b"})), "ArgumentInvalid"},
		{"create id too long", errOf(r.CreateDevice(ctx, registry.Device{DeviceID: strings.Repeat("a", 129)})), "ArgumentInvalid"},
		{"create bad status", errOf(r.CreateDevice(ctx, registry.Device{DeviceID: "d2", Status: "sleepy"})), "ArgumentInvalid"},
		{"create status reason too long", errOf(r.CreateDevice(ctx, registry.Device{DeviceID: "d2", StatusReason: &long})), "ArgumentInvalid"},
		{"create bad key", errOf(r.CreateDevice(ctx, registry.Device{DeviceID: "d2", Authentication: registry.Authentication{SymmetricKey: registry.SymmetricKey{PrimaryKey: "!!"}}})), "ArgumentInvalid"},
		{"create short key", errOf(r.CreateDevice(ctx, registry.Device{DeviceID: "d2", Authentication: registry.Authentication{SymmetricKey: registry.SymmetricKey{SecondaryKey: "AAAA"}}})), "ArgumentInvalid"},
		{"create x509", errOf(r.CreateDevice(ctx, registry.Device{DeviceID: "d2", Authentication: registry.Authentication{Type: "selfSigned"}})), "ArgumentInvalid"},
		{"get unknown", errOf(r.GetDevice("nope")), "DeviceNotFound"},
		{"update unknown", errOf(r.UpdateDevice(ctx, registry.Device{DeviceID: "nope"}, "*")), "DeviceNotFound"},
		{"update stale quoted etag", errOf(r.UpdateDevice(ctx, registry.Device{DeviceID: "d1"}, `"MTIzNDU="`)), "PreconditionFailed"},
		{"update stale etag", errOf(r.UpdateDevice(ctx, registry.Device{DeviceID: "d1"}, `MTIzNDU=`)), "PreconditionFailed"},
		{"update bad status", errOf(r.UpdateDevice(ctx, registry.Device{DeviceID: "d1", Status: "on"}, "*")), "ArgumentInvalid"},
		{"update with its etag", errOf(r.UpdateDevice(ctx, registry.Device{DeviceID: "d1"}, d.Etag)), "ok"},
		{"update with the old etag", errOf(r.UpdateDevice(ctx, registry.Device{DeviceID: "d1"}, d.Etag)), "PreconditionFailed"},
		{"delete stale etag", r.DeleteDevice(ctx, "d1", d.Etag), "PreconditionFailed"},
		{"delete unknown", r.DeleteDevice(ctx, "nope", "*"), "DeviceNotFound"},
		{"twin of unknown", errOf(r.GetTwin("nope")), "DeviceNotFound"},
		{"credentials of unknown", func() error { _, _, _, err := r.Credentials("nope"); return err }(), "DeviceNotFound"},
	}
	for _, tt := range tests {
		if got := code(tt.err); got != tt.want {
			t.Errorf("%s: %v, want %s", tt.name, tt.err, tt.want)
		}
	}
	if err := errOf(r.GetDevice("nope")); !errors.Is(err, registry.ErrDeviceNotFound) {
		t.Errorf("errors.Is(%v, ErrDeviceNotFound) is false", err)
	}
	if e := iothub.AsError(errOf(r.GetDevice("nope"))); e.HTTPStatus() != 404 || e.Code.Number != 404001 {
		t.Errorf("not found is %d/%d", e.HTTPStatus(), e.Code.Number)
	}
}

func TestUpdateDisableDelete(t *testing.T) {
	r, l, _ := newReg(t, false)
	d := must[registry.Device](t)(r.CreateDevice(ctx, registry.Device{DeviceID: "d1"}))
	must[registry.Device](t)(r.CreateDevice(ctx, registry.Device{DeviceID: "d2"}))
	l.setOnline("d1", true)
	l.setOnline("d2", true)
	if got := must[registry.Device](t)(r.GetDevice("d1")); got.ConnectionState != "Connected" || got.LastActivityTime == "0001-01-01T00:00:00Z" || got.ConnectionStateUpdatedTime == "0001-01-01T00:00:00Z" {
		t.Errorf("connected device %+v", got)
	}
	if n := r.ConnectedCount(); n != 2 {
		t.Errorf("ConnectedCount = %d", n)
	}
	reason := "maintenance"
	upd := must[registry.Device](t)(r.UpdateDevice(ctx, registry.Device{DeviceID: "d1", Status: "disabled", StatusReason: &reason}, `"`+d.Etag+`"`))
	if upd.Status != "disabled" || upd.Etag == d.Etag || upd.StatusUpdatedTime == "0001-01-01T00:00:00Z" || *upd.StatusReason != reason {
		t.Errorf("updated %+v", upd)
	}
	if upd.Authentication.SymmetricKey != d.Authentication.SymmetricKey {
		t.Error("an update without keys changed the keys")
	}
	if l.online("d1") {
		t.Error("disabling did not disconnect the device")
	}
	if s := r.Statistics(); s != (registry.Statistics{TotalDeviceCount: 2, EnabledDeviceCount: 1, DisabledDeviceCount: 1}) {
		t.Errorf("statistics %+v", s)
	}
	if tw := must[registry.Twin](t)(r.GetTwin("d1")); tw.Status != "disabled" || tw.DeviceEtag != upd.Etag || tw.StatusUpdateTime == "0001-01-01T00:00:00Z" {
		t.Errorf("twin after disable %+v", tw)
	}
	if err := r.DeleteDevice(ctx, "d2", `"*"`); err != nil {
		t.Fatal(err)
	}
	if l.online("d2") {
		t.Error("deleting did not disconnect the device")
	}
	if s, n := r.Statistics(), r.ConnectedCount(); s.TotalDeviceCount != 1 || n != 0 {
		t.Errorf("after delete: %+v, %d connected", s, n)
	}
	// Re-creating a deleted id gives a new generation.
	again := must[registry.Device](t)(r.CreateDevice(ctx, registry.Device{DeviceID: "d2"}))
	if again.ConnectionState != "Disconnected" {
		t.Errorf("re-created %+v", again)
	}
	if ids := deviceIDs(r.ListDevices(0)); ids != "d1,d2" {
		t.Errorf("ListDevices = %s", ids)
	}
}

func deviceIDs(ds []registry.Device) string {
	var ids []string
	for _, d := range ds {
		ids = append(ids, d.DeviceID)
	}
	return strings.Join(ids, ",")
}

func TestListDevicesOrderAndMax(t *testing.T) {
	r, _, _ := newReg(t, false)
	for _, id := range []string{"c", "a", "e", "b", "d"} {
		must[registry.Device](t)(r.CreateDevice(ctx, registry.Device{DeviceID: id}))
	}
	if got := deviceIDs(r.ListDevices(3)); got != "a,b,c" {
		t.Errorf("ListDevices(3) = %s", got)
	}
	r.DeleteDevice(ctx, "b", "*")
	must[registry.Device](t)(r.CreateDevice(ctx, registry.Device{DeviceID: "aa"}))
	if got := deviceIDs(r.ListDevices(0)); got != "a,aa,c,d,e" {
		t.Errorf("ListDevices = %s", got)
	}
}

func TestBulkUpdate(t *testing.T) {
	r, _, _ := newReg(t, true)
	must[registry.Device](t)(r.CreateDevice(ctx, registry.Device{DeviceID: "old"}))
	must[registry.Device](t)(r.CreateDevice(ctx, registry.Device{DeviceID: "gone"}))
	res, err := r.BulkUpdate(ctx, []registry.ExportImportDevice{
		{ID: "b1", ImportMode: "create"},
		{ID: "b2", ImportMode: "Create", Tags: map[string]any{"x": 1.0}, Properties: &registry.BulkProperties{Desired: map[string]any{"rate": 5.0}}},
		{ID: "old", ImportMode: "create"},
		{ID: "new", ImportMode: "Update", Status: "disabled"},
		{ID: "gone", ImportMode: "Delete"},
		{ID: "b3", ImportMode: "UpdateIfMatchETag", ETag: "x"},
		{ID: "b4", ImportMode: "sideways"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var failed []string
	for _, e := range res.Errors {
		failed = append(failed, e.DeviceID+":"+e.ErrorCode)
	}
	if res.IsSuccessful || strings.Join(failed, ",") != "old:DeviceAlreadyExists,new:DeviceNotFound,b3:DeviceNotFound,b4:ArgumentInvalid" {
		t.Errorf("bulk result %+v", res)
	}
	tw := must[registry.Twin](t)(r.GetTwin("b2"))
	if tw.Tags["x"] != 1.0 || tw.Properties.Desired["rate"] != 5.0 {
		t.Errorf("bulk twin %+v", tw)
	}
	// IoT Hub: update of a missing device is DeviceNotFound and creates nothing.
	if d, err := r.GetDevice("new"); code(err) != "DeviceNotFound" {
		t.Errorf("update created %+v %v", d, err)
	}
	res, err = r.BulkUpdate(ctx, []registry.ExportImportDevice{{ID: "old", ImportMode: "update", Status: "disabled", Tags: map[string]any{"k": 1.0}}})
	if err != nil || !res.IsSuccessful {
		t.Errorf("update of an existing device: %+v %v", res, err)
	}
	if tw := must[registry.Twin](t)(r.GetTwin("old")); tw.Status != "disabled" || tw.Tags["k"] != 1.0 {
		t.Errorf("updated %+v", tw)
	}
	if _, err := r.GetDevice("gone"); code(err) != "DeviceNotFound" {
		t.Errorf("bulk delete: %v", err)
	}
	res, err = r.BulkUpdate(ctx, []registry.ExportImportDevice{{ID: "old", ImportMode: "updateTwin", Tags: map[string]any{"y": "z"}}})
	if err != nil || !res.IsSuccessful || len(res.Errors) != 0 || res.Warnings == nil {
		t.Errorf("updateTwin: %+v %v", res, err)
	}
	if _, err := r.BulkUpdate(ctx, []registry.ExportImportDevice{{ID: "a", ImportMode: "create"}, {ID: "a", ImportMode: "delete"}}); code(err) != "DeviceDefinedMultipleTimes" {
		t.Errorf("duplicate ids: %v", err)
	}
}
