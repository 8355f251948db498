package broker

import (
	"bufio"
	"context"
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

// TestSubscribeKeepsConnectionStacksSmall connects devices, subscribes each
// to the three filters a device SDK subscribes to, and measures what the
// SUBSCRIBEs added to the goroutine stacks with stack shrinking off, as
// fleetsim runs: the SUBACKs are written by mochi's write goroutine (which
// grows once, as it does for any first message), while the connection
// goroutine keeps the stack it had after CONNECT. Answered by mochi's
// processSubscribe, the SUBACK doubled that goroutine's stack to 32 KB.
// The measurement runs in a child process started with
// GODEBUG=gcshrinkstackoff=1.
func TestSubscribeKeepsConnectionStacksSmall(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector's instrumentation enlarges every stack frame")
	}
	if os.Getenv("FLEETSIM_SUBSCRIBE_STACKS") == "" {
		cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestSubscribeKeepsConnectionStacksSmall$", "-test.v")
		cmd.Env = append(os.Environ(), "FLEETSIM_SUBSCRIBE_STACKS=1", "GODEBUG=gcshrinkstackoff=1")
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS") {
			t.Fatalf("child: %v\n%s", err, out)
		}
		return
	}
	s, err := New(Config{Hostname: host, Identities: fleetIdentities{key1}})
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
	const n = 500
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
	waitFor(t, "every session established", func() bool { return s.Stats().Connects == n })
	connected := stacks()
	filters := []string{iothub.FilterMethods, iothub.FilterTwinResponses, iothub.FilterDesired}
	for i := range n {
		for k, f := range filters {
			if _, err := conns[i].Write(subscribePacket(uint16(k+1), f)); err != nil {
				t.Fatal(err)
			}
			typ, body, err := readPacket(readers[i])
			if err != nil || typ != 0x90 || len(body) != 3 || body[1] != byte(k+1) || body[2] != 0 {
				t.Fatalf("device %d, %s: SUBACK type %#x body %x, %v", i, f, typ, body, err)
			}
		}
	}
	grown := float64(stacks()-connected) / n
	t.Logf("the SUBSCRIBEs added %.0f bytes of stack per connection", grown)
	if grown > 8<<10 {
		t.Errorf("the SUBSCRIBEs added %.0f bytes of stack per connection, want at most 8 KiB", grown)
	}
}
