package rollout_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/devicesim"
	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/internal/testkit"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
	"github.com/fleetsim/fleetsim/scenarios/rollout"
)

func TestMain(m *testing.M) { testkit.VerifyNoLeaks(m) }

// dev is one device of a test fleet.
type dev struct {
	id      string
	tags    map[string]any
	offline bool          // registered, never connects
	lateBy  time.Duration // connects only after this long
}

func deviceKey(id string) []byte { k := sha256.Sum256([]byte(id)); return k[:] }

// startFleet registers devs on the hub and runs paho devices for the online
// ones (over MQTT/TLS on loopback) until the test ends. Devices answer any
// method with 200 and acknowledge desired changes.
func startFleet(t *testing.T, h *hubjobs.Hub, devs []dev) {
	t.Helper()
	ctx := t.Context()
	var ops []registry.ExportImportDevice
	for _, d := range devs {
		k := base64.StdEncoding.EncodeToString(deviceKey(d.id))
		ops = append(ops, registry.ExportImportDevice{ID: d.id, ImportMode: "create", Tags: d.tags,
			Authentication: &registry.Authentication{Type: "sas", SymmetricKey: registry.SymmetricKey{PrimaryKey: k, SecondaryKey: k}}})
	}
	if _, err := h.Registry.BulkUpdate(ctx, ops); err != nil {
		t.Fatal(err)
	}
	ep := h.Endpoints()
	tlsConf, err := tlsutil.ClientConfig(tlsutil.Files{CAFile: ep.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	var cfgs []devicesim.DeviceConfig
	online := 0
	for _, d := range devs {
		if d.offline {
			continue
		}
		b := devicesim.Behavior{Methods: map[string]devicesim.MethodBehavior{"*": {}}}
		if d.lateBy > 0 {
			b.Connectivity.OfflineAtStart = 1
			b.Connectivity.OfflineFor = devicesim.Constant(d.lateBy)
		} else {
			online++
		}
		cfgs = append(cfgs, devicesim.DeviceConfig{
			Identity:  devicesim.Identity{DeviceID: d.id, Key: deviceKey(d.id), Hostname: ep.HostName},
			Transport: devicesim.Transport{BrokerURL: "ssl://" + ep.MQTTAddr, TLSConfig: tlsConf},
			Behavior:  b,
		})
	}
	fleet := devicesim.NewFleet(devicesim.FleetConfig{Devices: cfgs})
	fctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fleet.Run(fctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("fleet: %v", err)
		}
	})
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := fleet.WaitConnected(wctx, online); err != nil {
		t.Fatal(err)
	}
}

// parse parses a plan given inline.
func parse(t *testing.T, yaml string) *rollout.Plan {
	t.Helper()
	p, err := rollout.ParsePlan("plan.yaml", []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// run runs plan against h with a state file in a temp dir.
func run(t *testing.T, h rollout.Hub, p *rollout.Plan) (*rollout.State, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.json")
	e, err := rollout.Start(h, p, "plan.yaml", path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	st, err := e.Run(ctx)
	if err != nil {
		t.Fatalf("run: %v (state %+v)", err, st)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	return st, path
}
