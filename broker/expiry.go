package broker

import (
	"container/heap"
	"context"
	"errors"
	"sync"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// errTokenExpired closes a connection whose SAS token has expired: IoT Hub
// disconnects a device when the token it connected with expires.
var errTokenExpired = errors.New("SAS token expired")

// expiries is when each live connection's SAS token expires: one heap and
// one timer for all of them, run by the server's Run (runExpiries), rather
// than a timer per connection.
type expiries struct {
	mu      sync.Mutex
	heap    expiryHeap
	byConn  map[*mqtt.Client]*expiry
	earlier chan struct{} // capacity 1: an entry now comes first
}

type expiry struct {
	at    time.Time
	cl    *mqtt.Client
	index int
}

func newExpiries() *expiries {
	return &expiries{byConn: map[*mqtt.Client]*expiry{}, earlier: make(chan struct{}, 1)}
}

// add schedules cl to be closed at at.
func (q *expiries) add(cl *mqtt.Client, at time.Time) {
	q.mu.Lock()
	if old, ok := q.byConn[cl]; ok {
		heap.Remove(&q.heap, old.index)
	}
	e := &expiry{at: at, cl: cl}
	q.byConn[cl] = e
	heap.Push(&q.heap, e)
	first := q.heap[0] == e
	q.mu.Unlock()
	if first {
		select {
		case q.earlier <- struct{}{}:
		default:
		}
	}
}

// remove forgets cl (its connection ended).
func (q *expiries) remove(cl *mqtt.Client) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if e, ok := q.byConn[cl]; ok {
		heap.Remove(&q.heap, e.index)
		delete(q.byConn, cl)
	}
}

// due removes and returns the connections whose tokens expire by now, and
// the next expiry after them (zero when there is none).
func (q *expiries) due(now time.Time) ([]*mqtt.Client, time.Time) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []*mqtt.Client
	for len(q.heap) > 0 && !q.heap[0].at.After(now) {
		e := heap.Pop(&q.heap).(*expiry)
		delete(q.byConn, e.cl)
		out = append(out, e.cl)
	}
	if len(q.heap) == 0 {
		return out, time.Time{}
	}
	return out, q.heap[0].at
}

// idleWait is how long runExpiries sleeps with nothing scheduled; an add
// wakes it earlier.
const idleWait = time.Hour

// runExpiries closes each connection when its token expires, until ctx ends.
func (s *Server) runExpiries(ctx context.Context) {
	t := time.NewTimer(idleWait)
	defer t.Stop()
	for {
		now := time.Now()
		expired, next := s.expiries.due(now)
		for _, cl := range expired {
			if !cl.Closed() {
				s.expired.Add(1)
				s.log.Debug().Str("device", cl.ID).Msg("SAS token expired; closing the connection")
				cl.Stop(errTokenExpired)
			}
		}
		wait := idleWait
		if !next.IsZero() {
			wait = max(next.Sub(now), 0)
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-s.expiries.earlier:
		}
	}
}

// expiryHeap orders entries by expiry.
type expiryHeap []*expiry

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h expiryHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *expiryHeap) Push(x any) {
	e := x.(*expiry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *expiryHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	return e
}
