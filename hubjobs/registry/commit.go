package registry

import (
	"sync"

	"github.com/rs/zerolog"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// committer group-commits writes: while one batch is being made durable,
// new writes queue up, and the next Apply takes them all at once, so N
// concurrent writers pay for about one fsync instead of N. Callbacks run on
// the committer goroutine in queue order once their batch is durable, which
// keeps each device's acknowledgements and desired patches in order.
type committer struct {
	st    Persistence
	limit int
	log   zerolog.Logger

	mu     sync.Mutex
	queue  []pendingWrite
	closed bool

	kick chan struct{} // capacity 1: "there is work or we are closing"
	done chan struct{} // closed when the goroutine returns
}

type pendingWrite struct {
	w     Write
	after func(error)
}

// newCommitter starts the committer goroutine; close stops it and waits.
func newCommitter(st Persistence, limit int, log zerolog.Logger) *committer {
	c := &committer{st: st, limit: limit, log: log, kick: make(chan struct{}, 1), done: make(chan struct{})}
	go c.run()
	return c
}

// add queues a write. It fails with ThrottlingException when the queue is
// full (docs/iothub.md §7: over the limit the hub answers 429) and with
// ServiceUnavailable after close.
func (c *committer) add(w Write, after func(error)) error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return unavailable()
	}
	if len(c.queue) >= c.limit {
		c.mu.Unlock()
		return iothub.Errorf(iothub.CodeThrottlingException, "Too many writes are waiting for the store; retry later.")
	}
	c.queue = append(c.queue, pendingWrite{w, after})
	c.mu.Unlock()
	select {
	case c.kick <- struct{}{}:
	default:
	}
	return nil
}

func (c *committer) run() {
	defer close(c.done)
	var batch []Write
	for range c.kick {
		c.mu.Lock()
		pending := c.queue
		c.queue = nil
		closed := c.closed
		c.mu.Unlock()
		if len(pending) > 0 {
			batch = batch[:0]
			for _, p := range pending {
				batch = append(batch, p.w)
			}
			err := c.st.Apply(batch)
			if err != nil {
				c.log.Error().Err(err).Int("writes", len(batch)).Msg("registry store write failed")
			}
			for _, p := range pending {
				p.after(err)
			}
			clear(batch) // drop references to record bytes
		}
		if closed {
			c.mu.Lock()
			empty := len(c.queue) == 0
			c.mu.Unlock()
			if empty {
				return
			}
			c.kickSelf()
		}
	}
}

func (c *committer) kickSelf() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// close makes everything queued durable, refuses new writes, and waits for
// the goroutine.
func (c *committer) close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.kickSelf()
	<-c.done
}
