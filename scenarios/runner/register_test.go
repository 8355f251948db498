package runner

import (
	"bytes"
	"context"
	"fmt"
	"testing"

	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
	"github.com/fleetsim/fleetsim/scenarios"
)

// TestRegisterUsesIoTHubCalls registers a fleet on the embedded hub and
// through the REST API of a served one, with IoT Hub's registry semantics
// (a bulk update of a missing device is DeviceNotFound): new devices are
// created, existing ones updated to the run's keys and the scenario's tags,
// or, with keep, left alone.
func TestRegisterUsesIoTHubCalls(t *testing.T) {
	sc, err := scenarios.Load("quickstart")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	st, err := hubjobs.New(hubjobs.Config{HTTPSAddr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("stack: %v", err)
		}
	}()
	if err := waitReady(ctx, st, done); err != nil {
		t.Fatal(err)
	}
	ep := st.Endpoints()
	tlsConf, err := tlsutil.ClientConfig(tlsutil.Files{CAFile: ep.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	rest, err := newRESTTarget(Remote{ServiceConnectionString: ep.ServiceConnectionString, RESTURL: "https://" + ep.HTTPSAddr, TLSConfig: tlsConf})
	if err != nil {
		t.Fatal(err)
	}
	specs := func() (out []scenarios.DeviceSpec) {
		for d := range sc.DeviceSpecs(0, 1) {
			out = append(out, d)
		}
		return out
	}()
	for _, tt := range []struct {
		name string
		hub  target
	}{
		{"embedded", stackTarget{st}},
		{"rest", rest},
	} {
		t.Run(tt.name, func(t *testing.T) {
			reg := st.Registry
			for _, d := range specs {
				_ = reg.DeleteDevice(ctx, d.ID, "*")
			}
			// One device exists already, with other tags and keys.
			old := specs[len(specs)/2]
			if _, err := reg.CreateDevice(ctx, registry.Device{DeviceID: old.ID}); err != nil {
				t.Fatal(err)
			}
			if _, err := reg.PatchTwin(ctx, old.ID, []byte(`{"tags":{"stale":true}}`), "*"); err != nil {
				t.Fatal(err)
			}
			p := &player{sc: sc, hub: tt.hub, shards: 1, indexes: sc.ShardIndexes(0, 1), secret: []byte("run-1")}
			if err := p.register(ctx, false); err != nil {
				t.Fatal(err)
			}
			check := func(secret string) {
				t.Helper()
				q := &player{secret: []byte(secret)}
				for _, d := range specs {
					key, _, _, err := reg.Credentials(d.ID)
					if err != nil || !bytes.Equal(key, q.deviceKey(d.ID)) {
						t.Fatalf("%s: registered with another key (%v)", d.ID, err)
					}
				}
				tw, err := reg.GetTwin(old.ID)
				if err != nil || len(old.Tags) == 0 {
					t.Fatalf("twin of %s: %v (scenario tags %v)", old.ID, err, old.Tags)
				}
				for k, v := range old.Tags {
					if fmt.Sprint(tw.Tags[k]) != fmt.Sprint(v) {
						t.Errorf("the existing device's tags are not the scenario's: %v, want %v", tw.Tags, old.Tags)
					}
				}
			}
			check("run-1")

			// A second run updates the keys of the devices it finds.
			p.secret = []byte("run-2")
			if err := p.register(ctx, false); err != nil {
				t.Fatal(err)
			}
			check("run-2")

			// keep leaves existing devices as they are.
			p.secret = []byte("run-3")
			if err := p.register(ctx, true); err != nil {
				t.Fatal(err)
			}
			check("run-2")
		})
	}
}
