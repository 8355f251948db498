package runner_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/devicesim"
	"github.com/fleetsim/fleetsim/hubjobs/jobs"
	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/internal/iothub"
	"github.com/fleetsim/fleetsim/internal/testkit"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
)

// TestCancelRecordsCallsInFlight runs a whole hub with paho devices over
// MQTT/TLS on loopback whose "slow" method answers after 3 s, starts a method
// job paced as S1 (a device every 100 ms), and cancels it while calls are in
// flight. The job reads running until those calls are recorded with the
// devices' answers, then cancelled; devices not reached are canceled; and no
// read ever shows a terminal job with devices pending or running.
func TestCancelRecordsCallsInFlight(t *testing.T) {
	if testing.Short() {
		t.Skip("runs a hub and 20 devices for seconds")
	}
	const n = 20
	s := testkit.StartHub(t, testkit.HubOptions{Pacing: "S1"})
	ctx := t.Context()
	key := func(id string) []byte { k := sha256.Sum256([]byte(id)); return k[:] }
	id := func(i int) string { return fmt.Sprintf("cancel-%02d", i) }
	var ops []registry.ExportImportDevice
	for i := range n {
		k := base64.StdEncoding.EncodeToString(key(id(i)))
		ops = append(ops, registry.ExportImportDevice{ID: id(i), ImportMode: "create",
			Authentication: &registry.Authentication{Type: "sas", SymmetricKey: registry.SymmetricKey{PrimaryKey: k, SecondaryKey: k}}})
	}
	if _, err := s.Registry.BulkUpdate(ctx, ops); err != nil {
		t.Fatal(err)
	}
	ep := s.Endpoints()
	tlsConf, err := tlsutil.ClientConfig(tlsutil.Files{CAFile: ep.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	behavior := devicesim.Behavior{Methods: map[string]devicesim.MethodBehavior{
		"slow": {Latency: devicesim.Constant(3 * time.Second), Payload: json.RawMessage(`{"done":"{{deviceId}}"}`)},
	}}
	fleet := devicesim.NewFleet(devicesim.FleetConfig{
		Count: n,
		Generate: func(i int) devicesim.DeviceConfig {
			return devicesim.DeviceConfig{
				Identity:  devicesim.Identity{DeviceID: id(i), Key: key(id(i)), Hostname: ep.HostName},
				Transport: devicesim.Transport{BrokerURL: "ssl://" + ep.MQTTAddr, TLSConfig: tlsConf},
				Behavior:  behavior,
			}
		},
	})
	fctx, stopFleet := context.WithCancel(ctx)
	fleetDone := make(chan error, 1)
	go func() { fleetDone <- fleet.Run(fctx) }()
	defer func() {
		stopFleet()
		if err := <-fleetDone; err != nil {
			t.Errorf("fleet: %v", err)
		}
	}()
	if err := fleet.WaitConnected(ctx, n); err != nil {
		t.Fatal(err)
	}

	rt := 30
	if _, err := s.Jobs.Create(ctx, jobs.JobRequest{JobID: "cancel-slow", Type: jobs.TypeDeviceMethod, QueryCondition: "*",
		CloudToDeviceMethod: &iothub.MethodRequest{MethodName: "slow", ResponseTimeoutInSeconds: &rt}}); err != nil {
		t.Fatal(err)
	}
	read := func() jobs.Job {
		t.Helper()
		j, err := s.Jobs.Get("cancel-slow")
		if err != nil {
			t.Fatal(err)
		}
		st := j.DeviceJobStatistics
		if st.PendingCount+st.RunningCount+st.SucceededCount+st.FailedCount != st.DeviceCount ||
			(j.Status.Terminal() && st.PendingCount+st.RunningCount != 0) {
			t.Fatalf("read %s with %+v", j.Status, st)
		}
		return j
	}
	testkit.Eventually(t, 10*time.Second, func() bool { return read().DeviceJobStatistics.RunningCount >= 3 }, "three calls in flight")
	j, err := s.Jobs.Cancel(ctx, "cancel-slow")
	if err != nil {
		t.Fatal(err)
	}
	atCancel := j.DeviceJobStatistics
	if j.Status != jobs.StatusRunning || atCancel.RunningCount == 0 || atCancel.PendingCount != 0 {
		t.Fatalf("cancel answered %s %+v", j.Status, atCancel)
	}
	testkit.Eventually(t, 30*time.Second, func() bool { return read().Status == jobs.StatusCancelled }, "the job to end cancelled")
	st := read().DeviceJobStatistics
	called := atCancel.SucceededCount + atCancel.RunningCount // every call answers 200
	if st.SucceededCount != called || st.FailedCount != n-called || st.DeviceCount != n {
		t.Errorf("ended with %+v; at the cancel %+v", st, atCancel)
	}

	byStatus := map[any]int{}
	s.Jobs.Rows("cancel-slow", func(doc map[string]any) bool {
		byStatus[doc["status"]]++
		switch doc["status"] {
		case "completed":
			resp, _ := doc["outcome"].(map[string]any)["deviceMethodResponse"].(map[string]any)
			if resp["status"] != float64(200) || resp["payload"].(map[string]any)["done"] != doc["deviceId"] {
				t.Errorf("%v: outcome %v", doc["deviceId"], doc["outcome"])
			}
		case "canceled":
			if doc["error"].(map[string]any)["code"] != jobs.ErrorCodeJobCancelled {
				t.Errorf("%v: error %v", doc["deviceId"], doc["error"])
			}
		default:
			t.Errorf("%v: device job %v in a cancelled job", doc["deviceId"], doc["status"])
		}
		return true
	})
	if byStatus["completed"] != called || byStatus["canceled"] != n-called {
		t.Errorf("device jobs by status %v; at the cancel %+v", byStatus, atCancel)
	}
}
