package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fleetsim/fleetsim/broker"
	"github.com/fleetsim/fleetsim/hubjobs/jobs"
	"github.com/fleetsim/fleetsim/hubjobs/metrics"
	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// The sources below stand in for the broker, registry and engine, whose
// real counters the runner's stack test scrapes end to end.

type brokerStats broker.Stats

func (b brokerStats) Stats() broker.Stats { return broker.Stats(b) }

type devices struct{}

func (devices) Statistics() registry.Statistics {
	return registry.Statistics{TotalDeviceCount: 5, EnabledDeviceCount: 4, DisabledDeviceCount: 1}
}
func (devices) ConnectedCount() int { return 3 }

// jobList lists its jobs two to a page, as the engine pages them.
type jobList []jobs.Job

func (js jobList) List(_, _ string, _ int, token string) ([]jobs.Job, string, error) {
	if token == "bad" {
		return nil, "", errors.New("boom")
	}
	start := 0
	fmt.Sscan(token, &start)
	end := min(start+2, len(js))
	next := ""
	if end < len(js) {
		next = fmt.Sprint(end)
	}
	return js[start:end], next, nil
}

type invoker struct{ err error }

func (i invoker) InvokeMethod(context.Context, string, iothub.MethodRequest) (iothub.MethodResult, error) {
	return iothub.MethodResult{Status: 500}, i.err
}

type patcher struct{ err error }

func (p patcher) ForceUpdateTwin(context.Context, string, iothub.TwinPatch) error { return p.err }

type persistence struct{ err error }

func (persistence) Load(func(string, []byte) error) error { return nil }
func (p persistence) Apply([]registry.Write) error        { return p.err }

func TestSourcesAreReadAtScrape(t *testing.T) {
	m := metrics.New()
	m.Watch(metrics.Sources{
		Broker:  brokerStats{Connected: 7, Connects: 9, RejectedConnects: 1, MessagesIn: 100, MessagesOut: 90, QueueDropped: 2},
		Devices: devices{},
		Jobs: jobList{
			{JobID: "a", Type: jobs.TypeDeviceMethod, Status: jobs.StatusRunning, DeviceJobStatistics: jobs.Statistics{DeviceCount: 10, PendingCount: 4, RunningCount: 3, SucceededCount: 2, FailedCount: 1}},
			{JobID: "b", Type: jobs.TypeDeviceMethod, Status: jobs.StatusCompleted, DeviceJobStatistics: jobs.Statistics{DeviceCount: 10, SucceededCount: 10}},
			{JobID: "c", Type: jobs.TypeUpdateTwin, Status: jobs.StatusScheduled},
			{JobID: "d", Type: jobs.TypeUpdateTwin, Status: jobs.StatusRunning, DeviceJobStatistics: jobs.Statistics{DeviceCount: 3, PendingCount: 3}},
			{JobID: "e", Type: jobs.TypeDeviceMethod, Status: jobs.StatusCompleted},
		},
	})
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"fleetsim_mqtt_connections", nil, 7},
		{"fleetsim_mqtt_connects_total", nil, 9},
		{"fleetsim_mqtt_rejected_connects_total", nil, 1},
		{"fleetsim_mqtt_messages_total", map[string]string{"direction": "in"}, 100},
		{"fleetsim_mqtt_messages_total", map[string]string{"direction": "out"}, 90},
		{"fleetsim_mqtt_messages_dropped_total", map[string]string{"reason": "device_queue_full"}, 2},
		{"fleetsim_devices", map[string]string{"status": "enabled"}, 4},
		{"fleetsim_devices", map[string]string{"status": "disabled"}, 1},
		{"fleetsim_devices_connected", nil, 3},
		{"fleetsim_active_job_devices", map[string]string{"state": "pending"}, 7},
		{"fleetsim_active_job_devices", map[string]string{"state": "running"}, 3},
		{"fleetsim_active_job_devices", map[string]string{"state": "succeeded"}, 2},
		{"fleetsim_active_job_devices", map[string]string{"state": "failed"}, 1},
	} {
		if got := gauge(t, m, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
	// Every type and status has a series; the counts cover every page.
	for _, tc := range []struct {
		typ, status string
		want        float64
	}{
		{"scheduleDeviceMethod", "running", 1},
		{"scheduleDeviceMethod", "completed", 2},
		{"scheduleUpdateTwin", "scheduled", 1},
		{"scheduleUpdateTwin", "running", 1},
		{"scheduleUpdateTwin", "failed", 0},
	} {
		if got := gauge(t, m, "fleetsim_jobs", map[string]string{"type": tc.typ, "status": tc.status}); got != tc.want {
			t.Errorf("fleetsim_jobs{%s,%s} = %v, want %v", tc.typ, tc.status, got, tc.want)
		}
	}
	if n := series(t, m, "fleetsim_jobs"); n != 12 {
		t.Errorf("fleetsim_jobs has %d series, want 12", n)
	}
}

// series counts a metric's series in a scrape.
func series(t *testing.T, m *metrics.Metrics, name string) int {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

// gauge returns one sample's value from a scrape: a gauge's or counter's
// value, a histogram's count.
func gauge(t *testing.T, m *metrics.Metrics, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, s := range mf.GetMetric() {
			for _, lp := range s.GetLabel() {
				if labels[lp.GetName()] != lp.GetValue() {
					continue next
				}
			}
			switch {
			case s.Gauge != nil:
				return s.GetGauge().GetValue()
			case s.Counter != nil:
				return s.GetCounter().GetValue()
			case s.Histogram != nil:
				return float64(s.GetHistogram().GetSampleCount())
			}
		}
	}
	t.Fatalf("no %s%v in the scrape", name, labels)
	return 0
}

func TestDecoratorsCountOutcomes(t *testing.T) {
	m := metrics.New()
	ctx := t.Context()
	notOnline := &iothub.Error{Code: iothub.CodeDeviceNotOnline}
	timeout := fmt.Errorf("wrapped: %w", &iothub.Error{Code: iothub.CodeGatewayTimeout})

	for _, tc := range []struct {
		source string
		err    error
	}{{"api", nil}, {"api", notOnline}, {"job", nil}, {"job", nil}, {"job", timeout}, {"job", context.Canceled}, {"job", io.EOF}} {
		res, err := m.Methods(tc.source, invoker{tc.err}).InvokeMethod(ctx, "d", iothub.MethodRequest{})
		if !errors.Is(err, tc.err) || res.Status != 500 {
			t.Fatalf("the decorator changed the result: %+v, %v", res, err)
		}
	}
	for _, err := range []error{nil, nil, notOnline} {
		if got := m.Twins(patcher{err}).ForceUpdateTwin(ctx, "d", iothub.TwinPatch{}); got != err {
			t.Fatalf("the decorator changed the error: %v", got)
		}
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"fleetsim_direct_method_calls_total", map[string]string{"source": "api", "outcome": "ok"}, 1},
		{"fleetsim_direct_method_calls_total", map[string]string{"source": "api", "outcome": "DeviceNotOnline"}, 1},
		{"fleetsim_direct_method_calls_total", map[string]string{"source": "job", "outcome": "ok"}, 2},
		{"fleetsim_direct_method_calls_total", map[string]string{"source": "job", "outcome": "GatewayTimeout"}, 1},
		{"fleetsim_direct_method_calls_total", map[string]string{"source": "job", "outcome": "Canceled"}, 1},
		{"fleetsim_direct_method_calls_total", map[string]string{"source": "job", "outcome": "Error"}, 1},
		{"fleetsim_direct_method_duration_seconds", map[string]string{"source": "api"}, 2},
		{"fleetsim_direct_method_duration_seconds", map[string]string{"source": "job"}, 5},
		{"fleetsim_job_device_operations_total", map[string]string{"type": "scheduleDeviceMethod", "outcome": "succeeded"}, 2},
		{"fleetsim_job_device_operations_total", map[string]string{"type": "scheduleDeviceMethod", "outcome": "GatewayTimeout"}, 1},
		{"fleetsim_job_device_operations_total", map[string]string{"type": "scheduleUpdateTwin", "outcome": "succeeded"}, 2},
		{"fleetsim_job_device_operations_total", map[string]string{"type": "scheduleUpdateTwin", "outcome": "DeviceNotOnline"}, 1},
		{"fleetsim_job_device_operation_duration_seconds", map[string]string{"type": "scheduleUpdateTwin"}, 3},
	} {
		if got := gauge(t, m, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}

func TestStoreDecorators(t *testing.T) {
	m := metrics.New()
	failing := errors.New("disk full")
	if err := m.RegistryStore(persistence{}).Apply(make([]registry.Write, 3)); err != nil {
		t.Fatal(err)
	}
	if err := m.RegistryStore(persistence{failing}).Apply(make([]registry.Write, 2)); err != failing {
		t.Fatalf("error = %v", err)
	}
	js := m.JobStore(jobs.NewMemStore())
	results := make([]jobs.DeviceResult, 4)
	for i := range results {
		results[i] = jobs.DeviceResult{JobID: "j", DeviceID: fmt.Sprint("d", i), Status: jobs.StatusCompleted}
	}
	if err := js.Write(jobs.Write{Results: results, Jobs: []jobs.JobRecord{{Job: jobs.Job{JobID: "j"}}}}); err != nil {
		t.Fatal(err)
	}
	if err := js.Delete([]string{"j"}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"fleetsim_store_write_duration_seconds", map[string]string{"store": "registry", "op": "apply"}, 2},
		{"fleetsim_store_write_errors_total", map[string]string{"store": "registry", "op": "apply"}, 1},
		{"fleetsim_store_records_written_total", map[string]string{"store": "registry"}, 3},
		{"fleetsim_store_write_duration_seconds", map[string]string{"store": "jobs", "op": "write"}, 1},
		{"fleetsim_store_write_duration_seconds", map[string]string{"store": "jobs", "op": "delete"}, 1},
		{"fleetsim_store_records_written_total", map[string]string{"store": "jobs"}, 6},
	} {
		if got := gauge(t, m, tc.name, tc.labels); got != tc.want {
			t.Errorf("%s%v = %v, want %v", tc.name, tc.labels, got, tc.want)
		}
	}
}

func TestHandlerServesTextAndListErrors(t *testing.T) {
	m := metrics.New()
	m.Watch(metrics.Sources{Jobs: failingJobs{}})
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	body := rec.Body.String()
	// A source that fails makes the scrape fail visibly, not silently.
	if rec.Code != 500 || !strings.Contains(body, "boom") {
		t.Errorf("scrape with a failing source: %d %s", rec.Code, body)
	}
	m = metrics.New()
	rec = httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 || !strings.Contains(rec.Body.String(), "go_goroutines") || !strings.Contains(rec.Body.String(), "process_") {
		t.Errorf("scrape: %d %.300s", rec.Code, rec.Body.String())
	}
}

type failingJobs struct{}

func (failingJobs) List(string, string, int, string) ([]jobs.Job, string, error) {
	return nil, "", errors.New("boom")
}
