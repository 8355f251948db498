package broker

import (
	"slices"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// TestTokenExpiryDisconnects: a device is disconnected when the SAS token it
// connected with expires, as IoT Hub does; a device with a longer token
// stays.
func TestTokenExpiryDisconnects(t *testing.T) {
	e := start(t)
	short, err := connect(t, e, memory, "d1", token("d1", key1, 2*time.Second), true)
	if err != nil {
		t.Fatal(err)
	}
	long, err := connect(t, e, tlsTCP, "d2", token("d2", key1, time.Hour), true)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the expired device's disconnect", func() bool {
		return slices.Contains(e.hub.eventLog(), "disconnected d1")
	})
	if short.IsConnectionOpen() {
		t.Error("the device with the expired token is still connected")
	}
	if !long.IsConnectionOpen() || !e.s.Connected("d2") {
		t.Error("the device with a valid token was disconnected")
	}
	if n := e.s.Stats().TokensExpired; n != 1 {
		t.Errorf("TokensExpired = %d, want 1", n)
	}
	// It may connect again with a fresh token.
	if _, err := connect(t, e, memory, "d1", token("d1", key1, time.Hour), true); err != nil {
		t.Fatalf("reconnect with a fresh token: %v", err)
	}
}

func TestExpiriesQueue(t *testing.T) {
	q := newExpiries()
	t0 := time.Unix(1000, 0)
	a, b, c := &mqtt.Client{ID: "a"}, &mqtt.Client{ID: "b"}, &mqtt.Client{ID: "c"}
	q.add(c, t0.Add(3*time.Second))
	q.add(a, t0.Add(1*time.Second))
	q.add(b, t0.Add(2*time.Second))
	q.add(a, t0.Add(4*time.Second)) // a reconnect's token replaces the old one
	q.remove(b)                     // b disconnected
	ids := func(cls []*mqtt.Client) []string {
		var out []string
		for _, cl := range cls {
			out = append(out, cl.ID)
		}
		return out
	}
	tests := []struct {
		now  time.Duration
		want []string
		next time.Duration // -1: none
	}{
		{0, nil, 3 * time.Second},
		{2 * time.Second, nil, 3 * time.Second},
		{3 * time.Second, []string{"c"}, 4 * time.Second},
		{10 * time.Second, []string{"a"}, -1},
	}
	for _, tt := range tests {
		got, next := q.due(t0.Add(tt.now))
		if !slices.Equal(ids(got), tt.want) {
			t.Errorf("due at +%v = %v, want %v", tt.now, ids(got), tt.want)
		}
		if (tt.next < 0) != next.IsZero() || (tt.next >= 0 && !next.Equal(t0.Add(tt.next))) {
			t.Errorf("next after +%v = %v, want +%v", tt.now, next, tt.next)
		}
	}
	if len(q.byConn) != 0 {
		t.Errorf("%d entries left", len(q.byConn))
	}
}
