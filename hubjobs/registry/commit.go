package registry

import (
	"errors"
	"sync"

	"github.com/rs/zerolog"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// committer group-commits writes: while one batch is being made durable,
// new writes queue up, and the next Apply takes them all at once, so N
// concurrent writers pay for about one fsync instead of N. Callbacks run on
// the committer goroutine in queue order once their batch is durable, which
// keeps each device's changes, acknowledgements and desired patches in
// order; the registry makes a change visible in those callbacks.
//
// A failed Apply poisons the committer: that batch and everything queued
// after it fail with the store's error without reaching the store (a later
// write may build on a failed one), new writes are refused, and failed is
// closed so that Registry.Run stops the hub.
type committer struct {
	st    Persistence
	limit int
	log   zerolog.Logger

	mu      sync.Mutex
	queue   []pendingWrite
	closed  bool
	started bool
	err     error // the store's error, once Apply failed

	kick   chan struct{} // capacity 1: "there is work or we are closing"
	done   chan struct{} // closed when the goroutine returns
	failed chan struct{} // closed when Apply first fails
}

// pendingWrite is a queued write and its callback. A barrier (no write)
// only runs its callback in order with the writes around it.
type pendingWrite struct {
	w       Write
	barrier bool
	after   func(error)
}

// errStoreFailed is the cause of the writes refused after the store failed.
var errStoreFailed = errors.New("the registry store failed earlier")

// newCommitter builds a committer; start runs its goroutine, close stops it
// and waits.
func newCommitter(st Persistence, limit int, log zerolog.Logger) *committer {
	return &committer{st: st, limit: limit, log: log, kick: make(chan struct{}, 1), done: make(chan struct{}), failed: make(chan struct{})}
}

// start runs the committer goroutine; it returns when close is called.
func (c *committer) start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.started || c.closed {
		return
	}
	c.started = true
	go c.run()
}

// add queues a write. It fails with ThrottlingException when the queue is
// full (over the limit the hub answers 429), with ServiceUnavailable after
// close and with ServerError once the store has failed.
func (c *committer) add(w Write, after func(error)) error {
	return c.enqueue(pendingWrite{w: w, after: after})
}

// barrier queues after to run once every write queued before it is durable
// (with nil), or failed (with the store's error).
func (c *committer) barrier(after func(error)) error {
	return c.enqueue(pendingWrite{barrier: true, after: after})
}

func (c *committer) enqueue(p pendingWrite) error {
	c.mu.Lock()
	switch {
	case c.err != nil:
		err := c.err
		c.mu.Unlock()
		return &iothub.Error{Code: iothub.CodeServerError, Message: "The registry store failed; the hub is stopping.", Err: errors.Join(errStoreFailed, err)}
	case c.closed:
		c.mu.Unlock()
		return unavailable()
	case len(c.queue) >= c.limit:
		c.mu.Unlock()
		return iothub.Errorf(iothub.CodeThrottlingException, "Too many writes are waiting for the store; retry later.")
	}
	c.queue = append(c.queue, p)
	c.mu.Unlock()
	c.kickSelf()
	return nil
}

// failure returns the store's error, if Apply failed.
func (c *committer) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

func (c *committer) run() {
	defer close(c.done)
	var batch []Write
	for range c.kick {
		c.mu.Lock()
		pending := c.queue
		c.queue = nil
		closed, failed := c.closed, c.err
		c.mu.Unlock()
		if len(pending) > 0 {
			batch = c.commit(pending, batch, failed)
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

// commit applies one batch (unless the store failed before) and runs its
// callbacks in order. It returns batch emptied, for reuse.
func (c *committer) commit(pending []pendingWrite, batch []Write, failed error) []Write {
	batch = batch[:0]
	for _, p := range pending {
		if !p.barrier {
			batch = append(batch, p.w)
		}
	}
	err := failed
	if err == nil && len(batch) > 0 {
		if err = c.st.Apply(batch); err != nil {
			c.log.Error().Err(err).Int("writes", len(batch)).Msg("registry store write failed; the registry stops")
			c.mu.Lock()
			c.err = err
			c.mu.Unlock()
			close(c.failed)
		}
	}
	for _, p := range pending {
		p.after(err)
	}
	clear(batch) // drop references to record bytes
	return batch[:0]
}

func (c *committer) kickSelf() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// close refuses new writes, makes everything queued durable (or fails it,
// after a store failure) and waits for the goroutine. Without start, it
// commits what is queued on the caller's goroutine.
func (c *committer) close() {
	c.mu.Lock()
	c.closed = true
	started := c.started
	c.mu.Unlock()
	if !started {
		c.kickSelf()
		c.run()
		return
	}
	c.kickSelf()
	<-c.done
}
