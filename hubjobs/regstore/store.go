// Package regstore is the device registry's embedded durable store,
// implementing registry.Persistence: a bbolt (go.etcd.io/bbolt) file in the
// data directory and a write-ahead log beside it.
//
// Why bbolt: it is pure Go (no cgo, so fleetsim cross-compiles to a single
// static binary), keeps everything in a single file, and is ACID: a write
// transaction is fsynced before Commit returns, and a crash (kill -9, power
// loss) leaves the file at the last committed transaction.
//
// Why a log in front of it: a twin job writes every device's record twice
// (its desired patch and the device's reported acknowledgement) in random
// key order, and bbolt rewrites a whole page for each such update (see
// docs/performance.md for the figures). Apply instead appends the batch to the log
// and fsyncs once (the registry groups concurrent writes into one Apply).
// Once the log passes checkpointSize it is set aside as PATH.wal.1 and a
// new one started; a background checkpoint writes the old log's latest value
// per device into bbolt in one sorted transaction and then removes it. Open
// replays PATH.wal.1 and then PATH.wal, so a batch is durable as soon as
// Apply returns.
//
// Layout: bucket "devices" maps a device id to its record (opaque bytes the
// registry encodes); bucket "meta" holds the layout version. See wal.go for
// the log's format.
package regstore

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"

	bolt "go.etcd.io/bbolt"

	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/internal/boltfile"
)

var (
	bucketDevices = []byte("devices")
)

// layoutVersion is the version of the bucket layout written to new files.
const layoutVersion = "1"

// ErrLayout is returned (wrapped) by Open for a file written by an
// incompatible version.
var ErrLayout = boltfile.ErrLayout

// checkpointSize is the log size past which Apply moves the log into bbolt.
const checkpointSize = 64 << 20

// Store is an open registry store. It is safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string

	mu           sync.Mutex
	wal          *os.File
	walSize      int64
	pending      map[string][]byte // in PATH.wal; nil data: deleted
	flushing     map[string][]byte // in PATH.wal.1, being checkpointed; read-only
	buf          []byte
	checkpointAt int64
	broken       error          // a failed log write or checkpoint: no more writes
	checkpoints  sync.WaitGroup // the background checkpoint, if one runs
}

// logPath and oldLogPath are the active log and the one being checkpointed.
func (s *Store) logPath() string    { return s.path + ".wal" }
func (s *Store) oldLogPath() string { return s.path + ".wal.1" }

var _ registry.Persistence = (*Store)(nil)

// Open opens the store file at path, creating it if needed. It fails if
// another process has it open (after waiting up to a second for its lock).
func Open(path string) (*Store, error) {
	db, err := boltfile.Open(path, "registry store", layoutVersion, bucketDevices)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, path: path, pending: map[string][]byte{}, checkpointAt: checkpointSize}
	if err := s.openLog(); err != nil {
		_ = db.Close()
		return nil, err
	}
	return s, nil
}

// openLog replays PATH.wal.1 (a checkpoint the last process did not finish)
// and then PATH.wal up to a torn tail, and checkpoints what it replayed,
// which empties both logs, tail included.
func (s *Store) openLog() error {
	replay := func(id string, data []byte) { s.pending[id] = data }
	if old, err := os.ReadFile(s.oldLogPath()); err == nil {
		// Written in full before it was set aside: a torn tail here is
		// the same crash-time cut as in any log, and ends it.
		if _, err := readFrames(old, replay); err != nil {
			return fmt.Errorf("registry log %s: %w", s.oldLogPath(), err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("registry log: %w", err)
	}
	f, err := os.OpenFile(s.logPath(), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("open registry log: %w", err)
	}
	s.wal = f
	fail := func(err error) error {
		_ = f.Close()
		return fmt.Errorf("registry log %s: %w", f.Name(), err)
	}
	log, err := io.ReadAll(f)
	if err != nil {
		return fail(err)
	}
	if _, err := readFrames(log, replay); err != nil {
		return fail(err)
	}
	s.walSize = int64(len(log))
	if err := s.checkpointLocked(); err != nil {
		return fail(err)
	}
	return nil
}

// Load calls fn for every record, in no particular order; data is only
// valid during the call.
func (s *Store) Load(fn func(id string, data []byte) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDevices).ForEach(func(k, v []byte) error {
			if _, ok := s.latest(string(k)); ok {
				return nil
			}
			return fn(string(k), v)
		})
	})
	for id, data := range s.logged {
		if err == nil && data != nil {
			err = fn(id, data)
		}
	}
	if err != nil {
		return fmt.Errorf("load registry store %s: %w", s.path, err)
	}
	return nil
}

// latest is id's value in the logs, if they have one: the active log's, else
// the one being checkpointed. Nil data with ok means deleted.
func (s *Store) latest(id string) (data []byte, ok bool) {
	if data, ok = s.pending[id]; ok {
		return data, true
	}
	data, ok = s.flushing[id]
	return data, ok
}

// logged yields every id the logs hold with its latest value (nil: deleted).
func (s *Store) logged(yield func(id string, data []byte) bool) {
	for id, data := range s.flushing {
		if _, newer := s.pending[id]; !newer && !yield(id, data) {
			return
		}
	}
	for id, data := range s.pending {
		if !yield(id, data) {
			return
		}
	}
}

// Apply appends a batch to the log and returns once it is fsynced, or an
// error if none of it is. A Write with nil Data deletes its id. The store
// keeps the Data slices until the next checkpoint: callers must not change
// them.
func (s *Store) Apply(batch []registry.Write) error {
	for _, w := range batch {
		if w.ID == "" {
			return fmt.Errorf("write registry store %s: empty device id", s.path)
		}
	}
	if len(batch) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken != nil {
		return fmt.Errorf("write registry store %s: %w", s.path, s.broken)
	}
	s.buf = appendFrame(s.buf[:0], batch)
	if _, err := s.wal.Write(s.buf); err != nil {
		// Cut off what was written, so that later frames do not follow a
		// torn one; if that fails too, stop writing.
		if terr := s.wal.Truncate(s.walSize); terr != nil {
			s.broken = fmt.Errorf("log write failed (%v) and could not be undone: %w", err, terr)
		}
		return fmt.Errorf("write registry log %s: %w", s.path, err)
	}
	if err := s.wal.Sync(); err != nil {
		// After a failed fsync the file's state is unknown (the kernel may
		// have dropped the dirty pages): refuse further writes.
		s.broken = fmt.Errorf("log fsync failed: %w", err)
		return fmt.Errorf("sync registry log %s: %w", s.path, err)
	}
	s.walSize += int64(len(s.buf))
	for _, w := range batch {
		s.pending[w.ID] = w.Data
	}
	if s.walSize >= s.checkpointAt && s.flushing == nil {
		// The batch is durable in the log whatever happens here.
		if err := s.rotateLocked(); err != nil {
			s.broken = fmt.Errorf("set the log aside for a checkpoint: %w", err)
		}
	}
	return nil
}

// rotateLocked sets the active log aside as PATH.wal.1, starts a new one,
// and checkpoints the old one in the background.
func (s *Store) rotateLocked() error {
	if err := os.Rename(s.logPath(), s.oldLogPath()); err != nil {
		return err
	}
	f, err := os.OpenFile(s.logPath(), os.O_RDWR|os.O_CREATE|os.O_EXCL|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(s.path)); err != nil { // the rename and the new file
		_ = f.Close()
		return err
	}
	old := s.wal
	s.wal, s.walSize = f, 0
	s.flushing, s.pending = s.pending, map[string][]byte{}
	flushing := s.flushing
	s.checkpoints.Go(func() {
		err := errors.Join(old.Close(), s.writeDB(flushing))
		if err == nil {
			err = os.Remove(s.oldLogPath())
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		s.flushing = nil
		if err != nil && s.broken == nil {
			// The old log stays for the next Open to replay.
			s.broken = fmt.Errorf("checkpoint failed: %w", err)
		}
	})
	return nil
}

// syncDir fsyncs a directory, making renames and new files in it durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(d.Sync(), d.Close())
}

// checkpointLocked writes the logs' latest value per device into bbolt and
// empties them; Open and Close use it, with no background checkpoint
// running. A crash in between replays the logs again at Open, which writes
// the same values.
func (s *Store) checkpointLocked() error {
	if err := s.writeDB(s.pending); err != nil {
		return err
	}
	if s.walSize > 0 {
		if err := s.wal.Truncate(0); err != nil {
			return fmt.Errorf("empty registry log: %w", err)
		}
		if err := s.wal.Sync(); err != nil {
			return fmt.Errorf("empty registry log: %w", err)
		}
	}
	if err := os.Remove(s.oldLogPath()); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove registry log: %w", err)
	}
	s.walSize = 0
	s.pending = map[string][]byte{}
	return nil
}

// writeDB puts m into bbolt in one transaction, in key order.
func (s *Store) writeDB(m map[string][]byte) error {
	if len(m) == 0 {
		return nil
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDevices)
		for _, id := range slices.Sorted(maps.Keys(m)) {
			var err error
			if data := m[id]; data == nil {
				err = b.Delete([]byte(id))
			} else {
				err = b.Put([]byte(id), data)
			}
			if err != nil {
				return fmt.Errorf("device %s: %w", id, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("checkpoint registry store %s: %w", s.path, err)
	}
	return nil
}

// Count returns the number of stored records.
func (s *Store) Count() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDevices)
		n = b.Stats().KeyN
		for id, data := range s.logged {
			switch inDB := b.Get([]byte(id)) != nil; {
			case data != nil && !inDB:
				n++
			case data == nil && inDB:
				n--
			}
		}
		return nil
	})
	return n, err
}

// Close moves the log into bbolt (if that fails, the log stays and the next
// Open replays it) and closes both files. Close the registry first.
func (s *Store) Close() error {
	s.checkpoints.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	if s.broken == nil {
		errs = append(errs, s.checkpointLocked())
	}
	errs = append(errs, s.wal.Close(), s.db.Close())
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("close registry store %s: %w", s.path, err)
	}
	return nil
}
