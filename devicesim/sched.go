package devicesim

import (
	"container/heap"
	"context"
	"sync"
	"time"
)

// Scheduler is one timer shared by many devices: each device keeps its own
// small heap of pending actions and registers only its earliest deadline
// here, so 100k devices cost one goroutine and one runtime timer, not 100k.
// A Fleet makes one; a Device run on its own makes a private one.
type Scheduler struct {
	mu   sync.Mutex
	h    schedHeap
	seq  uint64
	kick chan struct{}
}

// NewScheduler returns a scheduler. Run must be running for devices that
// use it to make progress.
func NewScheduler() *Scheduler {
	return &Scheduler{kick: make(chan struct{}, 1)}
}

type schedEntry struct {
	at  time.Time
	seq uint64
	d   *Device
}

type schedHeap []schedEntry

func (h schedHeap) Len() int { return len(h) }
func (h schedHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h schedHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *schedHeap) Push(x any)   { *h = append(*h, x.(schedEntry)) }
func (h *schedHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = schedEntry{}
	*h = old[:len(old)-1]
	return e
}

// schedule asks for d.wake at or after at.
func (s *Scheduler) schedule(d *Device, at time.Time) {
	s.mu.Lock()
	first := len(s.h) == 0 || at.Before(s.h[0].at)
	s.seq++
	heap.Push(&s.h, schedEntry{at: at, seq: s.seq, d: d})
	s.mu.Unlock()
	if first {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
}

// Len returns the number of pending registrations (for tests and metrics).
func (s *Scheduler) Len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.h)
}

// Run fires registrations until ctx ends. Waking a device only posts to its
// queue, so a slow device never delays another.
func (s *Scheduler) Run(ctx context.Context) {
	const idle = time.Hour
	t := time.NewTimer(idle)
	defer t.Stop()
	var due []*Device
	for {
		s.mu.Lock()
		now := time.Now()
		for len(s.h) > 0 && !s.h[0].at.After(now) {
			due = append(due, heap.Pop(&s.h).(schedEntry).d)
		}
		wait := idle
		if len(s.h) > 0 {
			wait = s.h[0].at.Sub(now)
		}
		s.mu.Unlock()
		for i, d := range due {
			d.wake()
			due[i] = nil
		}
		due = due[:0]
		t.Stop()
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-s.kick:
		case <-t.C:
		}
	}
}

// timerItem is one pending action of a device.
type timerItem struct {
	at  time.Time
	seq uint64
	fn  func()
}

type timerHeap []timerItem

func (h timerHeap) Len() int { return len(h) }
func (h timerHeap) Less(i, j int) bool {
	if !h[i].at.Equal(h[j].at) {
		return h[i].at.Before(h[j].at)
	}
	return h[i].seq < h[j].seq
}
func (h timerHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *timerHeap) Push(x any)   { *h = append(*h, x.(timerItem)) }
func (h *timerHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = timerItem{}
	*h = old[:len(old)-1]
	if len(*h) == 0 {
		*h = nil // give the array back; most devices are idle most of the time
	}
	return e
}
