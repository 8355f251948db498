package broker

import (
	"bufio"
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// TestDeliverInOrder: messages delivered to one device arrive in the order
// of the Deliver calls, through mochi's write queue for the connection, and
// mochi's count of queued packets is back to zero once they are written (the
// broker increments it as mochi itself does).
func TestDeliverInOrder(t *testing.T) {
	if mochiInternalsErr != nil {
		t.Fatal(mochiInternalsErr)
	}
	e := start(t)
	conn, err := e.s.DialMemory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	code, err := rawConnect(conn, r, "d1", iothub.DeviceUsername(host, "d1", ""), token("d1", key1, time.Hour), true)
	if err != nil || code != 0 {
		t.Fatalf("connect: code %d, %v", code, err)
	}
	waitFor(t, "connected", func() bool { return e.s.Connected("d1") })
	cl := e.s.live("d1")
	if got, want := cap(outboundQueue(cl)), e.s.cfg.MaxPendingWrites; got != want {
		t.Fatalf("write queue holds %d packets, want MaxPendingWrites %d", got, want)
	}
	const n = 40 // fewer than MaxPendingWrites: none may be refused
	for i := range n {
		if err := e.s.Deliver("d1", iothub.MethodRequestTopic("m", fmt.Sprint(i)), []byte("null")); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		typ, body, err := readPacket(r)
		if err != nil {
			t.Fatal(err)
		}
		want := iothub.MethodRequestTopic("m", fmt.Sprint(i))
		if typ>>4 != 3 || len(body) < 2+len(want) || string(body[2:2+len(want)]) != want {
			t.Fatalf("packet %d: type %#x body %q, want a PUBLISH on %s", i, typ, body, want)
		}
	}
	waitFor(t, "mochi's queued count back to 0", func() bool { return atomic.LoadInt32(outboundQty(cl)) == 0 })
	if st := e.s.Stats(); st.MessagesOut != n || st.QueueDropped != 0 {
		t.Errorf("stats %+v", st)
	}
}
