package runner_test

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"

	"golang.org/x/sync/errgroup"

	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/internal/testkit"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
	"github.com/fleetsim/fleetsim/scenarios"
	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// TestShardsAgainstAServedHub plays the quickstart as two shards, two fleets
// over real MQTT over TLS, against one served hub: shard 1 creates the jobs,
// both judge them, and together they reach every device.
func TestShardsAgainstAServedHub(t *testing.T) {
	ctx := t.Context()
	ep, tlsConf := serveHub(t)
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
			reports[i], err = runner.Run(ctx, withoutLatencyBounds(load(t, "quickstart")), runner.Options{Remote: remote, Shard: i + 1, Shards: 2})
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

// serveHub runs a served hub on loopback for the test and returns how to
// reach it; the hub stops when the test ends.
func serveHub(t *testing.T) (hubjobs.Endpoints, *tls.Config) {
	t.Helper()
	ep := testkit.StartHub(t, testkit.HubOptions{Persistent: true}).Endpoints()
	tlsConf, err := tlsutil.ClientConfig(tlsutil.Files{CAFile: ep.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	return ep, tlsConf
}

// TestJudgingThroughFailedJobReads puts a proxy in front of a served hub's
// REST API that answers job reads with 503: a few of them are retried
// away; when no read gets through, the run does not end early calling the
// job done, and the report says the job could not be read, not that it was
// never created.
func TestJudgingThroughFailedJobReads(t *testing.T) {
	for _, tt := range []struct {
		name       string
		failures   int64 // job reads answered 503 before the hub is reached; -1 all
		wantPass   bool
		wantDetail string
	}{
		{"a few failed reads", 3, true, ""},
		{"no read gets through", -1, false, "the job could not be read: GET /jobs/v2/ping-all-"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			ep, tlsConf := serveHub(t)
			hub, err := url.Parse("https://" + ep.HTTPSAddr)
			if err != nil {
				t.Fatal(err)
			}
			rp := httputil.NewSingleHostReverseProxy(hub)
			tr := &http.Transport{TLSClientConfig: tlsConf}
			defer tr.CloseIdleConnections()
			rp.Transport = tr
			var failed atomic.Int64
			proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/jobs/v2/") &&
					(tt.failures < 0 || failed.Add(1) <= tt.failures) {
					w.Header().Set("Retry-After", "0")
					w.Header().Set("iothub-errorcode", "ServiceUnavailable")
					w.WriteHeader(http.StatusServiceUnavailable)
					w.Write([]byte(`{"Message":"ErrorCode:ServiceUnavailable;the test's proxy refused"}`))
					return
				}
				rp.ServeHTTP(w, r)
			}))
			defer proxy.Close()
			sc, err := scenarios.Load("testdata/one-job.yaml")
			if err != nil {
				t.Fatal(err)
			}
			rep, err := runner.Run(t.Context(), sc, runner.Options{Remote: &runner.Remote{
				ServiceConnectionString: ep.ServiceConnectionString,
				RESTURL:                 proxy.URL,
				MQTTURL:                 "ssl://" + ep.MQTTAddr,
				TLSConfig:               tlsConf,
			}})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Passed != tt.wantPass {
				t.Errorf("passed %v, want %v: %+v", rep.Passed, tt.wantPass, rep.Expectations)
			}
			if tt.wantDetail != "" {
				if len(rep.Expectations) == 0 || !strings.HasPrefix(rep.Expectations[0].Detail, tt.wantDetail) {
					t.Errorf("expectations %+v, want the first to say %q", rep.Expectations, tt.wantDetail)
				}
			}
		})
	}
}

// withoutLatencyBounds drops the scenario's latency limits: they hold on a
// quiet machine, but over TLS with two shards under -race on a loaded one
// they measure the machine, and these tests check what sharding does.
func withoutLatencyBounds(sc *scenarios.Scenario) *scenarios.Scenario {
	for i := range sc.Expectations {
		sc.Expectations[i].MaxP99Latency = 0
		sc.Expectations[i].MaxAckP99 = 0
	}
	return sc
}
