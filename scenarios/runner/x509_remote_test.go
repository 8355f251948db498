package runner_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/internal/testkit"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// TestX509FleetAgainstAServedHub plays x509-fleet against a served hub over
// real MQTT over TLS: the self-signed group registers its thumbprints
// through REST, the CA-signed group's certificates are signed by a CA the
// hub was told to trust; without that CA the run refuses to start.
func TestX509FleetAgainstAServedHub(t *testing.T) {
	st := testkit.StartHub(t, testkit.HubOptions{Persistent: true})
	ep := st.Endpoints()
	tlsConf, err := tlsutil.ClientConfig(tlsutil.Files{CAFile: ep.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	remote := &runner.Remote{
		ServiceConnectionString: ep.ServiceConnectionString,
		RESTURL:                 "https://" + ep.HTTPSAddr,
		MQTTURL:                 "ssl://" + ep.MQTTAddr,
		TLSConfig:               tlsConf,
	}
	sc := withoutLatencyBounds(load(t, "x509-fleet").Scaled(20))
	if _, err := runner.Run(t.Context(), sc, runner.Options{Remote: remote}); !errors.Is(err, runner.ErrNoDeviceCA) {
		t.Fatalf("CA-signed group without a CA: %v, want ErrNoDeviceCA", err)
	}
	plain := *remote
	plain.MQTTURL = "tcp://" + ep.MQTTAddr
	ca, err := tlsutil.NewDeviceCA("test fleet CA", 1)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := runner.Run(t.Context(), sc, runner.Options{Remote: &plain, DeviceCA: ca}); err == nil {
		t.Fatal("X.509 devices over plain MQTT: no error")
	}
	st.TrustCA(ca.Cert)
	rep, err := runner.Run(t.Context(), sc, runner.Options{Remote: remote, DeviceCA: ca})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range rep.Expectations {
		if !e.Passed {
			t.Errorf("%s: %s", e.Description, e.Detail)
		}
	}
	if rep.Devices != 20 || len(rep.Jobs) != 2 || rep.Jobs[0].Succeeded != 20 {
		t.Errorf("devices %d, jobs %+v", rep.Devices, rep.Jobs)
	}
}

// TestX509FleetKeepsItsCA: an embedded run with a data directory keeps the
// CA it made in device-ca/ and signs with it again on the next run, whose
// devices (registered already) connect. (The second run's jobs exist
// already in the data directory.)
func TestX509FleetKeepsItsCA(t *testing.T) {
	dir := t.TempDir()
	sc := withoutLatencyBounds(load(t, "x509-fleet").Scaled(10))
	var first []byte
	for run := range 2 {
		rep, err := runner.Run(t.Context(), sc, runner.Options{DataDir: dir})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range rep.Expectations {
			if strings.Contains(e.Description, "connected at the end") && !e.Passed {
				t.Errorf("run %d: %s: %s", run+1, e.Description, e.Detail)
			}
		}
		ca, err := os.ReadFile(filepath.Join(dir, runner.DeviceCADir, tlsutil.CACertFile))
		if err != nil {
			t.Fatal(err)
		}
		if run == 0 {
			first = ca
		} else if string(ca) != string(first) {
			t.Error("the second run made a new CA")
		}
	}
}

// TestHostX509Fleet hosts x509-fleet twice on hubs over one data directory,
// as serve --scenario does across a restart: the second start makes new
// certificates, re-registers the self-signed devices' thumbprints and
// signs with the CA kept from the first, and every device connects again.
func TestHostX509Fleet(t *testing.T) {
	dir := t.TempDir()
	sc := load(t, "x509-fleet").Scaled(10)
	for start := range 2 {
		// Each start's hub stops when its subtest ends, before the next.
		t.Run(fmt.Sprintf("start %d", start+1), func(t *testing.T) {
			hub := testkit.StartHub(t, testkit.HubOptions{DataDir: dir})
			ctx, cancel := context.WithCancel(t.Context())
			done := make(chan error, 1)
			go func() { done <- runner.HostFleet(ctx, hub, sc, runner.HostOptions{DataDir: dir}) }()
			testkit.Eventually(t, time.Minute, func() bool { return hub.Registry.ConnectedCount() == 10 }, "the X.509 fleet connected")
			cancel()
			if err := <-done; err != nil {
				t.Fatalf("HostFleet: %v", err)
			}
		})
	}
}
