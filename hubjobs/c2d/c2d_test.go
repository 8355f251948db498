package c2d

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// fakeLink behaves as the broker does for one connection per device: it
// refuses a device that is not connected, gives packet ids per device, and
// holds the filters the device subscribed to on its current connection.
type fakeLink struct {
	mu        sync.Mutex
	connected map[string]bool
	subs      map[string]bool
	pid       map[string]uint16
	sent      []delivery
	full      bool // the write queue is full
}

type delivery struct {
	device, topic string
	body          string
	dup           bool
	pid           uint16
}

func newFakeLink() *fakeLink {
	return &fakeLink{connected: map[string]bool{}, subs: map[string]bool{}, pid: map[string]uint16{}}
}

func (l *fakeLink) DeliverQoS1(id, topic string, payload []byte, dup bool) (uint16, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.connected[id] {
		return 0, errors.New("not connected")
	}
	if l.full {
		return 0, errors.New("write queue full")
	}
	l.pid[id]++
	l.sent = append(l.sent, delivery{id, topic, string(payload), dup, l.pid[id]})
	return l.pid[id], nil
}

// connect and friends drive the queues as the broker's events would.
func (l *fakeLink) connect(q *Queues, id string, keepSession bool) {
	l.mu.Lock()
	l.connected[id] = true
	if !keepSession {
		delete(l.subs, id+" "+iothub.C2DFilter(id))
	}
	var filters []string
	if l.subs[id+" "+iothub.C2DFilter(id)] {
		filters = []string{iothub.C2DFilter(id)}
	}
	l.mu.Unlock()
	q.DeviceConnected(id, filters)
}

func (l *fakeLink) subscribe(q *Queues, id string) {
	l.mu.Lock()
	l.subs[id+" "+iothub.C2DFilter(id)] = true
	l.mu.Unlock()
	q.DeviceSubscriptions(id, []string{iothub.C2DFilter(id)})
}

func (l *fakeLink) disconnect(q *Queues, id string) {
	l.mu.Lock()
	l.connected[id] = false
	l.mu.Unlock()
	q.DeviceDisconnected(id)
}

func (l *fakeLink) deliveries() []delivery {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.sent)
}

type devices map[string]bool

func (d devices) DeviceExists(id string) bool { return d[id] }

type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func newQueues(t *testing.T) (*Queues, *fakeLink, *clock) {
	t.Helper()
	clk := &clock{now: time.Date(2026, 12, 6, 22, 0, 0, 0, time.UTC)}
	q, err := New(Config{Devices: devices{"d1": true, "d2": true}, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	l := newFakeLink()
	q.SetLink(l)
	return q, l, clk
}

func code(err error) string {
	var he *iothub.Error
	if errors.As(err, &he) {
		return he.Code.Name
	}
	return fmt.Sprint(err)
}

func bodies(ds []delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.body)
	}
	return out
}

func TestSendRefusals(t *testing.T) {
	big := bytes.Repeat([]byte("x"), iothub.MaxC2DBytes+1)
	tests := []struct {
		name, device string
		m            Message
		want         string
	}{
		{"unknown device", "nope", Message{Body: []byte("x")}, "DeviceNotFound"},
		{"body over 64 KB", "d1", Message{Body: big}, "MessageTooLarge"},
		{"properties push it over 64 KB", "d1", Message{Body: big[:iothub.MaxC2DBytes-2], Properties: []iothub.Property{{Key: "k", Value: "vv"}}}, "MessageTooLarge"},
		{"reserved property name", "d1", Message{Properties: []iothub.Property{{Key: "$.mid", Value: "x"}}}, "ArgumentInvalid"},
		{"negative ttl", "d1", Message{TTL: -time.Second}, "ArgumentInvalid"},
		{"overlong message id", "d1", Message{MessageID: strings.Repeat("m", 129)}, "ArgumentInvalid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, _, _ := newQueues(t)
			_, err := q.Send(tt.device, tt.m)
			if got := code(err); got != tt.want {
				t.Fatalf("Send = %v, want %s", err, tt.want)
			}
		})
	}
	q, _, _ := newQueues(t)
	if _, err := q.Send("d1", Message{Body: big[:iothub.MaxC2DBytes]}); err != nil {
		t.Fatalf("a 64 KB message: %v", err)
	}
}

// TestQueueDepth: the 51st waiting message is refused with IoT Hub's
// DeviceMaximumQueueDepthExceeded; completing one makes room.
func TestQueueDepth(t *testing.T) {
	q, l, _ := newQueues(t)
	for i := range iothub.MaxC2DQueueDepth {
		if _, err := q.Send("d1", Message{Body: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
	}
	_, err := q.Send("d1", Message{Body: []byte("51")})
	var he *iothub.Error
	if !errors.As(err, &he) || he.Code != iothub.CodeDeviceMaximumQueueDepthExceeded || he.HTTPStatus() != 403 {
		t.Fatalf("51st message: %v, want 403 DeviceMaximumQueueDepthExceeded", err)
	}
	if _, err := q.Send("d2", Message{Body: []byte("other device")}); err != nil {
		t.Fatalf("another device's queue is its own: %v", err)
	}
	l.connect(q, "d1", false)
	l.subscribe(q, "d1")
	q.DeviceAcked("d1", l.deliveries()[0].pid)
	if _, err := q.Send("d1", Message{Body: []byte("51")}); err != nil {
		t.Fatalf("after one completed: %v", err)
	}
}

// TestOfflineThenConnect: messages sent while the device is offline wait,
// and are delivered in order, with their properties in the topic, once it
// subscribes; one sent while it is online goes at once.
func TestOfflineThenConnect(t *testing.T) {
	q, l, clk := newQueues(t)
	for _, b := range []string{"one", "two", "three"} {
		if _, err := q.Send("d1", Message{Body: []byte(b), MessageID: b, Properties: []iothub.Property{{Key: "k", Value: "v " + b}}}); err != nil {
			t.Fatal(err)
		}
	}
	l.connect(q, "d1", false)
	if n := len(l.deliveries()); n != 0 {
		t.Fatalf("%d delivered before the device subscribed", n)
	}
	l.subscribe(q, "d1")
	q.Send("d1", Message{Body: []byte("four"), MessageID: "four", CorrelationID: "c4", TTL: time.Minute})
	ds := l.deliveries()
	if got := bodies(ds); !slices.Equal(got, []string{"one", "two", "three", "four"}) {
		t.Fatalf("delivered %q", got)
	}
	want := iothub.C2DTopic("d1", iothub.C2DProperties{MessageID: "four", Expiry: clk.Now().Add(time.Minute), To: "/devices/d1/messages/deviceBound", CorrelationID: "c4"})
	if ds[3].topic != want {
		t.Fatalf("topic %q, want %q", ds[3].topic, want)
	}
	p, err := iothub.ParseC2DTopic("d1", ds[0].topic)
	if err != nil || p.MessageID != "one" || len(p.Properties) != 1 || p.Properties[0] != (iothub.Property{Key: "k", Value: "v one"}) {
		t.Fatalf("first topic %q parses to %+v, %v", ds[0].topic, p, err)
	}
	st, _ := q.Status("d1")
	if st.Counts.Queued != 4 || st.Counts.Delivered != 4 || st.Messages[0].State != StateDelivered {
		t.Fatalf("status %+v", st)
	}
	for _, d := range ds {
		q.DeviceAcked("d1", d.pid)
	}
	st, _ = q.Status("d1")
	if st.Counts.Queued != 0 || st.Counts.Completed != 4 || len(st.Messages) != 0 {
		t.Fatalf("after PUBACKs: %+v", st)
	}
}

// TestRedelivery: a message not acknowledged is sent again, marked DUP, on
// the next connection (at once when the session kept the subscription);
// after MaxDeliveryCount deliveries it is dead-lettered.
func TestRedelivery(t *testing.T) {
	q, l, _ := newQueues(t)
	l.connect(q, "d1", false)
	l.subscribe(q, "d1")
	q.Send("d1", Message{Body: []byte("a")})
	q.Send("d1", Message{Body: []byte("b")})
	q.DeviceAcked("d1", l.deliveries()[1].pid) // b completed, a not
	l.disconnect(q, "d1")
	l.connect(q, "d1", true) // persistent session: still subscribed
	ds := l.deliveries()
	if len(ds) != 3 || ds[2].body != "a" || !ds[2].dup {
		t.Fatalf("deliveries %+v, want a sent again with DUP", ds)
	}
	// A PUBACK of the old connection's packet id completes nothing.
	q.DeviceAcked("d1", ds[0].pid)
	if st, _ := q.Status("d1"); st.Counts.Queued != 1 {
		t.Fatalf("an old packet id completed a message: %+v", st.Counts)
	}
	// Clean session: nothing until the device subscribes again.
	for range iothub.DefaultC2DMaxDelivery {
		l.disconnect(q, "d1")
		l.connect(q, "d1", false)
		l.subscribe(q, "d1")
	}
	st, _ := q.Status("d1")
	if st.Counts.Queued != 0 || st.Counts.DeadLettered != 1 || st.Counts.Delivered != iothub.DefaultC2DMaxDelivery+1 {
		t.Fatalf("counts %+v, want a dead-lettered after %d deliveries", st.Counts, iothub.DefaultC2DMaxDelivery)
	}
}

// TestFullWriteQueue: a delivery the connection's write queue refuses is
// tried again on the next PUBACK.
func TestFullWriteQueue(t *testing.T) {
	q, l, _ := newQueues(t)
	l.connect(q, "d1", false)
	l.subscribe(q, "d1")
	q.Send("d1", Message{Body: []byte("a")})
	l.mu.Lock()
	l.full = true
	l.mu.Unlock()
	q.Send("d1", Message{Body: []byte("b")})
	l.mu.Lock()
	l.full = false
	l.mu.Unlock()
	q.DeviceAcked("d1", l.deliveries()[0].pid)
	if got := bodies(l.deliveries()); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("delivered %q", got)
	}
}

// TestExpiry: a message whose time to live has passed is dropped, counted,
// and never delivered; TTLs are capped at IoT Hub's maximum.
func TestExpiry(t *testing.T) {
	q, l, clk := newQueues(t)
	q.Send("d1", Message{Body: []byte("short"), TTL: time.Minute})
	long, err := q.Send("d1", Message{Body: []byte("long"), TTL: 100 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if want := clk.Now().Add(iothub.MaxC2DTTL); !long.ExpiryTime.Equal(want) {
		t.Fatalf("expiry %s, want the cap %s", long.ExpiryTime, want)
	}
	def, _ := q.Send("d1", Message{Body: []byte("default")})
	if want := clk.Now().Add(iothub.DefaultC2DTTL); !def.ExpiryTime.Equal(want) {
		t.Fatalf("expiry %s, want the default %s", def.ExpiryTime, want)
	}
	clk.add(2 * time.Minute)
	q.Sweep()
	st, _ := q.Status("d1")
	if st.Counts.Expired != 1 || st.Counts.Queued != 2 {
		t.Fatalf("counts %+v", st.Counts)
	}
	l.connect(q, "d1", false)
	l.subscribe(q, "d1")
	if got := bodies(l.deliveries()); !slices.Equal(got, []string{"long", "default"}) {
		t.Fatalf("delivered %q", got)
	}
	// A delivered message that expires before its PUBACK is dropped too.
	clk.add(time.Hour)
	q.Sweep()
	if st, _ := q.Status("d1"); st.Counts.Expired != 2 || st.Counts.Queued != 1 {
		t.Fatalf("counts %+v", st.Counts)
	}
}

func TestPurgeAndStatus(t *testing.T) {
	q, _, _ := newQueues(t)
	if _, err := q.Status("nope"); code(err) != "DeviceNotFound" {
		t.Fatalf("Status of an unknown device: %v", err)
	}
	if _, err := q.Purge("nope"); code(err) != "DeviceNotFound" {
		t.Fatalf("Purge of an unknown device: %v", err)
	}
	if st, err := q.Status("d2"); err != nil || st.Messages == nil || st.Durable {
		t.Fatalf("empty status %+v, %v", st, err)
	}
	q.Send("d1", Message{Body: []byte("a"), Properties: []iothub.Property{{Key: "k", Value: "v"}}})
	q.Send("d1", Message{Body: []byte("b")})
	st, _ := q.Status("d1")
	if len(st.Messages) != 2 || st.Messages[0].Properties["k"] != "v" || st.Messages[0].State != StateEnqueued || len(st.Messages[0].MessageID) != 36 {
		t.Fatalf("status %+v", st)
	}
	if n, err := q.Purge("d1"); n != 2 || err != nil {
		t.Fatalf("Purge = %d, %v", n, err)
	}
	if st, _ := q.Status("d1"); st.Counts.Queued != 0 || st.Counts.Purged != 2 {
		t.Fatalf("after purge %+v", st.Counts)
	}
}

func TestRunStops(t *testing.T) {
	q, _, _ := newQueues(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- q.Run(ctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
