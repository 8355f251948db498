package runner_test

import (
	"context"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// TestShardsAgainstAServedHub plays the quickstart as two shards, two fleets
// over real MQTT over TLS, against one served hub: shard 1 creates the jobs,
// both judge them, and together they reach every device.
func TestShardsAgainstAServedHub(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	ready := make(chan hubjobs.Endpoints, 1)
	done := make(chan error, 1)
	go func() {
		done <- runner.Serve(ctx, runner.ServeOptions{
			DataDir: t.TempDir(), HTTPSAddr: "127.0.0.1:0", MQTTAddr: "127.0.0.1:0",
			Ready: func(ep hubjobs.Endpoints) { ready <- ep },
		})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()
	var ep hubjobs.Endpoints
	select {
	case ep = <-ready:
	case err := <-done:
		t.Fatalf("Serve: %v", err)
	}
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
	reports := make([]*runner.Report, 2)
	var g errgroup.Group
	for i := range 2 {
		g.Go(func() error {
			var err error
			reports[i], err = runner.Run(ctx, load(t, "quickstart"), runner.Options{Remote: remote, Shard: i + 1, Shards: 2})
			return err
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	devices := 0
	for i, rep := range reports {
		devices += rep.Devices
		for _, e := range rep.Expectations {
			if !e.Passed {
				t.Errorf("shard %d: %s: %s", i+1, e.Description, e.Detail)
			}
		}
		if rep.Shard == "" || len(rep.Jobs) != 2 || rep.Jobs[0].DeviceCount != 200 {
			t.Errorf("shard %d report: shard %q, jobs %+v", i+1, rep.Shard, rep.Jobs)
		}
	}
	if devices != 200 {
		t.Errorf("the shards ran %d devices, want 200", devices)
	}
}
