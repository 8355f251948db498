package c2d

import (
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// memStore is a Store in memory that behaves as the bbolt one: Load gives
// each device's messages in Seq order, Write applies all its ops or none,
// and it fails every write while failing is set.
type memStore struct {
	mu      sync.Mutex
	msgs    map[string]map[uint64]Stored
	failing bool
	writes  int
}

func newMemStore() *memStore { return &memStore{msgs: map[string]map[uint64]Stored{}} }

func (s *memStore) Load(fn func(Stored) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, dev := range slices.Sorted(maps.Keys(s.msgs)) {
		for _, seq := range slices.Sorted(maps.Keys(s.msgs[dev])) {
			if err := fn(s.msgs[dev][seq]); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *memStore) Write(ops []Op) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failing {
		return errors.New("disk full")
	}
	s.writes++
	for _, op := range ops {
		if op.Delete {
			delete(s.msgs[op.Msg.DeviceID], op.Msg.Seq)
			continue
		}
		if s.msgs[op.Msg.DeviceID] == nil {
			s.msgs[op.Msg.DeviceID] = map[uint64]Stored{}
		}
		s.msgs[op.Msg.DeviceID][op.Msg.Seq] = op.Msg
	}
	return nil
}

func (s *memStore) stored(dev string) []Stored {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Stored
	for _, seq := range slices.Sorted(maps.Keys(s.msgs[dev])) {
		out = append(out, s.msgs[dev][seq])
	}
	return out
}

func newStoredQueues(t *testing.T, st Store, clk *clock) (*Queues, *fakeLink) {
	t.Helper()
	q, err := New(Config{Devices: devices{"d1": true, "d2": true}, Now: clk.Now, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	l := newFakeLink()
	q.SetLink(l)
	return q, l
}

// TestStoreFailureRefusesSend: a message the store cannot keep is answered
// with 500 ServerError and not queued.
func TestStoreFailureRefusesSend(t *testing.T) {
	st := newMemStore()
	clk := &clock{now: time.Date(2026, 12, 6, 22, 0, 0, 0, time.UTC)}
	q, l := newStoredQueues(t, st, clk)
	st.failing = true
	_, err := q.Send("d1", Message{Body: []byte("lost")})
	var he *iothub.Error
	if !errors.As(err, &he) || he.HTTPStatus() != 500 || he.Code.Name != "ServerError" {
		t.Fatalf("Send with a failing store: %v, want 500 ServerError", err)
	}
	if body := string(he.HTTPBody("t", clk.Now())); !strings.Contains(body, `\"errorCode\":500001`) {
		t.Fatalf("error body %s", body)
	}
	l.connect(q, "d1", false)
	l.subscribe(q, "d1")
	if s, _ := q.Status("d1"); s.Counts.Queued != 0 || s.Counts.Sent != 0 || len(l.deliveries()) != 0 {
		t.Fatalf("after a failed store write: %+v, delivered %v", s, l.deliveries())
	}
	// The refused message held no slot: MaxDepth messages fit afterwards.
	st.failing = false
	for i := range iothub.MaxC2DQueueDepth {
		if _, err := q.Send("d2", Message{Body: []byte("x")}); err != nil {
			t.Fatalf("message %d: %v", i+1, err)
		}
	}
}

// TestStoreKeepsQueues: what Send answered is stored before the answer;
// completion, purge and expiry remove it from the store once flushed;
// deliveries are counted in it; new Queues on the same store load what
// waits, in order, with its delivery count, and drop what has expired.
func TestStoreKeepsQueues(t *testing.T) {
	st := newMemStore()
	clk := &clock{now: time.Date(2026, 12, 6, 22, 0, 0, 0, time.UTC)}
	q, l := newStoredQueues(t, st, clk)
	for _, b := range []string{"a", "b", "c"} {
		sent, err := q.Send("d1", Message{Body: []byte(b), Properties: []iothub.Property{{Key: "k", Value: b}}})
		if err != nil || !sent.Durable {
			t.Fatalf("send %s: %+v, %v", b, sent, err)
		}
	}
	q.Send("d1", Message{Body: []byte("short"), TTL: time.Minute})
	q.Send("d2", Message{Body: []byte("purged")})
	if got := len(st.stored("d1")); got != 4 {
		t.Fatalf("%d stored before any flush, want 4", got)
	}
	if s, _ := q.Status("d1"); !s.Durable {
		t.Fatalf("status %+v, want durable", s)
	}
	l.connect(q, "d1", false)
	l.subscribe(q, "d1")
	q.DeviceAcked("d1", l.deliveries()[0].pid) // completes "a"
	q.Purge("d2")
	q.Flush()
	stored := st.stored("d1")
	if len(stored) != 3 || string(stored[0].Message.Body) != "b" || stored[0].Deliveries != 1 || len(st.stored("d2")) != 0 {
		t.Fatalf("stored after completion and purge: %+v, d2 %+v", stored, st.stored("d2"))
	}

	// A restart after the short message expired.
	clk.add(2 * time.Minute)
	q2, l2 := newStoredQueues(t, st, clk)
	s, _ := q2.Status("d1")
	if len(s.Messages) != 2 || s.Messages[0].DeliveryCount != 1 || s.Messages[1].DeliveryCount != 1 || s.Messages[1].Properties["k"] != "c" {
		t.Fatalf("loaded %+v", s.Messages)
	}
	if got := len(st.stored("d1")); got != 2 {
		t.Fatalf("%d stored after the load, want the expired one deleted", got)
	}
	l2.connect(q2, "d1", false)
	l2.subscribe(q2, "d1")
	ds := l2.deliveries()
	if got := bodies(ds); !slices.Equal(got, []string{"b", "c"}) || !ds[0].dup || !ds[1].dup {
		t.Fatalf("delivered after the restart %q (%+v)", got, ds)
	}
	// New messages go after the loaded ones.
	q2.Send("d1", Message{Body: []byte("d")})
	if stored := st.stored("d1"); string(stored[len(stored)-1].Message.Body) != "d" {
		t.Fatalf("stored %+v", stored)
	}
}
