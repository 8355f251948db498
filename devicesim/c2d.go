package devicesim

import (
	"fmt"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// C2DReaction is what a device does with a cloud-to-device message.
type C2DReaction string

// Reactions to cloud-to-device messages.
const (
	// C2DAcknowledge PUBACKs the message, which completes it on the hub.
	C2DAcknowledge C2DReaction = "acknowledge"
	// C2DIgnore never PUBACKs: the hub sends the message again on the
	// device's next connection, up to its maximum delivery count.
	C2DIgnore C2DReaction = "ignore"
	// C2DReboot PUBACKs, then a moment later drops the connection and
	// stays offline for C2DBehavior.Offline, as a reboot does.
	C2DReboot C2DReaction = "reboot"
	// C2DReport PUBACKs and reports {"lastC2D": {"messageId", "receivedAt"}}.
	C2DReport C2DReaction = "report"
)

// c2dRebootDelay is the time between taking a message and going down for
// the reboot reaction.
const c2dRebootDelay = 200 * time.Millisecond

// C2DBehavior is how a device takes cloud-to-device messages. A device with
// one subscribes to devices/{id}/messages/devicebound/# at QoS 1.
type C2DBehavior struct {
	// Reaction is what the device does with each message; empty acknowledges.
	Reaction C2DReaction
	// Offline is how long a reboot reaction keeps the device down; nil is 5 s.
	Offline Distribution
}

// Validate checks the reaction.
func (c *C2DBehavior) Validate() error {
	switch c.Reaction {
	case "", C2DAcknowledge, C2DIgnore, C2DReboot, C2DReport:
		return nil
	}
	return fmt.Errorf("c2d: unknown reaction %q (want acknowledge, ignore, reboot or report)", c.Reaction)
}

// acks says whether paho acknowledges the device's QoS 1 messages itself:
// not for a device that ignores cloud-to-device messages.
func (c *C2DBehavior) acks() bool { return c == nil || c.Reaction != C2DIgnore }

// onC2D reacts to a cloud-to-device message. Paho has already PUBACKed it
// (when the handler returned), unless the device ignores them.
func (d *Device) onC2D(topic string) {
	b := d.cfg.Behavior.C2D
	d.stats.c2dReceived.Add(1)
	p, _ := iothub.ParseC2DTopic(d.id, topic) // a bad bag still counts as received
	if b == nil {
		return
	}
	if b.acks() {
		d.stats.c2dAcked.Add(1)
	}
	switch b.Reaction {
	case C2DReboot:
		offline := 5 * time.Second
		if b.Offline != nil {
			offline = max(sample(b.Offline, d.rng), time.Millisecond)
		}
		// The PUBACK goes out on paho's own goroutine once the handler
		// returns: shut down a moment later, as firmware would, so it is
		// written before the connection drops.
		gen := d.gen
		d.busy(1)
		d.after(c2dRebootDelay, func() {
			defer d.busy(-1)
			if d.gen == gen && d.conn != nil {
				d.reboot("c2d", offline)
			}
		})
	case C2DReport:
		d.reportPatch(map[string]any{"lastC2D": map[string]any{
			"messageId": p.MessageID, "receivedAt": time.Now().UTC().Format(time.RFC3339Nano),
		}})
	}
}

// c2dFilter is the cloud-to-device filter of a device that takes them.
func (d *Device) c2dFilter() (string, bool) {
	if d.cfg.Behavior.C2D == nil {
		return "", false
	}
	return iothub.C2DFilter(d.id), true
}
