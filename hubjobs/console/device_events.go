package console

import (
	"encoding/json"
	"io"
	"net/http"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs/events"
)

// DeviceEvents is the hub's event stream as the device page reads it.
type DeviceEvents interface {
	Recent(deviceID string, types events.TypeSet, n int) []events.Event
	Subscribe(f events.Filter) *events.Subscription
}

// deviceEventsShown is how many recent events the device page gets at first.
const deviceEventsShown = 50

// apiDeviceEvents streams one device's events as server-sent events: an
// "events" event whose data is a JSON array of events.Message, first the
// device's recent events, then at most one batch per live tick with what
// happened since. Events are telemetry and need ServiceConnect, as the
// hub's events endpoint does.
func (c *Console) apiDeviceEvents(w http.ResponseWriter, r *http.Request, s *session) error {
	if c.cfg.Events == nil {
		return errorf(http.StatusNotFound, "this hub keeps no device events")
	}
	c.runMu.Lock()
	select {
	case <-c.stopped:
		c.runMu.Unlock()
		return errorf(http.StatusServiceUnavailable, "the console is shutting down")
	default:
	}
	c.streams.Add(1)
	c.runMu.Unlock()
	defer c.streams.Done()

	id := r.PathValue("id")
	sub := c.cfg.Events.Subscribe(events.Filter{Devices: []string{id}, Buffer: 4 * deviceEventsShown})
	defer sub.Close()
	recent := c.cfg.Events.Recent(id, 0, deviceEventsShown)
	var last uint64
	if n := len(recent); n > 0 {
		last = recent[n-1].Seq
	}

	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "retry: 2000\n\n")
	send := func(batch []events.Event) bool {
		msgs := make([]events.Message, 0, len(batch))
		for i := range batch {
			msgs = append(msgs, batch[i].Message())
		}
		b, err := json.Marshal(msgs)
		if err != nil {
			return false
		}
		return sse(w, "events", b) == nil && rc.Flush() == nil
	}
	if !send(recent) {
		return nil
	}
	tick := time.NewTicker(c.cfg.Rate)
	defer tick.Stop()
	var batch []events.Event
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-c.stopped:
			return nil
		case e := <-sub.C:
			// Subscribed before Recent was read: skip what it already had.
			if e.Seq > last {
				batch = append(batch, e)
				if len(batch) > deviceEventsShown {
					batch = batch[len(batch)-deviceEventsShown:]
				}
			}
		case <-tick.C:
			if len(batch) == 0 {
				continue
			}
			if !send(batch) {
				return nil
			}
			batch = batch[:0]
		}
	}
}
