package devicesim

import (
	"fmt"
	"testing"
)

func TestShardDisjointAndComplete(t *testing.T) {
	ids := make([]string, 10000)
	for i := range ids {
		ids[i] = fmt.Sprintf("device-%05d", i)
	}
	for _, n := range []int{1, 2, 7, 16} {
		seen := map[string]int{}
		for i := range n {
			part := Shard(ids, i, n)
			if n > 1 && (len(part) < len(ids)/n*8/10 || len(part) > len(ids)/n*12/10) {
				t.Errorf("n=%d shard %d has %d ids: unbalanced", n, i, len(part))
			}
			for _, id := range part {
				if _, dup := seen[id]; dup {
					t.Fatalf("n=%d: %s in shards %d and %d", n, id, seen[id], i)
				}
				seen[id] = i
				if ShardOf(id, n) != i {
					t.Errorf("ShardOf(%s, %d) = %d, Shard put it in %d", id, n, ShardOf(id, n), i)
				}
			}
		}
		if len(seen) != len(ids) {
			t.Errorf("n=%d: shards hold %d of %d ids", n, len(seen), len(ids))
		}
	}
	if Shard(ids, 3, 3) != nil || Shard(ids, -1, 3) != nil {
		t.Error("out-of-range shard should be empty")
	}
}

func TestShardStable(t *testing.T) {
	// The shard of an id must not change between releases, or a sharded
	// deployment would simulate some devices twice: ShardOf is FNV-1a mod n.
	if hashID("a") != 0xaf63dc4c8601ec8c {
		t.Errorf("hashID(a) = %#x, want FNV-1a", hashID("a"))
	}
	if got := ShardOf("a", 7); got != int(uint64(0xaf63dc4c8601ec8c)%7) {
		t.Errorf("ShardOf(a, 7) = %d", got)
	}
}
