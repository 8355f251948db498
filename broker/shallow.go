package broker

import (
	"sync/atomic"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// A device's SUBSCRIBE and PUBLISH are answered from OnPacketRead, through
// the connection's write queue, not by mochi's processSubscribe and
// processPublish. Mochi passes its packets by value down every call (each
// packets.Packet is hundreds of bytes), and those functions, their hook
// chains and WritePacket writing the SUBACK or PUBACK to the network on the
// connection goroutine went deep enough to double that goroutine's stack to
// 32 KB, which with stack shrinking off a connection keeps for good (see
// docs/performance.md). Here the packet is acted on as mochi would for
// MQTT 3.1.1 (the only version the broker accepts), the acknowledgement
// goes into the write queue (written by mochi's write goroutine, whose
// stack is shallow), and mochi gets a packet it does nothing with in its
// place. Packets go by pointer here (but for the copy publish takes, as
// for OnPublish): the point is a shallow stack.

// answered is what OnPacketRead hands mochi for a packet it acted on: a
// PUBACK of packet id 0, which no publish ever uses, so processPuback finds
// nothing in flight and returns.
var answered = packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}}

// subscribe answers a valid SUBSCRIBE whose filters the device may hold
// (OnPacketRead has checked them) the way mochi's processSubscribe does for
// MQTT 3.1.1, the only version the broker accepts; it has no retained
// messages to send (RetainAvailable is 0). It returns false, for mochi to
// handle the packet, when it is invalid (mochi closes the connection) or
// the write queue is full (mochi subscribes again, which changes nothing,
// and answers).
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

// acceptPublish hands a device's PUBLISH (QoS 0 or 1, on the device topic
// t; OnPacketRead has checked both and the size) to the hub as OnPublish
// does, after queueing the PUBACK of a QoS 1 publish. Of what
// processPublish does for such a packet nothing else applies: the hub
// terminates every device topic (no routing, nothing retained, no hook but
// this one), mochi counts the packet when it reads it and the PUBACK when
// it writes it, and the QoS 1 acknowledgement is not held in flight
// (processPublish would also drop a message in flight to the device under
// the same packet id, which the two directions do not share). It
// returns false, for mochi to handle the packet and the hub to get it from
// OnPublish, when the packet is invalid (mochi drops it or closes the
// connection) or the write queue has no room for the PUBACK; the hub has
// not seen the packet then.
func (h *hook) acceptPublish(cl *mqtt.Client, t iothub.DeviceTopic, pk *packets.Packet) bool {
	if pk.PublishValidate(h.s.mochi.Options.Capabilities.TopicAliasMaximum) != packets.CodeSuccess ||
		!mqtt.IsValidFilter(pk.TopicName, true) {
		return false
	}
	if pk.FixedHeader.Qos == 1 && !queueOut(cl, &packets.Packet{FixedHeader: packets.FixedHeader{Type: packets.Puback}, PacketID: pk.PacketID}) {
		return false
	}
	h.publish(cl.ID, t, *pk)
	return true
}
