// Package boltfile opens the hub's bbolt files, the same way for each
// store: created on first use, locked against a second process, its buckets
// created, and the layout version written on creation and checked on every
// later open.
package boltfile

import (
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// ErrLayout is returned (wrapped) by Open for a file written with a
// different layout version.
var ErrLayout = errors.New("unsupported store layout")

var (
	bucketMeta = []byte("meta")
	keyLayout  = []byte("layout")
)

// Open opens the bbolt file at path, creating it and buckets if needed,
// and checks that its layout version is layout. It fails if another process
// has the file open (after waiting up to a second for its lock). what names
// the store in errors ("job store").
func Open(path, what, layout string, buckets ...[]byte) (*bolt.DB, error) {
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("open %s %s: %w", what, path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range buckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		m, err := tx.CreateBucketIfNotExists(bucketMeta)
		if err != nil {
			return err
		}
		switch v := m.Get(keyLayout); {
		case v == nil:
			return m.Put(keyLayout, []byte(layout))
		case string(v) != layout:
			return fmt.Errorf("%w %q (this build reads %q)", ErrLayout, v, layout)
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("initialise %s %s: %w", what, path, err)
	}
	return db, nil
}
