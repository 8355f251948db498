package runner_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs/restapi"
	"github.com/fleetsim/fleetsim/internal/iothub"
	"github.com/fleetsim/fleetsim/internal/testkit"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// TestHostFleet hosts the quickstart fleet on a hub with a data directory,
// reaches it over HTTPS with the Go client as a back-end would, then stops
// both and hosts the fleet again on a hub over the same data directory:
// devices and jobs are still there.
func TestHostFleet(t *testing.T) {
	dir := t.TempDir()
	var scrape func() string
	serve := func(name string, check func(t *testing.T, c *restapi.Client)) {
		t.Run(name, func(t *testing.T) {
			sc := load(t, "quickstart")
			hub := testkit.StartHub(t, testkit.HubOptions{DataDir: dir, Pacing: sc.Hub.Pacing})
			ctx, cancel := context.WithCancel(t.Context())
			started := make(chan int, 1)
			done := make(chan error, 1)
			go func() {
				done <- runner.HostFleet(ctx, hub, sc, runner.HostOptions{
					DataDir: dir, Started: func(n int) { started <- n },
				})
			}()
			defer func() {
				cancel()
				if err := <-done; err != nil {
					t.Errorf("HostFleet: %v", err)
				}
			}()
			select {
			case n := <-started:
				if n != 200 {
					t.Errorf("HostFleet started %d devices, want 200", n)
				}
			case err := <-done:
				done <- err
				t.Fatalf("HostFleet: %v", err)
			}
			ep := hub.Endpoints()
			if _, err := os.Stat(filepath.Join(dir, "connection.json")); err != nil {
				t.Errorf("connection.json: %v", err)
			}
			tlsConf, err := tlsutil.ClientConfig(tlsutil.Files{CAFile: ep.CAFile})
			if err != nil {
				t.Fatal(err)
			}
			c, err := restapi.NewClient(ep.ServiceConnectionString, restapi.ClientOptions{BaseURL: "https://" + ep.HTTPSAddr, TLSConfig: tlsConf})
			if err != nil {
				t.Fatal(err)
			}
			hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}}
			defer hc.CloseIdleConnections()
			scrape = func() string {
				resp, err := hc.Get("https://" + ep.HTTPSAddr + "/metrics")
				if err != nil {
					t.Fatal(err)
				}
				defer resp.Body.Close()
				b, _ := io.ReadAll(resp.Body)
				if resp.StatusCode != 200 {
					t.Fatalf("GET /metrics: %d %s", resp.StatusCode, b)
				}
				return string(b)
			}
			check(t, c)
			c.CloseIdleConnections()
		})
	}
	serve("first", func(t *testing.T, c *restapi.Client) {
		ctx := t.Context()
		rows, err := c.Query(ctx, "SELECT COUNT() AS n FROM devices WHERE tags.kind = 'sensor'", 100)
		if err != nil || len(rows) != 1 || string(rows[0]) != `{"n":200}` {
			t.Fatalf("count: %s, %v", rows, err)
		}
		// A device of the fleet answers once it is connected.
		rt, ct := 10, 10
		var res iothub.MethodResult
		for range 100 {
			res, err = c.InvokeMethod(ctx, "qs-sensor-007", iothub.MethodRequest{MethodName: "ping", ResponseTimeoutInSeconds: &rt, ConnectTimeoutInSeconds: &ct})
			if err == nil && res.Status == 200 {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil || res.Status != 200 || string(res.Payload) != `{"pong":"qs-sensor-007"}` {
			t.Fatalf("invoke: %+v, %v", res, err)
		}
		if _, err := c.CreateJob(ctx, "served-twin", json.RawMessage(`{"type":"scheduleUpdateTwin","queryCondition":"tags.building = 44","updateTwin":{"etag":"*","tags":{"served":true}}}`)); err != nil {
			t.Fatal(err)
		}
		completed := false
		for i := 0; i < 200 && !completed; i++ {
			b, err := c.GetJob(ctx, "served-twin")
			if err != nil {
				t.Fatal(err)
			}
			var j struct{ Status string }
			json.Unmarshal(b, &j)
			completed = j.Status == "completed"
			time.Sleep(50 * time.Millisecond)
		}
		if !completed {
			t.Fatal("the twin job did not complete")
		}
		// The work above shows in the metrics, unauthenticated on the REST listener.
		m := scrape()
		for _, want := range []*regexp.Regexp{
			regexp.MustCompile(`(?m)^fleetsim_direct_method_calls_total\{outcome="ok",source="api"\} [1-9]`),
			regexp.MustCompile(`(?m)^fleetsim_direct_method_duration_seconds_count\{source="api"\} [1-9]`),
			regexp.MustCompile(`(?m)^fleetsim_job_device_operations_total\{outcome="succeeded",type="scheduleUpdateTwin"\} 100$`),
			regexp.MustCompile(`(?m)^fleetsim_jobs\{status="completed",type="scheduleUpdateTwin"\} 1$`),
			regexp.MustCompile(`(?m)^fleetsim_devices\{status="enabled"\} 200$`),
			regexp.MustCompile(`(?m)^fleetsim_mqtt_connections [1-9]`),
			regexp.MustCompile(`(?m)^fleetsim_mqtt_messages_total\{direction="in"\} [1-9]`),
			regexp.MustCompile(`(?m)^fleetsim_store_write_duration_seconds_count\{op="apply",store="registry"\} [1-9]`),
			regexp.MustCompile(`(?m)^fleetsim_store_write_duration_seconds_count\{op="write",store="jobs"\} [1-9]`),
			regexp.MustCompile(`(?m)^go_goroutines `),
		} {
			if !want.MatchString(m) {
				t.Errorf("metrics lack %s", want)
			}
		}
	})
	serve("restarted", func(t *testing.T, c *restapi.Client) {
		b, err := c.GetJob(t.Context(), "served-twin")
		if err != nil {
			t.Fatalf("job after a restart: %v", err)
		}
		var j struct {
			Status string
			Stats  struct{ SucceededCount int } `json:"deviceJobStatistics"`
		}
		json.Unmarshal(b, &j)
		if j.Status != "completed" || j.Stats.SucceededCount != 100 {
			t.Errorf("job after a restart: %s", b)
		}
		rows, err := c.Query(t.Context(), "SELECT COUNT() AS n FROM devices WHERE tags.served = true", 100)
		if err != nil || len(rows) != 1 || string(rows[0]) != `{"n":100}` {
			t.Errorf("tags after a restart: %s, %v", rows, err)
		}
	})
}
