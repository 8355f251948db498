package broker

import (
	"fmt"
	"sync"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// device is the broker's per-device state, kept from the device's first
// connection on. No lock wider than one device is taken on the delivery path.
//
// Lock order: events, then mu. events is held while the hub hears of the
// device's connection events, so it hears them in order; mu is never held
// while calling the hub, so the hub may call Deliver, Connected, Subscribed
// or Disconnect from inside any Hub method. Mochi's client lock (inside
// WritePacket) is never taken under mu.
type device struct {
	id string

	events sync.Mutex

	mu       sync.Mutex
	cl       *mqtt.Client // the live connection; nil when there is none
	packetID uint16       // the last packet id DeliverQoS1 gave out
}

// device returns id's entry, creating it.
func (s *Server) device(id string) *device {
	if v, ok := s.devices.Load(id); ok {
		return v.(*device)
	}
	v, _ := s.devices.LoadOrStore(id, &device{id: id})
	return v.(*device)
}

// live returns the device's live connection, or nil.
func (s *Server) live(deviceID string) *mqtt.Client {
	v, ok := s.devices.Load(deviceID)
	if !ok {
		return nil
	}
	d := v.(*device)
	d.mu.Lock()
	cl := d.cl
	d.mu.Unlock()
	if cl == nil || cl.Closed() {
		return nil
	}
	return cl
}

// Deliver queues a hub message for deviceID's live connection only (a
// module's identity is "deviceId/moduleId"), at QoS 0
// (docs/iothub.md §1.4: the hub sends method requests, twin responses and desired
// patches at QoS 0). It never passes through mochi's topic tree, so no other
// client can see it, and it never blocks: the message goes into the
// connection's own write queue, which mochi's write goroutine for that
// connection empties in order. It returns an error wrapping ErrNotConnected
// when the device has no live connection, and ErrQueueFull when
// MaxPendingWrites messages are already waiting (a slow consumer loses
// messages and the loss is counted), and one wrapping iothub.ErrTopic for a
// topic longer than MQTT allows.
func (s *Server) Deliver(deviceID, topic string, payload []byte) error {
	_, err := s.deliver(deviceID, topic, payload, 0, false)
	return err
}

// DeliverQoS1 queues a hub message for deviceID's live connection at QoS 1,
// as IoT Hub sends cloud-to-device messages (docs/iothub.md §1.6), and returns the packet id it carries. The device's PUBACK of
// that id on the same connection is reported to Config.Acks. dup marks a
// redelivery. Packet ids are the broker's own, per device: nothing else
// sends a device QoS 1 messages (device topics are hub-terminated), so
// they cannot collide with mochi's. Errors are Deliver's.
func (s *Server) DeliverQoS1(deviceID, topic string, payload []byte, dup bool) (uint16, error) {
	return s.deliver(deviceID, topic, payload, 1, dup)
}

func (s *Server) deliver(deviceID, topic string, payload []byte, qos byte, dup bool) (uint16, error) {
	if len(topic) > iothub.MaxTopicBytes {
		// Mochi would write the length as 16 bits and send a malformed packet.
		return 0, fmt.Errorf("%w: a topic of %d bytes is longer than MQTT allows", iothub.ErrTopic, len(topic))
	}
	v, ok := s.devices.Load(deviceID)
	if !ok {
		s.deliverFail.Add(1)
		return 0, fmt.Errorf("%w: %s", ErrNotConnected, deviceID)
	}
	d := v.(*device)
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.cl == nil || d.cl.Closed() || s.closing.Load() {
		s.deliverFail.Add(1)
		return 0, fmt.Errorf("%w: %s", ErrNotConnected, deviceID)
	}
	pk := &packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish, Qos: qos, Dup: dup},
		TopicName:   topic,
		Payload:     payload,
	}
	if qos > 0 {
		d.packetID++
		if d.packetID == 0 { // [MQTT-2.3.1-1]: a packet id is never 0
			d.packetID = 1
		}
		pk.PacketID = d.packetID
	}
	if !queueOut(d.cl, pk) {
		s.queueDropped.Add(1)
		return 0, fmt.Errorf("%w: %s has %d messages waiting", ErrQueueFull, deviceID, len(outboundQueue(d.cl)))
	}
	s.out.Add(1)
	return pk.PacketID, nil
}

// acked reports a PUBACK that cl, the device's live connection, sent for a
// QoS 1 message of the hub's. One from a connection that a newer one has
// taken over is not reported: what it acknowledged is sent again.
func (s *Server) acked(cl *mqtt.Client, packetID uint16) {
	if s.cfg.Acks == nil {
		return
	}
	v, ok := s.devices.Load(cl.ID)
	if !ok {
		return
	}
	d := v.(*device)
	d.mu.Lock()
	current := d.cl == cl
	d.mu.Unlock()
	if current {
		s.cfg.Acks.DeviceAcked(cl.ID, packetID)
	}
}

// Connected reports whether the device has a live connection.
func (s *Server) Connected(deviceID string) bool { return s.live(deviceID) != nil }

// Subscribed reports whether the device has a live connection whose session
// holds filter (exactly as the device subscribed it).
func (s *Server) Subscribed(deviceID, filter string) bool {
	cl := s.live(deviceID)
	if cl == nil {
		return false
	}
	_, ok := cl.State.Subscriptions.Get(filter)
	return ok
}

// Disconnect closes the device's live connection, if any (the device was
// disabled or deleted). MQTT 3.1.1 has no server DISCONNECT: the hub closes
// the network connection. A persistent session stays for a later reconnect.
func (s *Server) Disconnect(deviceID string) {
	if cl := s.live(deviceID); cl != nil {
		cl.Stop(errDisconnectedByHub)
	}
}
