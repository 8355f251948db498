package broker

import (
	"bufio"
	"context"
	"encoding/binary"
	"sync"
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// ackLog records the PUBACKs the broker reports.
type ackLog struct {
	mu   sync.Mutex
	acks []string
}

func (a *ackLog) DeviceAcked(id string, pid uint16) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.acks = append(a.acks, id+" "+string(rune('0'+pid)))
}

func (a *ackLog) list() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.acks...)
}

// TestDeliverQoS1ReportsPuback: a QoS 1 hub message carries a packet id,
// and the device's PUBACK of it is reported to Acks; a PUBACK of an id
// from a connection that a newer one took over is not.
func TestDeliverQoS1ReportsPuback(t *testing.T) {
	acks := &ackLog{}
	e := start(t, func(c *Config) { c.Acks = acks })
	conn, err := e.s.DialMemory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	if code, err := rawConnect(conn, r, "d1", iothub.DeviceUsername(host, "d1", ""), token("d1", key1, time.Hour), false); err != nil || code != 0 {
		t.Fatalf("connect: code %d, %v", code, err)
	}
	waitFor(t, "connected", func() bool { return e.s.Connected("d1") })
	topic := iothub.C2DTopic("d1", iothub.C2DProperties{MessageID: "m1"})
	for i, dup := range []bool{false, true} {
		pid, err := e.s.DeliverQoS1("d1", topic, []byte("hello"), dup)
		if err != nil {
			t.Fatal(err)
		}
		if want := uint16(i + 1); pid != want {
			t.Fatalf("packet id %d, want %d", pid, want)
		}
		typ, body, err := readPacket(r)
		if err != nil {
			t.Fatal(err)
		}
		wantType := byte(0x32) // PUBLISH, QoS 1
		if dup {
			wantType |= 0x08
		}
		n := int(binary.BigEndian.Uint16(body))
		if typ != wantType || string(body[2:2+n]) != topic || binary.BigEndian.Uint16(body[2+n:]) != pid || string(body[4+n:]) != "hello" {
			t.Fatalf("got type %#x body %q, want a QoS 1 PUBLISH (dup %v) of id %d on %s", typ, body, dup, pid, topic)
		}
		if _, err := conn.Write(packet(0x40, binary.BigEndian.AppendUint16(nil, pid))); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "both PUBACKs reported", func() bool { return len(acks.list()) == 2 })
	if got := acks.list(); got[0] != "d1 1" || got[1] != "d1 2" {
		t.Fatalf("acks %q", got)
	}
	// A PUBACK read from a connection that has ended, or that a newer one
	// has replaced, is not reported.
	old := e.s.live("d1")
	conn.Close()
	waitFor(t, "disconnected", func() bool { return !e.s.Connected("d1") })
	e.s.acked(old, 1)
	c, err := connect(t, e, memory, "d1", token("d1", key1, time.Hour), false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Disconnect(0)
	// Mochi answers CONNACK before it reports the session established.
	waitFor(t, "reconnected", func() bool { return e.s.live("d1") != nil })
	e.s.acked(old, 2)
	e.s.acked(e.s.live("d1"), 3)
	if got := acks.list(); len(got) != 3 || got[2] != "d1 3" {
		t.Fatalf("acks %q, want a third from the new connection only", got)
	}
}

// TestC2DIsolation: a device may subscribe to its own cloud-to-device
// filter only; another device's, a wildcard over devices, and a module's
// are refused by closing the connection, and a message delivered to one
// device never reaches another.
func TestC2DIsolation(t *testing.T) {
	e := start(t)
	for _, filter := range []string{"devices/d2/messages/devicebound/#", "devices/+/messages/devicebound/#", "devices/#", "#"} {
		c, err := connect(t, e, memory, "d1", token("d1", key1, time.Hour), true)
		if err != nil {
			t.Fatal(err)
		}
		tok := c.Subscribe(filter, 1, nil)
		tok.WaitTimeout(5 * time.Second)
		waitFor(t, "connection closed after subscribing "+filter, func() bool { return !c.IsConnectionOpen() })
		c.Disconnect(0)
	}
	got1, got2 := make(chan string, 4), make(chan string, 4)
	c1, err := connect(t, e, memory, "d1", token("d1", key1, time.Hour), true)
	if err != nil {
		t.Fatal(err)
	}
	defer c1.Disconnect(0)
	c2, err := connect(t, e, memory, "d2", token("d2", key1, time.Hour), true)
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Disconnect(0)
	subscribe(t, c1, iothub.C2DFilter("d1"), 1, func(_ paho.Client, m paho.Message) { got1 <- m.Topic() })
	subscribe(t, c2, iothub.C2DFilter("d2"), 1, func(_ paho.Client, m paho.Message) { got2 <- m.Topic() })
	if _, err := e.s.DeliverQoS1("d1", iothub.C2DTopic("d1", iothub.C2DProperties{MessageID: "for-d1"}), []byte("x"), false); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.DeliverQoS1("d2", iothub.C2DTopic("d2", iothub.C2DProperties{MessageID: "for-d2"}), []byte("x"), false); err != nil {
		t.Fatal(err)
	}
	if got := receive(t, got1, "d1's message"); got != iothub.C2DTopic("d1", iothub.C2DProperties{MessageID: "for-d1"}) {
		t.Fatalf("d1 got %q", got)
	}
	if got := receive(t, got2, "d2's message"); got != iothub.C2DTopic("d2", iothub.C2DProperties{MessageID: "for-d2"}) {
		t.Fatalf("d2 got %q", got)
	}
	select {
	case m := <-got1:
		t.Fatalf("d1 got a second message %q", m)
	case m := <-got2:
		t.Fatalf("d2 got a second message %q", m)
	default:
	}
}
