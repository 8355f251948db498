package devicesim

import "hash/fnv"

// hashID is FNV-1a over the device id: stable across runs and machines.
func hashID(id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return h.Sum64()
}

// splitmix is one round of SplitMix64, used to derive independent values
// from one hash.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// spreadFraction is a deterministic fraction in [0, 1) for id and seed,
// used to stagger start times: the same seed reproduces the same run.
func spreadFraction(id string, seed int64) float64 {
	return float64(splitmix(splitmix(hashID(id)^uint64(seed)))>>11) / (1 << 53)
}

// ShardOf returns the shard (0..n-1) that owns id: hash(id) mod n. The same
// id always lands in the same shard, on any machine.
func ShardOf(id string, n int) int {
	if n <= 1 {
		return 0
	}
	return int(hashID(id) % uint64(n))
}

// Shard returns the ids of shard i of n, in their original order. The n
// shards are disjoint and together hold every id, so n processes started
// with --shard 0/n … n-1/n simulate the fleet exactly once.
func Shard(ids []string, i, n int) []string {
	if n <= 1 {
		return ids
	}
	if i < 0 || i >= n {
		return nil
	}
	out := make([]string, 0, len(ids)/n+1)
	for _, id := range ids {
		if ShardOf(id, n) == i {
			out = append(out, id)
		}
	}
	return out
}
