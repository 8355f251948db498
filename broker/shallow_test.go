package broker

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// subscribePacket is a SUBSCRIBE of one filter at QoS 0.
func subscribePacket(id uint16, filter string) []byte {
	body := []byte{byte(id >> 8), byte(id)}
	body = appendString(body, filter)
	body = append(body, 0)
	return packet(0x82, body)
}

// publishPacket is a PUBLISH at QoS 0 or 1 (id is sent only with QoS 1).
func publishPacket(qos byte, id uint16, topic string, payload string) []byte {
	body := appendString(nil, topic)
	if qos > 0 {
		body = append(body, byte(id>>8), byte(id))
	}
	return packet(0x30|qos<<1, append(body, payload...))
}

// deviceFilters are the filters a device SDK subscribes to.
var deviceFilters = []string{iothub.FilterMethods, iothub.FilterTwinResponses, iothub.FilterDesired}

// inChildWithoutShrinking runs the test named name again in a child process
// with stack shrinking off, as fleetsim runs, and reports whether the
// caller is that child and should measure. In the parent it fails t when
// the child fails.
func inChildWithoutShrinking(t *testing.T, name string) bool {
	t.Helper()
	if raceEnabled {
		t.Skip("the race detector's instrumentation enlarges every stack frame")
	}
	if os.Getenv("FLEETSIM_STACKS_CHILD") != "" {
		return true
	}
	cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^"+name+"$", "-test.v")
	cmd.Env = append(os.Environ(), "FLEETSIM_STACKS_CHILD=1", "GODEBUG=gcshrinkstackoff=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS") {
		t.Fatalf("child: %v\n%s", err, out)
	}
	t.Logf("child:\n%s", out)
	return false
}

// stackGrowth connects n raw devices to a broker with hub behind it, runs
// setup on each (unmeasured), then step on each, and returns the goroutine
// stack bytes per connection that the steps added.
func stackGrowth(t *testing.T, n int, hub Hub, setup, step func(t *testing.T, i int, c net.Conn, r *bufio.Reader)) float64 {
	t.Helper()
	s, err := New(Config{Hostname: host, Identities: fleetIdentities{key1}, Hub: hub})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	<-s.Ready()
	stacks := func() int64 {
		for range 4 {
			runtime.GC()
		}
		var m runtime.MemStats
		runtime.ReadMemStats(&m)
		return int64(m.StackInuse)
	}
	exp := time.Now().Add(time.Hour)
	conns := make([]net.Conn, n)
	readers := make([]*bufio.Reader, n)
	defer func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i := range n {
		id := "dev-" + strconv.Itoa(i)
		c, err := s.DialMemory(ctx)
		if err != nil {
			t.Fatal(err)
		}
		conns[i], readers[i] = c, bufio.NewReader(c)
		if code, err := rawConnect(c, readers[i], id, iothub.DeviceUsername(host, id, "t"), iothub.NewSAS(iothub.DeviceResource(host, id), key1, "", exp), false); err != nil || code != 0 {
			t.Fatalf("connect %s: code %d, %v", id, code, err)
		}
	}
	waitFor(t, "every session established", func() bool { return s.Stats().Connects == int64(n) })
	if setup != nil {
		for i := range n {
			setup(t, i, conns[i], readers[i])
		}
	}
	before := stacks()
	for i := range n {
		step(t, i, conns[i], readers[i])
	}
	return float64(stacks()-before) / float64(n)
}

// subscribeAll subscribes a raw device to deviceFilters.
func subscribeAll(t *testing.T, i int, c net.Conn, r *bufio.Reader) {
	for k, f := range deviceFilters {
		if _, err := c.Write(subscribePacket(uint16(k+1), f)); err != nil {
			t.Fatal(err)
		}
		typ, body, err := readPacket(r)
		if err != nil || typ != 0x90 || len(body) != 3 || body[1] != byte(k+1) || body[2] != 0 {
			t.Fatalf("device %d, %s: SUBACK type %#x body %x, %v", i, f, typ, body, err)
		}
	}
}

// TestSubscribeKeepsConnectionStacksSmall measures what a device SDK's
// SUBSCRIBEs add to the goroutine stacks with stack shrinking off: the
// SUBACKs are written by mochi's write goroutine (which grows once, as it
// does for any first message), while the connection goroutine keeps the
// stack it had after CONNECT. Answered by mochi's processSubscribe, the
// SUBACK doubled that goroutine's stack to 32 KB.
func TestSubscribeKeepsConnectionStacksSmall(t *testing.T) {
	if !inChildWithoutShrinking(t, "TestSubscribeKeepsConnectionStacksSmall") {
		return
	}
	grown := stackGrowth(t, 500, nil, nil, subscribeAll)
	t.Logf("the SUBSCRIBEs added %.0f bytes of stack per connection", grown)
	if grown > 8<<10 {
		t.Errorf("the SUBSCRIBEs added %.0f bytes of stack per connection, want at most 8 KiB", grown)
	}
}

// TestPublishKeepsConnectionStacksSmall measures what a subscribed device's
// telemetry at QoS 1, twin GET and method response add to the goroutine
// stacks with stack shrinking off. Handled by mochi's processPublish (its
// hooks down to OnPublish, and WritePacket writing the PUBACK on the
// connection goroutine), the first QoS 1 publish doubled the connection
// goroutine's stack to 32 KB.
func TestPublishKeepsConnectionStacksSmall(t *testing.T) {
	if !inChildWithoutShrinking(t, "TestPublishKeepsConnectionStacksSmall") {
		return
	}
	const n = 500
	hub := newFakeHub()
	grown := stackGrowth(t, n, hub, subscribeAll, func(t *testing.T, i int, c net.Conn, r *bufio.Reader) {
		id := "dev-" + strconv.Itoa(i)
		for _, p := range [][]byte{
			publishPacket(0, 0, iothub.TwinGetTopic("1"), " "),
			publishPacket(0, 0, iothub.MethodResponseTopic(200, "2"), `{"ok":true}`),
			publishPacket(1, 7, iothub.TelemetryTopic(id)+"k=v", `{"t":21.5}`), // last: mochi may write its PUBACK before reading on
		} {
			if _, err := c.Write(p); err != nil {
				t.Fatal(err)
			}
		}
		typ, body, err := readPacket(r)
		if err != nil || typ != 0x40 || len(body) != 2 || body[1] != 7 {
			t.Fatalf("device %d: PUBACK type %#x body %x, %v", i, typ, body, err)
		}
	})
	waitFor(t, "every publish handed to the hub", func() bool { return len(hub.snapshot()) == 3*n })
	t.Logf("the PUBLISHes added %.0f bytes of stack per connection", grown)
	if grown > 8<<10 {
		t.Errorf("the PUBLISHes added %.0f bytes of stack per connection, want at most 8 KiB", grown)
	}
}

// TestAnsweredByMochiWhenTheQueueIsFull: when a device's write queue has
// no room for the acknowledgement, its QoS 1 PUBLISH and its SUBSCRIBE are
// left to mochi, which acknowledges them itself, and the hub sees each
// once.
func TestAnsweredByMochiWhenTheQueueIsFull(t *testing.T) {
	e := start(t, func(c *Config) { c.MaxPendingWrites = 4 })
	conn, err := e.s.DialMemory(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	if code, err := rawConnect(conn, r, "d1", iothub.DeviceUsername(host, "d1", ""), token("d1", key1, time.Hour), true); err != nil || code != 0 {
		t.Fatalf("connect: code %d, %v", code, err)
	}
	waitFor(t, "connected", func() bool { return e.s.Connected("d1") })
	// fill has the hub queue messages until the queue is full. The device
	// does not read (the in-memory connection has no buffer), so mochi's
	// write goroutine waits on writing the first and the queue stays full.
	fill := func() int {
		for n := 0; n <= 10; n++ {
			if err := e.s.Deliver("d1", iothub.MethodRequestTopic("m", "1"), []byte("null")); errors.Is(err, ErrQueueFull) {
				return n
			} else if err != nil {
				t.Fatal(err)
			}
		}
		t.Fatal("the write queue never filled")
		return 0
	}
	// ack reads the queued messages and the one acknowledgement of type typ.
	ack := func(queued int, typ byte) []byte {
		var body []byte
		for range queued + 1 {
			got, b, err := readPacket(r)
			switch {
			case err != nil:
				t.Fatal(err)
			case got == typ && body == nil:
				body = b
			case got>>4 != 3:
				t.Fatalf("packet type %#x body %x", got, b)
			}
		}
		if body == nil {
			t.Fatalf("no packet of type %#x", typ)
		}
		return body
	}

	queued := fill()
	if _, err := conn.Write(publishPacket(1, 9, iothub.TelemetryTopic("d1"), "t")); err != nil {
		t.Fatal(err)
	}
	if body := ack(queued, 0x40); len(body) != 2 || body[1] != 9 {
		t.Fatalf("PUBACK body %x", body)
	}
	if got := e.hub.snapshot(); len(got) != 1 || got[0] != "d1 telemetry  t" {
		t.Fatalf("hub got %q, want the publish once", got)
	}

	queued = fill()
	if _, err := conn.Write(subscribePacket(3, iothub.FilterMethods)); err != nil {
		t.Fatal(err)
	}
	if body := ack(queued, 0x90); len(body) != 3 || body[1] != 3 || body[2] != 0 {
		t.Fatalf("SUBACK body %x", body)
	}
	var subscribed []string
	for _, ev := range e.hub.eventLog() {
		if strings.HasPrefix(ev, "subscriptions ") {
			subscribed = append(subscribed, ev)
		}
	}
	if want := "subscriptions d1 " + iothub.FilterMethods; len(subscribed) != 1 || subscribed[0] != want {
		t.Fatalf("hub events %q, want %q once", subscribed, want)
	}
	if st := e.s.Stats(); st.MessagesIn != 1 {
		t.Errorf("MessagesIn = %d, want 1", st.MessagesIn)
	}
}
