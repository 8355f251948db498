package walframe

import (
	"errors"
	"slices"
	"testing"
)

func frames(bodies ...string) []byte {
	var log []byte
	for _, b := range bodies {
		log = Append(log, func(p []byte) []byte { return append(p, b...) })
	}
	return log
}

func TestRead(t *testing.T) {
	whole := frames("one", "", "three")
	flipped := slices.Clone(whole)
	flipped[len(flipped)-1] ^= 1
	for _, tc := range []struct {
		name string
		log  []byte
		want []string
		good int
	}{
		{"empty", nil, nil, 0},
		{"whole", whole, []string{"one", "", "three"}, len(whole)},
		{"torn header", whole[:len(frames("one", ""))+3], []string{"one", ""}, len(frames("one", ""))},
		{"torn body", whole[:len(whole)-1], []string{"one", ""}, len(frames("one", ""))},
		{"bad checksum", flipped, []string{"one", ""}, len(frames("one", ""))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			good, err := Read(tc.log, func(b []byte) error { got = append(got, string(b)); return nil })
			if err != nil || good != tc.good || !slices.Equal(got, tc.want) {
				t.Errorf("Read = %q, %d, %v; want %q, %d", got, good, err, tc.want, tc.good)
			}
		})
	}
}

func TestReadCorrupt(t *testing.T) {
	log := frames("ok", "bad", "never")
	var seen []string
	good, err := Read(log, func(b []byte) error {
		seen = append(seen, string(b))
		if string(b) == "bad" {
			return errors.New("unreadable")
		}
		return nil
	})
	if !errors.Is(err, ErrCorrupt) || good != len(frames("ok")) || !slices.Equal(seen, []string{"ok", "bad"}) {
		t.Errorf("Read = %d, %v after %q", good, err, seen)
	}
}

// FuzzRead: any bytes are a log whose intact prefix Read finds without
// panicking, and appending a frame to that prefix reads back.
func FuzzRead(f *testing.F) {
	f.Add(frames("a", "bc"), []byte("d"))
	f.Add([]byte{1, 0, 0, 0, 0, 0, 0, 0}, []byte{})
	f.Fuzz(func(t *testing.T, log, body []byte) {
		n := 0
		good, err := Read(log, func([]byte) error { n++; return nil })
		if err != nil || good < 0 || good > len(log) {
			t.Fatalf("Read = %d, %v", good, err)
		}
		var last []byte
		m := 0
		log = Append(slices.Clone(log[:good]), func(p []byte) []byte { return append(p, body...) })
		if _, err := Read(log, func(b []byte) error { m++; last = b; return nil }); err != nil || m != n+1 || string(last) != string(body) {
			t.Fatalf("after append: %d frames (want %d), last %q", m, n+1, last)
		}
	})
}
