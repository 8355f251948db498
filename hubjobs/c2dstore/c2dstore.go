// Package c2dstore is the cloud-to-device queues' embedded durable store:
// one bbolt (go.etcd.io/bbolt) file in the data directory implementing
// c2d.Store.
//
// Layout: bucket "messages" holds one nested bucket per device id, which
// maps a message's sequence number (8 bytes, big-endian, so keys sort in
// the order the messages were sent) to its JSON c2d.Stored; bucket "meta"
// holds the layout version.
//
// Crash safety: every Write is one bbolt transaction, fsynced before Commit
// returns.
package c2dstore

import (
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/fleetsim/fleetsim/hubjobs/c2d"
	"github.com/fleetsim/fleetsim/internal/boltfile"
)

var bucketMessages = []byte("messages")

// layoutVersion is the version of the bucket layout written to new files.
const layoutVersion = "1"

// Store is an open cloud-to-device message store. It is safe for
// concurrent use.
type Store struct {
	db *bolt.DB
}

var _ c2d.Store = (*Store)(nil)

// Open opens the store file at path, creating it if needed. It fails if
// another process has it open (after waiting up to a second for its lock).
func Open(path string) (*Store, error) {
	db, err := boltfile.Open(path, "cloud-to-device store", layoutVersion, bucketMessages)
	if err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

// Close closes the file. Stop the queues first.
func (s *Store) Close() error { return s.db.Close() }

// Load implements c2d.Store: every stored message, each device's in
// sequence order.
func (s *Store) Load(fn func(c2d.Stored) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMessages).ForEachBucket(func(dev []byte) error {
			return tx.Bucket(bucketMessages).Bucket(dev).ForEach(func(k, v []byte) error {
				var m c2d.Stored
				if err := json.Unmarshal(v, &m); err != nil {
					return fmt.Errorf("device %s message %x: %w", dev, k, err)
				}
				return fn(m)
			})
		})
	})
}

// Write implements c2d.Store: ops in one fsynced transaction. A device
// bucket left empty is removed.
func (s *Store) Write(ops []c2d.Op) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		msgs := tx.Bucket(bucketMessages)
		for _, op := range ops {
			dev := []byte(op.Msg.DeviceID)
			key := binary.BigEndian.AppendUint64(nil, op.Msg.Seq)
			if op.Delete {
				b := msgs.Bucket(dev)
				if b == nil {
					continue
				}
				if err := b.Delete(key); err != nil {
					return err
				}
				if k, _ := b.Cursor().First(); k == nil {
					if err := msgs.DeleteBucket(dev); err != nil {
						return err
					}
				}
				continue
			}
			b, err := msgs.CreateBucketIfNotExists(dev)
			if err != nil {
				return fmt.Errorf("device %q: %w", op.Msg.DeviceID, err)
			}
			v, err := json.Marshal(op.Msg)
			if err != nil {
				return fmt.Errorf("device %s message %d: %w", op.Msg.DeviceID, op.Msg.Seq, err)
			}
			if err := b.Put(key, v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("cloud-to-device store write: %w", err)
	}
	return nil
}
