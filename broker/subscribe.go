package broker

import (
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// A device's SUBSCRIBE is answered from OnPacketRead, through the
// connection's write queue, not by mochi's processSubscribe. Mochi passes
// its packets by value down every call (each packets.Packet is hundreds of
// bytes), and processSubscribe, its hook chain and WritePacket writing the
// SUBACK to the network on the connection goroutine went deep enough to
// double that goroutine's stack to 32 KB, which with stack shrinking off a
// connection keeps for good (see docs/performance.md). Here the
// subscriptions are made as processSubscribe makes them, the SUBACK goes
// into the write queue (written by mochi's write goroutine, whose stack is
// shallow), and mochi gets a packet it does nothing with in place of the
// SUBSCRIBE.

// subscribed is what OnPacketRead hands mochi for a SUBSCRIBE it answered:
// a PUBACK of packet id 0, which no publish ever uses, so processPuback
// finds nothing in flight and returns.
var subscribed = packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}}

// subscribe answers a valid SUBSCRIBE whose filters the device may hold
// (OnPacketRead has checked them) the way mochi's processSubscribe does for
// MQTT 3.1.1, the only version the broker accepts; it has no retained
// messages to send (RetainAvailable is 0). It returns false, for mochi to
// handle the packet, when it is invalid (mochi closes the connection) or
// the write queue is full (mochi subscribes again, which changes nothing,
// and answers). pk is a pointer, and nothing here copies a packet: the
// point is a shallow stack.
func (h *hook) subscribe(cl *mqtt.Client, pk *packets.Packet) bool {
	if pk.SubscribeValidate() != packets.CodeSuccess {
		return false
	}
	codes := make([]byte, len(pk.Filters))
	if _, inUse := cl.State.Inflight.Get(pk.PacketID); inUse {
		for i := range codes {
			codes[i] = packets.ErrUnspecifiedError.Code // MQTT 3.1.1 has only 0x80 for a refusal
		}
	} else {
		maxQos := h.s.mochi.Options.Capabilities.MaximumQos
		for i, sub := range pk.Filters {
			if !mqtt.IsValidFilter(sub.Filter, false) {
				codes[i] = packets.ErrUnspecifiedError.Code
				continue
			}
			if h.s.mochi.Topics.Subscribe(cl.ID, sub) {
				atomic.AddInt64(&h.s.mochi.Info.Subscriptions, 1)
			}
			cl.State.Subscriptions.Add(sub.Filter, sub)
			codes[i] = min(sub.Qos, maxQos)
		}
	}
	if !queueOut(cl, &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Suback}, PacketID: pk.PacketID, ReasonCodes: codes}) {
		return false
	}
	// What OnSubscribed does for the SUBSCRIBEs mochi handles.
	for _, c := range codes {
		if c < 0x80 {
			h.subscriptionsChanged(cl)
			break
		}
	}
	return true
}
