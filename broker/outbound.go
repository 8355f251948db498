package broker

import (
	"errors"
	"reflect"
	"sync/atomic"
	"unsafe"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// Mochi gives every connection a write queue (ClientState.outbound, of
// Capabilities.MaximumClientWritesPending packets) and a goroutine that
// writes it out, but fills it only from its topic tree, which would show a
// device's method calls to every device subscribed to the same filter.
// Deliver puts the hub's messages for one device straight into that queue,
// reached at the field offsets found here: one write path per connection,
// in order, with no goroutine of the broker's own per delivery. Such
// goroutines each started on a 2 KB stack and grew it twice to write one
// packet: 6 % of a 100k-device twin job's CPU went to copying those stacks.
// Mochi's write goroutine grows its stack once instead, to 8 KB on the
// device's first message (the twin it reads on connecting), and keeps it
// with fleetsim's stack shrinking off: 4 KB more per device.
var outboundOffset, outboundQtyOffset, outboundErr = outboundFields()

func outboundFields() (queue, qty uintptr, err error) {
	t := reflect.TypeFor[mqtt.ClientState]()
	q, ok := t.FieldByName("outbound")
	if !ok || q.Type != reflect.TypeFor[chan *packets.Packet]() {
		return 0, 0, errors.New("broker: mochi's ClientState.outbound is not a chan *packets.Packet")
	}
	n, ok := t.FieldByName("outboundQty")
	if !ok || n.Type != reflect.TypeFor[int32]() || n.Offset%4 != 0 {
		return 0, 0, errors.New("broker: mochi's ClientState.outboundQty is not an int32")
	}
	return q.Offset, n.Offset, nil
}

// outboundQueue returns cl's write queue. It is set when mochi creates the
// client and never replaced. New refuses to build a Server when
// outboundErr is set, so the offsets are valid here.
func outboundQueue(cl *mqtt.Client) chan<- *packets.Packet {
	return *(*chan *packets.Packet)(unsafe.Add(unsafe.Pointer(&cl.State), outboundOffset))
}

// outboundQty is cl's count of queued packets, which mochi's write
// goroutine decrements for every packet it writes.
func outboundQty(cl *mqtt.Client) *int32 {
	return (*int32)(unsafe.Add(unsafe.Pointer(&cl.State), outboundQtyOffset))
}

// queueOut adds pk to cl's write queue without waiting; false means the
// queue is full.
func queueOut(cl *mqtt.Client, pk *packets.Packet) bool {
	select {
	case outboundQueue(cl) <- pk:
		atomic.AddInt32(outboundQty(cl), 1)
		return true
	default:
		return false
	}
}
