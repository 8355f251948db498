// Package store is the device registry's embedded durable store: one bbolt
// (go.etcd.io/bbolt) file in the data directory, implementing
// registry.Persistence.
//
// Why bbolt: it is pure Go (no cgo, so fleetsim cross-compiles to a single
// static binary), keeps everything in a single file, and is ACID: a write
// transaction is fsynced before Commit returns, and a crash (kill -9, power
// loss) leaves the file at the last committed transaction. The registry
// groups concurrent writes into one Apply, i.e. one transaction and one
// fsync, which is what makes write-through affordable.
//
// Layout: bucket "devices" maps a device id to its record (opaque bytes the
// registry encodes); bucket "meta" holds the layout version.
package store

import (
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/fleetsim/fleetsim/hubjobs/registry"
)

var (
	bucketDevices = []byte("devices")
	bucketMeta    = []byte("meta")
	keyLayout     = []byte("layout")
)

// layoutVersion is the version of the bucket layout written to new files.
const layoutVersion = "1"

// ErrLayout is returned by Open for a file written by an incompatible version.
var ErrLayout = errors.New("unsupported store layout")

// Store is an open registry store. It is safe for concurrent use.
type Store struct {
	db   *bolt.DB
	path string
}

var _ registry.Persistence = (*Store)(nil)

// Open opens the store file at path, creating it if needed. It fails if
// another process has it open (after waiting up to a second for its lock).
func Open(path string) (*Store, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("open registry store %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if _, err := tx.CreateBucketIfNotExists(bucketDevices); err != nil {
			return err
		}
		m, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		switch v := m.Get(keyLayout); {
		case v == nil:
			return m.Put(keyLayout, []byte(layoutVersion))
		case string(v) != layoutVersion:
			return fmt.Errorf("%w %q (this build reads %q)", ErrLayout, v, layoutVersion)
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("initialise registry store %s: %w", path, err)
	}
	return &Store{db: db, path: path}, nil
}

// Load calls fn for every record in id order; data is only valid during the call.
func (s *Store) Load(fn func(id string, data []byte) error) error {
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketDevices).ForEach(func(k, v []byte) error {
			return fn(string(k), v)
		})
	})
	if err != nil {
		return fmt.Errorf("load registry store %s: %w", s.path, err)
	}
	return nil
}

// Apply writes a batch in one transaction and returns once it is fsynced.
// A Write with nil Data deletes its id.
func (s *Store) Apply(batch []registry.Write) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketDevices)
		for _, w := range batch {
			if w.ID == "" {
				return errors.New("empty device id")
			}
			var err error
			if w.Data == nil {
				err = b.Delete([]byte(w.ID))
			} else {
				err = b.Put([]byte(w.ID), w.Data)
			}
			if err != nil {
				return fmt.Errorf("device %s: %w", w.ID, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("write registry store %s: %w", s.path, err)
	}
	return nil
}

// Count returns the number of stored records.
func (s *Store) Count() (int, error) {
	n := 0
	err := s.db.View(func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketDevices).Stats().KeyN
		return nil
	})
	return n, err
}

// Close closes the file. Close the registry first.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close registry store %s: %w", s.path, err)
	}
	return nil
}
