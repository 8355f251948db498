package regstore

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/fleetsim/fleetsim/hubjobs/registry"
)

func load(t *testing.T, s *Store) map[string]string {
	t.Helper()
	got := map[string]string{}
	if err := s.Load(func(id string, data []byte) error {
		got[id] = string(data)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestApplyAndReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	s, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		batch []registry.Write
		want  map[string]string
	}{
		{"put", []registry.Write{{ID: "a", Data: []byte("1")}, {ID: "b", Data: []byte("2")}}, map[string]string{"a": "1", "b": "2"}},
		{"same id twice: last wins", []registry.Write{{ID: "a", Data: []byte("3")}, {ID: "a", Data: []byte("4")}}, map[string]string{"a": "4", "b": "2"}},
		{"delete then put", []registry.Write{{ID: "b"}, {ID: "c", Data: []byte("5")}}, map[string]string{"a": "4", "c": "5"}},
		{"put then delete", []registry.Write{{ID: "d", Data: []byte("6")}, {ID: "d"}}, map[string]string{"a": "4", "c": "5"}},
		{"delete a missing id", []registry.Write{{ID: "zz"}}, map[string]string{"a": "4", "c": "5"}},
		{"empty batch", nil, map[string]string{"a": "4", "c": "5"}},
	}
	for _, tt := range tests {
		if err := s.Apply(tt.batch); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		if got := load(t, s); fmt.Sprint(got) != fmt.Sprint(tt.want) {
			t.Errorf("%s: stored %v, want %v", tt.name, got, tt.want)
		}
	}
	if err := s.Apply([]registry.Write{{ID: "e", Data: []byte("7")}, {ID: "", Data: []byte("x")}}); err == nil {
		t.Error("a batch with an empty id was accepted")
	}
	if got := load(t, s); got["e"] != "" {
		t.Error("a failed batch was partly applied")
	}
	if n, err := s.Count(); err != nil || n != 2 {
		t.Errorf("Count = %d, %v", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := load(t, s); fmt.Sprint(got) != "map[a:4 c:5]" {
		t.Errorf("after reopen: %v", got)
	}
	stop := errors.New("stop")
	if err := s.Load(func(string, []byte) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("Load did not return fn's error: %v", err)
	}
}

func TestOpenRefusesOtherLayouts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	db, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		b, err := tx.CreateBucket([]byte("meta"))
		if err != nil {
			return err
		}
		return b.Put([]byte("layout"), []byte("99"))
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	if s, err := Open(path); !errors.Is(err, ErrLayout) {
		if s != nil {
			s.Close()
		}
		t.Fatalf("Open = %v, want ErrLayout", err)
	}
	if _, err := Open(filepath.Join(t.TempDir(), "missing", "r.db")); err == nil {
		t.Error("Open in a missing directory succeeded")
	}
}

// BenchmarkApply measures group commit: one fsync per batch of n writes.
func BenchmarkApply(b *testing.B) {
	for _, n := range []int{1, 100} {
		b.Run(fmt.Sprintf("batch=%d", n), func(b *testing.B) {
			s, err := Open(filepath.Join(b.TempDir(), "r.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			data := make([]byte, 600)
			batch := make([]registry.Write, n)
			i := 0
			for b.Loop() {
				for j := range batch {
					batch[j] = registry.Write{ID: fmt.Sprintf("dev-%06d", (i*n+j)%10000), Data: data}
				}
				if err := s.Apply(batch); err != nil {
					b.Fatal(err)
				}
				i++
			}
			b.ReportMetric(float64(b.N*n)/b.Elapsed().Seconds(), "writes/s")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "commits/s")
		})
	}
}
