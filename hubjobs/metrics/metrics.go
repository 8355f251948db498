// Package metrics exposes a hub's Prometheus metrics: the broker's
// connections and messages, the registry's devices, direct-method calls and
// their latency, the jobs engine's device operations by outcome, and the
// stores' write latency. Counters that the parts already keep (broker,
// registry, jobs) are read at scrape time; calls and store writes are
// measured by decorators that the wiring puts in front of the real parts.
package metrics

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"

	"github.com/fleetsim/fleetsim/broker"
	"github.com/fleetsim/fleetsim/hubjobs/jobs"
	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// Sources are the parts whose own counters are read at scrape time (see
// Watch). A nil source leaves its metrics out.
type Sources struct {
	Broker  BrokerStats
	Devices DeviceCounts
	Jobs    JobLister
}

// BrokerStats is what the broker gives: its counters since start.
type BrokerStats interface {
	Stats() broker.Stats
}

// DeviceCounts is what the registry gives: registered and connected devices.
type DeviceCounts interface {
	Statistics() registry.Statistics
	ConnectedCount() int
}

// JobLister is what the jobs engine gives: its jobs, a page at a time.
type JobLister interface {
	List(jobType, status string, pageSize int, continuation string) ([]jobs.Job, string, error)
}

// Metrics owns a Prometheus registry with fleetsim's metrics, the Go runtime
// and the process. It is safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	methodCalls   *prometheus.CounterVec
	methodSeconds *prometheus.HistogramVec
	jobOps        *prometheus.CounterVec
	jobOpSeconds  *prometheus.HistogramVec
	storeSeconds  *prometheus.HistogramVec
	storeRecords  *prometheus.CounterVec
	storeErrors   *prometheus.CounterVec
}

// latencyBuckets span a loopback round trip to the longest method timeout (300 s).
var latencyBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 300}

// storeBuckets span an fsync on a fast disk to a slow one.
var storeBuckets = []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1}

// New registers fleetsim's metrics and the Go and process collectors. The
// decorators can wrap parts before they exist together; Watch adds the
// parts' own counters once they do.
func New() *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		methodCalls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fleetsim_direct_method_calls_total",
			Help: "Direct-method invocations by source (api: POST /twins/{id}/methods, job: a method job) and outcome (ok when the device answered, whatever its status; else the IoT Hub error code).",
		}, []string{"source", "outcome"}),
		methodSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fleetsim_direct_method_duration_seconds",
			Help:    "Time from invocation to the device's answer or the error, by source.",
			Buckets: latencyBuckets,
		}, []string{"source"}),
		jobOps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fleetsim_job_device_operations_total",
			Help: "Device operations performed by jobs, by job type and outcome (succeeded, or the IoT Hub error code it failed with).",
		}, []string{"type", "outcome"}),
		jobOpSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fleetsim_job_device_operation_duration_seconds",
			Help:    "Duration of one device operation of a job, by job type.",
			Buckets: latencyBuckets,
		}, []string{"type"}),
		storeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "fleetsim_store_write_duration_seconds",
			Help:    "Duration of one durable (fsynced) store transaction, by store (registry, jobs) and operation.",
			Buckets: storeBuckets,
		}, []string{"store", "op"}),
		storeRecords: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fleetsim_store_records_written_total",
			Help: "Records written by store transactions that succeeded, by store.",
		}, []string{"store"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "fleetsim_store_write_errors_total",
			Help: "Store transactions that failed, by store and operation.",
		}, []string{"store", "op"}),
	}
	m.reg.MustRegister(m.methodCalls, m.methodSeconds, m.jobOps, m.jobOpSeconds, m.storeSeconds, m.storeRecords, m.storeErrors,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return m
}

// Watch reads src's counters at every scrape. Call it once.
func (m *Metrics) Watch(src Sources) {
	if src.Broker != nil {
		m.reg.MustRegister(brokerCollector{src.Broker})
	}
	if src.Devices != nil {
		m.reg.MustRegister(deviceCollector{src.Devices})
	}
	if src.Jobs != nil {
		m.reg.MustRegister(jobCollector{src.Jobs})
	}
}

// Handler serves the metrics in Prometheus' text format (or OpenMetrics when asked).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{Registry: m.reg, EnableOpenMetrics: true})
}

// Registry is the Prometheus registry, for tests and for adding metrics.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// outcome names an error for a label: the IoT Hub code's name, Canceled
// or DeadlineExceeded for a context, else Error. The set is bounded.
func outcome(err error) string {
	var he *iothub.Error
	switch {
	case errors.As(err, &he):
		return he.Code.Name
	case errors.Is(err, context.Canceled):
		return "Canceled"
	case errors.Is(err, context.DeadlineExceeded):
		return "DeadlineExceeded"
	default:
		return "Error"
	}
}

// MethodInvoker is the direct-method call that Methods measures.
type MethodInvoker interface {
	InvokeMethod(ctx context.Context, deviceID string, req iothub.MethodRequest) (iothub.MethodResult, error)
}

// TwinPatcher is the jobs engine's twin update that Twins measures.
type TwinPatcher interface {
	ForceUpdateTwin(ctx context.Context, deviceID string, patch iothub.TwinPatch) error
}

// Methods returns next measured as source ("api" or "job"); calls made for
// jobs also count as device operations of method jobs.
func (m *Metrics) Methods(source string, next MethodInvoker) MethodInvoker {
	return &methods{m: m, source: source, next: next,
		seconds: m.methodSeconds.WithLabelValues(source),
		ok:      m.methodCalls.WithLabelValues(source, "ok"),
	}
}

type methods struct {
	m       *Metrics
	source  string
	next    MethodInvoker
	seconds prometheus.Observer
	ok      prometheus.Counter
}

func (mi *methods) InvokeMethod(ctx context.Context, deviceID string, req iothub.MethodRequest) (iothub.MethodResult, error) {
	start := time.Now()
	res, err := mi.next.InvokeMethod(ctx, deviceID, req)
	d := time.Since(start).Seconds()
	mi.seconds.Observe(d)
	if err != nil {
		mi.m.methodCalls.WithLabelValues(mi.source, outcome(err)).Inc()
	} else {
		mi.ok.Inc()
	}
	if mi.source == "job" {
		mi.m.jobOp(string(jobs.TypeDeviceMethod), d, err)
	}
	return res, err
}

// Twins returns next measured as the device operations of twin jobs.
func (m *Metrics) Twins(next TwinPatcher) TwinPatcher { return &twins{m: m, next: next} }

type twins struct {
	m    *Metrics
	next TwinPatcher
}

func (t *twins) ForceUpdateTwin(ctx context.Context, deviceID string, patch iothub.TwinPatch) error {
	start := time.Now()
	err := t.next.ForceUpdateTwin(ctx, deviceID, patch)
	t.m.jobOp(string(jobs.TypeUpdateTwin), time.Since(start).Seconds(), err)
	return err
}

func (m *Metrics) jobOp(jobType string, seconds float64, err error) {
	m.jobOpSeconds.WithLabelValues(jobType).Observe(seconds)
	o := "succeeded"
	if err != nil {
		o = outcome(err)
	}
	m.jobOps.WithLabelValues(jobType, o).Inc()
}

// observeWrite records one store transaction.
func (m *Metrics) observeWrite(store, op string, start time.Time, records int, err error) {
	m.storeSeconds.WithLabelValues(store, op).Observe(time.Since(start).Seconds())
	if err != nil {
		m.storeErrors.WithLabelValues(store, op).Inc()
		return
	}
	m.storeRecords.WithLabelValues(store).Add(float64(records))
}

// RegistryStore returns next with its transactions measured as store "registry".
func (m *Metrics) RegistryStore(next registry.Persistence) registry.Persistence {
	return &registryStore{m: m, next: next}
}

type registryStore struct {
	m    *Metrics
	next registry.Persistence
}

func (s *registryStore) Load(fn func(id string, data []byte) error) error { return s.next.Load(fn) }

func (s *registryStore) Apply(batch []registry.Write) error {
	start := time.Now()
	err := s.next.Apply(batch)
	s.m.observeWrite("registry", "apply", start, len(batch), err)
	return err
}

// JobStore returns next with its transactions measured as store "jobs".
func (m *Metrics) JobStore(next jobs.Store) jobs.Store { return &jobStore{m: m, next: next} }

type jobStore struct {
	m    *Metrics
	next jobs.Store
}

func (s *jobStore) Load(fn func(jobs.StoredJob) error) error { return s.next.Load(fn) }

func (s *jobStore) Write(w jobs.Write) error {
	start := time.Now()
	err := s.next.Write(w)
	n := len(w.Jobs) + len(w.DeviceSets) + len(w.Results)
	s.m.observeWrite("jobs", "write", start, n, err)
	return err
}

func (s *jobStore) Delete(jobIDs []string) error {
	start := time.Now()
	err := s.next.Delete(jobIDs)
	s.m.observeWrite("jobs", "delete", start, len(jobIDs), err)
	return err
}

// MethodCallsTotal is the sum of fleetsim_direct_method_calls_total over
// its sources and outcomes: what the console plots as method calls/s.
func (m *Metrics) MethodCallsTotal() float64 { return sumCounters(m.methodCalls) }

// JobOperationsTotal is the sum of fleetsim_job_device_operations_total.
func (m *Metrics) JobOperationsTotal() float64 { return sumCounters(m.jobOps) }

// sumCounters adds up the values of a counter vector's series.
func sumCounters(c *prometheus.CounterVec) float64 {
	ch := make(chan prometheus.Metric)
	done := make(chan struct{})
	go func() {
		defer close(done)
		c.Collect(ch)
		close(ch)
	}()
	var sum float64
	var pb dto.Metric
	for mt := range ch {
		if mt.Write(&pb) == nil && pb.Counter != nil {
			sum += pb.Counter.GetValue()
		}
	}
	<-done
	return sum
}
