package hubjobs

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/fleetsim/fleetsim/broker"
	"github.com/fleetsim/fleetsim/hubjobs/events"
	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// The taps stand between the broker and the registry and record what
// passes in the hub's event stream; they add no goroutine and no wait.
var (
	_ broker.Hub          = hubTap{}
	_ registry.DeviceLink = linkTap{}
)

// hubTap is the registry as the broker sees it, with the devices'
// publishes and connection events recorded on their way in.
type hubTap struct {
	*registry.Registry
	ev *events.Stream
}

func (t hubTap) DevicePublished(id string, topic iothub.DeviceTopic, payload []byte) {
	t.ev.Published(id, topic, payload)
	t.Registry.DevicePublished(id, topic, payload)
}

func (t hubTap) DeviceConnected(id string, filters []string) {
	t.ev.Connected(id)
	t.Registry.DeviceConnected(id, filters)
}

func (t hubTap) DeviceDisconnected(id string) {
	t.ev.Disconnected(id)
	t.Registry.DeviceDisconnected(id)
}

// linkTap is the broker as the registry sees it, with method calls and
// desired patches recorded on their way out. A call is recorded before it
// is queued, so it always comes before the device's answer.
type linkTap struct {
	*broker.Server
	ev *events.Stream
}

func (l linkTap) Deliver(id, topic string, payload []byte) error {
	l.ev.Delivered(id, topic, payload)
	return l.Server.Deliver(id, topic, payload)
}

// apiEvents is the event stream as the REST API's events endpoint sees
// it, with the registry selecting a condition's devices.
type apiEvents struct {
	*events.Stream
	*registry.Registry
}

// registerEventMetrics exports the event stream's counters on /metrics.
func registerEventMetrics(reg prometheus.Registerer, ev *events.Stream) {
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "fleetsim_device_events_total",
			Help: "Device events recorded in the hub's event stream (messages, connections, methods, twin patches)."},
			func() float64 { return float64(ev.Total()) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{Name: "fleetsim_device_events_dropped_total",
			Help: "Device events a watcher missed because it read too slowly."},
			func() float64 { return float64(ev.Dropped()) }),
	)
}
