package boltfile_test

import (
	"errors"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/fleetsim/fleetsim/internal/boltfile"
)

// TestOpen: a new file gets its buckets and layout; reopening with the same
// layout keeps what was written; another layout is refused with ErrLayout.
func TestOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "s.db")
	db, err := boltfile.Open(path, "test store", "1", []byte("things"))
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bolt.Tx) error { return tx.Bucket([]byte("things")).Put([]byte("k"), []byte("v")) }); err != nil {
		t.Fatal(err)
	}
	db.Close()
	for _, tc := range []struct {
		layout  string
		wantErr error
	}{
		{"1", nil},
		{"2", boltfile.ErrLayout},
	} {
		db, err := boltfile.Open(path, "test store", tc.layout, []byte("things"))
		if !errors.Is(err, tc.wantErr) {
			t.Fatalf("reopen with layout %s: %v, want %v", tc.layout, err, tc.wantErr)
		}
		if err != nil {
			continue
		}
		var v []byte
		_ = db.View(func(tx *bolt.Tx) error { v = tx.Bucket([]byte("things")).Get([]byte("k")); return nil })
		if string(v) != "v" {
			t.Errorf("reopened store lost its record: %q", v)
		}
		db.Close()
	}
}
