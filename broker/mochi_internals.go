package broker

// This file is the one place the broker reaches into mochi where mochi has
// no public API. Each reach is checked once, when the package starts
// (mochiInternalsErr, which New returns, so a mochi release that changes
// the layout stops the broker with a clear error instead of corrupting
// memory), and by TestMochiInternals. Each says what public API would
// replace it.

import (
	"errors"
	"fmt"
	"reflect"
	"sync/atomic"
	"time"
	"unsafe"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// mochiInternalsErr says which reach no longer matches mochi's layout; nil
// when all do. New refuses to build a Server when it is set.
var mochiInternalsErr error

// The offsets of ClientState.outbound and ClientState.outboundQty.
var outboundOffset, outboundQtyOffset uintptr

func init() {
	var errs []error
	var err error
	if outboundOffset, outboundQtyOffset, err = outboundFields(reflect.TypeFor[mqtt.ClientState]()); err != nil {
		errs = append(errs, err)
	}
	if err := sweepTickerFields(reflect.TypeFor[mqtt.Server]()); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		mochiInternalsErr = fmt.Errorf("broker: this mochi-mqtt release is not the one the broker was built for: %w", err)
	}
}

// Reach 1: the per-connection write queue.
//
// Mochi gives every connection a write queue (ClientState.outbound, of
// Capabilities.MaximumClientWritesPending packets) and a goroutine that
// writes it out, but fills it only from its topic tree, which would show a
// device's method calls to every device subscribed to the same filter.
// Deliver puts the hub's messages for one device straight into that queue:
// one write path per connection, in order, without the caller waiting on
// the network and without a goroutine of the broker's own per delivery.
//
// The public API closest to it, Client.WritePacket, writes on the caller's
// goroutine: either the caller (the registry, a job) waits on a slow
// device's socket, or each delivery needs a goroutine of its own, which
// loses the order and costs a goroutine stack per message (see
// docs/performance.md). A public Client.Enqueue(pk) (non-blocking, false
// when the queue is full) would replace this reach.

// outboundFields finds the write queue and its count in t, mochi's
// ClientState.
func outboundFields(t reflect.Type) (queue, qty uintptr, err error) {
	q, ok := t.FieldByName("outbound")
	if !ok || q.Type != reflect.TypeFor[chan *packets.Packet]() {
		return 0, 0, errors.New("ClientState.outbound is not a chan *packets.Packet")
	}
	n, ok := t.FieldByName("outboundQty")
	if !ok || n.Type != reflect.TypeFor[int32]() || n.Offset%4 != 0 {
		return 0, 0, errors.New("ClientState.outboundQty is not an int32")
	}
	return q.Offset, n.Offset, nil
}

// outboundQueue returns cl's write queue. It is set when mochi creates the
// client and never replaced. New refuses to build a Server when
// mochiInternalsErr is set, so the offsets are valid here.
func outboundQueue(cl *mqtt.Client) chan<- *packets.Packet {
	return *(*chan *packets.Packet)(unsafe.Add(unsafe.Pointer(&cl.State), outboundOffset))
}

// outboundQty is cl's count of queued packets, which mochi's write
// goroutine decrements for every packet it writes.
func outboundQty(cl *mqtt.Client) *int32 {
	return (*int32)(unsafe.Add(unsafe.Pointer(&cl.State), outboundQtyOffset))
}

// queueOut adds pk to cl's write queue without waiting, and counts it as
// mochi does; false means the queue is full.
func queueOut(cl *mqtt.Client, pk *packets.Packet) bool {
	select {
	case outboundQueue(cl) <- pk:
		atomic.AddInt32(outboundQty(cl), 1)
		return true
	default:
		return false
	}
}

// Reach 2: the expiry sweeps' tickers.
//
// Mochi walks every client once a second for expired sessions and expired
// inflight messages (Server.loop.clientExpiry and loop.inflightExpiry),
// copying its whole client map each time, and has no option for the
// interval. stretchSweeps resets both tickers. An option for the sweep
// interval (Options.ExpiryInterval, say) would replace this reach.

// sweepTickerFields checks that t, mochi's Server, has a field loop that
// points to a struct whose clientExpiry and inflightExpiry are *time.Ticker.
func sweepTickerFields(t reflect.Type) error {
	loop, ok := t.FieldByName("loop")
	if !ok || loop.Type.Kind() != reflect.Pointer || loop.Type.Elem().Kind() != reflect.Struct {
		return errors.New("the loop field of Server is not a pointer to a struct")
	}
	for _, name := range sweepTickers {
		f, ok := loop.Type.Elem().FieldByName(name)
		if !ok || f.Type != reflect.TypeFor[*time.Ticker]() {
			return errors.New("the " + name + " field of Server.loop is not a *time.Ticker")
		}
	}
	return nil
}

// sweepTickers are the fields of mochi's loop that stretchSweeps resets.
var sweepTickers = []string{"clientExpiry", "inflightExpiry"}

// stretchSweeps sets mochi's client-expiry and inflight-expiry tickers to
// every. The layout is checked at start; the error covers a Server that
// mochi built without its loop.
func stretchSweeps(s *mqtt.Server, every time.Duration) error {
	if mochiInternalsErr != nil {
		return mochiInternalsErr
	}
	loop := reflect.ValueOf(s).Elem().FieldByName("loop")
	if loop.IsNil() {
		return errors.New("broker: mochi's Server.loop is nil")
	}
	var tickers []*time.Ticker
	for _, name := range sweepTickers {
		f := loop.Elem().FieldByName(name)
		t := *(**time.Ticker)(unsafe.Pointer(f.UnsafeAddr()))
		if t == nil {
			return errors.New("broker: mochi's Server.loop." + name + " is nil")
		}
		tickers = append(tickers, t)
	}
	for _, t := range tickers {
		t.Reset(every)
	}
	return nil
}
