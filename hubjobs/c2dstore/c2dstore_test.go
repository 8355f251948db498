package c2dstore_test

import (
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs/c2d"
	"github.com/fleetsim/fleetsim/hubjobs/c2dstore"
	"github.com/fleetsim/fleetsim/internal/boltfile"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

func open(t *testing.T, path string) *c2dstore.Store {
	t.Helper()
	s, err := c2dstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func load(t *testing.T, s *c2dstore.Store) []c2d.Stored {
	t.Helper()
	var out []c2d.Stored
	if err := s.Load(func(m c2d.Stored) error { out = append(out, m); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func keys(ms []c2d.Stored) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.DeviceID+"/"+string(m.Message.Body))
	}
	return out
}

type registered struct{}

func (registered) DeviceExists(string) bool { return true }

// TestWriteDeleteReload: puts and deletes survive a reopen, each device's
// messages load in sequence order (256 sorts after 2, which a text key
// would not), a message keeps its fields, and an emptied device leaves
// nothing behind.
func TestWriteDeleteReload(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c2d.db")
	s := open(t, path)
	t0 := time.Date(2026, 12, 6, 22, 0, 0, 0, time.UTC)
	msg := func(dev string, seq uint64, body string) c2d.Op {
		return c2d.Op{Msg: c2d.Stored{DeviceID: dev, Seq: seq, Enqueued: t0, Expiry: t0.Add(time.Hour),
			Message: c2d.Message{MessageID: body, Body: []byte(body), Properties: []iothub.Property{{Key: "k", Value: body}}}}}
	}
	if err := s.Write([]c2d.Op{msg("d1", 256, "late"), msg("d1", 2, "early"), msg("d2", 3, "gone"), msg("d1", 300, "done")}); err != nil {
		t.Fatal(err)
	}
	upd := msg("d1", 2, "early")
	upd.Msg.Deliveries = 3
	if err := s.Write([]c2d.Op{upd, {Delete: true, Msg: c2d.Stored{DeviceID: "d2", Seq: 3}},
		{Delete: true, Msg: c2d.Stored{DeviceID: "d1", Seq: 300}}, {Delete: true, Msg: c2d.Stored{DeviceID: "nope", Seq: 1}}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer s.Close()
	got := load(t, s)
	if k := keys(got); !slices.Equal(k, []string{"d1/early", "d1/late"}) {
		t.Fatalf("loaded %q", k)
	}
	if m := got[0]; m.Deliveries != 3 || m.Seq != 2 || !m.Expiry.Equal(t0.Add(time.Hour)) || m.Message.Properties[0].Value != "early" {
		t.Fatalf("loaded %+v", m)
	}
}

// TestQueuesReloadFromFile: queues on a store file keep what waits across
// a reopen; what expired while the hub was down is dropped and deleted.
func TestQueuesReloadFromFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c2d.db")
	now := time.Date(2026, 12, 6, 22, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s := open(t, path)
	q, err := c2d.New(c2d.Config{Devices: registered{}, Now: clock, Store: s})
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []c2d.Message{{Body: []byte("short"), TTL: time.Minute}, {Body: []byte("long")}} {
		if _, err := q.Send("d1", m); err != nil {
			t.Fatal(err)
		}
	}
	s.Close()

	now = now.Add(2 * time.Minute)
	s = open(t, path)
	defer s.Close()
	q, err = c2d.New(c2d.Config{Devices: registered{}, Now: clock, Store: s})
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := q.Status("d1"); len(st.Messages) != 1 || st.Messages[0].Size != len("long") || !st.Durable {
		t.Fatalf("after the reopen: %+v", st)
	}
	if k := keys(load(t, s)); !slices.Equal(k, []string{"d1/long"}) {
		t.Fatalf("stored %q, want the expired message deleted", k)
	}
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c2d.db")
	s := open(t, path)
	defer s.Close()
	if _, err := c2dstore.Open(path); err == nil || errors.Is(err, boltfile.ErrLayout) {
		t.Fatalf("second open: %v, want a lock error", err)
	}
}

// BenchmarkSend is a Send on a store file: one fsynced transaction, the
// time a sender waits (the queues' lock is not held for it).
func BenchmarkSend(b *testing.B) {
	s, err := c2dstore.Open(filepath.Join(b.TempDir(), "c2d.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	q, err := c2d.New(c2d.Config{Devices: registered{}, Store: s, MaxDepth: 1 << 30})
	if err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 256)
	for b.Loop() {
		if _, err := q.Send("d1", c2d.Message{Body: body}); err != nil {
			b.Fatal(err)
		}
	}
}
