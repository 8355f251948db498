package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetsim/fleetsim/hubjobs/jobs"
	"github.com/fleetsim/fleetsim/hubjobs/query"
)

var (
	mqttConnections = prometheus.NewDesc("fleetsim_mqtt_connections",
		"Live device connections on the broker.", nil, nil)
	mqttConnects = prometheus.NewDesc("fleetsim_mqtt_connects_total",
		"CONNECTs the broker accepted.", nil, nil)
	mqttRejected = prometheus.NewDesc("fleetsim_mqtt_rejected_connects_total",
		"CONNECTs the broker refused: bad credentials, a disabled device, a malformed CONNECT.", nil, nil)
	mqttDisconnects = prometheus.NewDesc("fleetsim_mqtt_disconnects_total",
		"Ends of live device connections.", nil, nil)
	mqttViolations = prometheus.NewDesc("fleetsim_mqtt_violations_total",
		"Connections closed for breaking IoT Hub's rules (forbidden topic, QoS 2, oversize).", nil, nil)
	mqttMessages = prometheus.NewDesc("fleetsim_mqtt_messages_total",
		"Messages between devices and the hub, by direction (in: device to hub, out: hub to device).", []string{"direction"}, nil)
	mqttDropped = prometheus.NewDesc("fleetsim_mqtt_messages_dropped_total",
		"Hub-to-device messages not written, by reason.", []string{"reason"}, nil)

	devicesDesc = prometheus.NewDesc("fleetsim_devices",
		"Registered devices by status.", []string{"status"}, nil)
	devicesConnected = prometheus.NewDesc("fleetsim_devices_connected",
		"Registered devices with a live connection (connectionState Connected).", nil, nil)

	jobsDesc = prometheus.NewDesc("fleetsim_jobs",
		"Jobs the hub keeps (within retention), by type and status.", []string{"type", "status"}, nil)
	activeJobDevices = prometheus.NewDesc("fleetsim_active_job_devices",
		"Device jobs of the jobs not yet finished (queued, scheduled, running), by state.", []string{"state"}, nil)
)

// brokerCollector reads the broker's counters once per scrape.
type brokerCollector struct{ src BrokerStats }

func (c brokerCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{mqttConnections, mqttConnects, mqttRejected, mqttDisconnects, mqttViolations, mqttMessages, mqttDropped} {
		ch <- d
	}
}

func (c brokerCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Stats()
	counter := func(d *prometheus.Desc, v int64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	ch <- prometheus.MustNewConstMetric(mqttConnections, prometheus.GaugeValue, float64(s.Connected))
	counter(mqttConnects, s.Connects)
	counter(mqttRejected, s.RejectedConnects)
	counter(mqttDisconnects, s.Disconnects)
	counter(mqttViolations, s.Violations)
	counter(mqttMessages, s.MessagesIn, "in")
	counter(mqttMessages, s.MessagesOut, "out")
	counter(mqttDropped, s.DeliverFailures, "not_connected")
	counter(mqttDropped, s.QueueDropped, "device_queue_full")
	counter(mqttDropped, s.MessagesDropped, "outbound_full")
	counter(mqttDropped, s.InflightDropped, "inflight_full")
}

// deviceCollector reads the registry's device counts once per scrape.
type deviceCollector struct{ src DeviceCounts }

func (c deviceCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- devicesDesc
	ch <- devicesConnected
}

func (c deviceCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.src.Statistics()
	ch <- prometheus.MustNewConstMetric(devicesDesc, prometheus.GaugeValue, float64(s.EnabledDeviceCount), "enabled")
	ch <- prometheus.MustNewConstMetric(devicesDesc, prometheus.GaugeValue, float64(s.DisabledDeviceCount), "disabled")
	ch <- prometheus.MustNewConstMetric(devicesConnected, prometheus.GaugeValue, float64(c.src.ConnectedCount()))
}

// jobCollector pages through the engine's jobs once per scrape.
type jobCollector struct{ src JobLister }

func (c jobCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- jobsDesc
	ch <- activeJobDevices
}

func (c jobCollector) Collect(ch chan<- prometheus.Metric) {
	type key struct {
		typ    jobs.JobType
		status jobs.Status
	}
	counts := map[key]int{}
	// Every type and status is reported, zero or not, so that rates and
	// alerts see a series from the first scrape.
	for _, t := range []jobs.JobType{jobs.TypeDeviceMethod, jobs.TypeUpdateTwin} {
		for _, s := range []jobs.Status{jobs.StatusQueued, jobs.StatusScheduled, jobs.StatusRunning,
			jobs.StatusCompleted, jobs.StatusFailed, jobs.StatusCancelled} {
			counts[key{t, s}] = 0
		}
	}
	var active jobs.Statistics
	for token := ""; ; {
		jobs, next, err := c.src.List("", "", query.MaxPageSize, token)
		if err != nil {
			ch <- prometheus.NewInvalidMetric(jobsDesc, err)
			return
		}
		for _, j := range jobs {
			counts[key{j.Type, j.Status}]++
			if !j.Status.Terminal() {
				s := j.DeviceJobStatistics
				active.PendingCount += s.PendingCount
				active.RunningCount += s.RunningCount
				active.SucceededCount += s.SucceededCount
				active.FailedCount += s.FailedCount
			}
		}
		if next == "" {
			break
		}
		token = next
	}
	for k, n := range counts {
		ch <- prometheus.MustNewConstMetric(jobsDesc, prometheus.GaugeValue, float64(n), string(k.typ), string(k.status))
	}
	for state, n := range map[string]int{"pending": active.PendingCount, "running": active.RunningCount,
		"succeeded": active.SucceededCount, "failed": active.FailedCount} {
		ch <- prometheus.MustNewConstMetric(activeJobDevices, prometheus.GaugeValue, float64(n), state)
	}
}
