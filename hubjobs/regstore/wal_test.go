package regstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/internal/walframe"
)

// crash closes the files without a checkpoint, as kill -9 would leave them.
func (s *Store) crash(t *testing.T) {
	t.Helper()
	if err := errors.Join(s.wal.Close(), s.db.Close()); err != nil {
		t.Fatal(err)
	}
}

// open opens the store at path or fails the test.
func open(t *testing.T, path string) *Store {
	t.Helper()
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func walSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path + ".wal")
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func apply(t *testing.T, s *Store, writes ...registry.Write) {
	t.Helper()
	if err := s.Apply(writes); err != nil {
		t.Fatal(err)
	}
}

func put(id, data string) registry.Write { return registry.Write{ID: id, Data: []byte(data)} }
func del(id string) registry.Write       { return registry.Write{ID: id} }

// TestLogReplayAfterCrash: acknowledged batches survive a crash between
// checkpoints, in order, deletes included; a clean Close leaves an empty log.
func TestLogReplayAfterCrash(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	s := open(t, path)
	apply(t, s, put("a", "1"), put("b", "2"))
	if err := s.Close(); err != nil { // a, b now in bbolt
		t.Fatal(err)
	}
	if n := walSize(t, path); n != 0 {
		t.Fatalf("log after Close: %d bytes", n)
	}
	s = open(t, path)
	apply(t, s, put("a", "3"), put("c", "4"))
	apply(t, s, del("b"), put("c", "5"), put("e", ""))
	if n, err := s.Count(); err != nil || n != 3 {
		t.Errorf("Count before the crash = %d, %v; want 3", n, err)
	}
	if got := fmt.Sprint(load(t, s)); got != "map[a:3 c:5 e:]" {
		t.Errorf("before the crash: %s", got)
	}
	s.crash(t)
	if walSize(t, path) == 0 {
		t.Fatal("nothing in the log to replay")
	}
	s = open(t, path)
	defer s.Close()
	if got := fmt.Sprint(load(t, s)); got != "map[a:3 c:5 e:]" {
		t.Errorf("after the crash: %s", got)
	}
	if n := walSize(t, path); n != 0 {
		t.Errorf("log after replay: %d bytes, want a checkpoint", n)
	}
}

// TestLogTornTail: a frame cut short or failing its checksum ends the log;
// the batches before it are kept, the file is cut there, and later writes
// are replayed after it.
func TestLogTornTail(t *testing.T) {
	for _, tc := range []struct {
		name string
		tear func(log []byte) []byte
	}{
		{"header cut", func(log []byte) []byte { return append(log, 9, 0, 0) }},
		{"body cut", func(log []byte) []byte { return appendFrame(log, []registry.Write{put("z", "lost")})[:len(log)+12] }},
		{"bad checksum", func(log []byte) []byte {
			log = appendFrame(log, []registry.Write{put("z", "lost")})
			log[len(log)-1] ^= 0xff
			return log
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "r.db")
			s := open(t, path)
			apply(t, s, put("a", "1"))
			apply(t, s, put("b", "2"))
			s.crash(t)
			log, err := os.ReadFile(path + ".wal")
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path+".wal", tc.tear(log), 0o600); err != nil {
				t.Fatal(err)
			}
			s = open(t, path)
			if got := fmt.Sprint(load(t, s)); got != "map[a:1 b:2]" {
				t.Errorf("after the torn write: %s", got)
			}
			apply(t, s, put("c", "3"))
			s.crash(t)
			s = open(t, path)
			defer s.Close()
			if got := fmt.Sprint(load(t, s)); got != "map[a:1 b:2 c:3]" {
				t.Errorf("a write after the torn one: %s", got)
			}
		})
	}
}

// TestLogCorrupt: a frame with a good checksum that cannot be read is not
// a torn write; Open refuses it rather than drop acknowledged data.
func TestLogCorrupt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	s := open(t, path)
	s.crash(t)
	frame := walframe.Append(nil, func(b []byte) []byte { return append(b, 7, 1, 'a') }) // unknown op
	if err := os.WriteFile(path+".wal", frame, 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := Open(path); !errors.Is(err, walframe.ErrCorrupt) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open = %v, want walframe.ErrCorrupt", err)
	}
}

// TestCheckpoint: past the threshold the log is set aside and checkpointed
// into bbolt in the background while writes go on to a new log; a crash at
// any point after loses nothing.
func TestCheckpoint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	s := open(t, path)
	s.checkpointAt = 100
	apply(t, s, put("a", "1"))
	if walSize(t, path) == 0 || len(s.pending) != 1 {
		t.Fatal("a small batch was checkpointed")
	}
	apply(t, s, put("b", string(make([]byte, 200))), del("a"), put("c", "1"))
	apply(t, s, put("c", "2")) // while the checkpoint runs, or after
	if got := load(t, s); len(got) != 2 || len(got["b"]) != 200 || got["c"] != "2" {
		t.Errorf("during the checkpoint: %v", got)
	}
	if n, err := s.Count(); err != nil || n != 2 {
		t.Errorf("Count during the checkpoint = %d, %v", n, err)
	}
	s.checkpoints.Wait()
	if _, err := os.Stat(path + ".wal.1"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the checkpointed log is still there: %v", err)
	}
	if s.flushing != nil || len(s.pending) != 1 {
		t.Errorf("after the checkpoint: flushing %v, pending %v", s.flushing, s.pending)
	}
	s.crash(t)
	s = open(t, path)
	defer s.Close()
	if got := load(t, s); len(got) != 2 || len(got["b"]) != 200 || got["c"] != "2" {
		t.Errorf("after checkpoint and crash: %v", got)
	}
}

// TestUnfinishedCheckpoint: a crash during a checkpoint leaves PATH.wal.1
// beside a newer PATH.wal; Open replays both, newer last.
func TestUnfinishedCheckpoint(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	s := open(t, path)
	apply(t, s, put("a", "0"), put("d", "0"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	old := appendFrame(nil, []registry.Write{put("a", "1"), put("b", "1"), del("d")})
	cur := appendFrame(nil, []registry.Write{put("a", "2"), del("b"), put("c", "2")})
	if err := errors.Join(os.WriteFile(path+".wal.1", old, 0o600), os.WriteFile(path+".wal", cur, 0o600)); err != nil {
		t.Fatal(err)
	}
	s = open(t, path)
	defer s.Close()
	if got := fmt.Sprint(load(t, s)); got != "map[a:2 c:2]" {
		t.Errorf("after replaying both logs: %s", got)
	}
	if _, err := os.Stat(path + ".wal.1"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("PATH.wal.1 left after Open: %v", err)
	}
}

// TestBrokenLog: once a log write fails and cannot be undone, every later
// Apply fails instead of writing after a torn frame.
func TestBrokenLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	s := open(t, path)
	apply(t, s, put("a", "1"))
	s.wal.Close() // writes and truncation now fail
	for i := range 2 {
		if err := s.Apply([]registry.Write{put("b", "2")}); err == nil {
			t.Fatalf("Apply %d on a closed log succeeded", i)
		}
	}
	if s.broken == nil {
		t.Error("the store was not marked broken")
	}
	s.db.Close()
	s = open(t, path)
	defer s.Close()
	if got := fmt.Sprint(load(t, s)); got != "map[a:1]" {
		t.Errorf("after the failure: %s", got)
	}
}

// FuzzReadFrames: any bytes as a log never panic, and frames written by
// appendFrame read back as the same writes.
func FuzzReadFrames(f *testing.F) {
	f.Add([]byte{}, "a", []byte("1"))
	f.Add(appendFrame(nil, []registry.Write{put("x", "y"), del("z")}), "", []byte(nil))
	f.Fuzz(func(t *testing.T, log []byte, id string, data []byte) {
		_, _ = readFrames(log, func(string, []byte) {})
		if id == "" {
			return
		}
		want := []registry.Write{{ID: id, Data: data}, del(id + "x"), put("k", "v")}
		var got []registry.Write
		n, err := readFrames(appendFrame(nil, want), func(id string, data []byte) {
			got = append(got, registry.Write{ID: id, Data: data})
		})
		if err != nil || n == 0 || !slices.EqualFunc(got, want, func(a, b registry.Write) bool {
			return a.ID == b.ID && string(a.Data) == string(b.Data) && (a.Data == nil) == (b.Data == nil)
		}) {
			t.Fatalf("round trip: %v %v, got %q want %q", n, err, got, want)
		}
	})
}

// TestLogUnderLoad applies many batches with checkpoints all the time,
// reads alongside, then crashes at once (a checkpoint may be running) and
// checks every key has its last acknowledged value.
func TestLogUnderLoad(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	s := open(t, path)
	s.checkpointAt = 2000
	want := map[string]string{}
	done := make(chan struct{})
	readers := make(chan error, 1)
	go func() {
		defer close(readers)
		for {
			select {
			case <-done:
				return
			default:
			}
			if _, err := s.Count(); err != nil {
				readers <- err
				return
			}
			if err := s.Load(func(string, []byte) error { return nil }); err != nil {
				readers <- err
				return
			}
		}
	}()
	for i := range 300 {
		var batch []registry.Write
		for j := range 10 {
			id := fmt.Sprintf("k%02d", (i*7+j*13)%50)
			if (i+j)%9 == 0 {
				batch = append(batch, del(id))
				delete(want, id)
				continue
			}
			v := fmt.Sprintf("%d-%d", i, j)
			batch = append(batch, put(id, v))
			want[id] = v
		}
		apply(t, s, batch...)
	}
	close(done)
	if err := <-readers; err != nil {
		t.Fatal(err)
	}
	if n, err := s.Count(); err != nil || n != len(want) {
		t.Errorf("Count = %d, %v; want %d", n, err, len(want))
	}
	s.crash(t)
	s.checkpoints.Wait()
	s = open(t, path)
	defer s.Close()
	if got := load(t, s); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("after the crash:\n got %v\nwant %v", got, want)
	}
}
