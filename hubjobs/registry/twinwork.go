package registry

import (
	"hash/maphash"
	"runtime"
	"sync"
)

// twinWorkers run the device side's twin requests (GET and reported PATCH)
// on a few goroutines of the registry's own instead of on the devices'
// connection goroutines. Decoding and encoding twin JSON takes tens of
// kilobytes of stack; run from the broker's hook, below mochi's deep frames,
// it doubled the stack of every connection goroutine that ever sent a
// reported patch, which is a copy and fresh pages per device and, with stack
// shrinking off (as fleetsim runs), memory that stays (see
// docs/performance.md). Each
// device's requests go to one worker, chosen by its id, so they are handled
// in the order the device sent them.
type twinWorkers struct {
	seed maphash.Seed

	// mu is held shared while a request is queued, so that close, which
	// takes it exclusively, never closes a queue under a sender.
	mu      sync.RWMutex
	started bool
	closed  bool
	queues  []chan twinRequest
	wg      sync.WaitGroup
}

// twinRequest is one device publish on $iothub/twin/GET or
// $iothub/twin/PATCH/properties/reported.
type twinRequest struct {
	id, rid string
	payload []byte // nil for a GET
	get     bool
}

// twinQueueLen bounds each worker's queue; a device whose worker is that far
// behind waits on its connection goroutine, which is the back-pressure a busy
// hub puts on its devices.
const twinQueueLen = 1024

// start runs one worker per queue; each calls handle for its requests in
// order until close. Before start and after close, queue refuses requests.
func (w *twinWorkers) start(handle func(twinRequest)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.started || w.closed {
		return
	}
	w.started = true
	w.seed = maphash.MakeSeed()
	w.queues = make([]chan twinRequest, 2*runtime.GOMAXPROCS(0))
	for i := range w.queues {
		q := make(chan twinRequest, twinQueueLen)
		w.queues[i] = q
		w.wg.Go(func() {
			for req := range q {
				handle(req)
			}
		})
	}
}

// queue hands req to its device's worker. It reports false, without
// queueing, before start and once close has begun; the caller then handles
// req itself.
func (w *twinWorkers) queue(req twinRequest) bool {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if !w.started || w.closed {
		return false
	}
	w.queues[maphash.String(w.seed, req.id)%uint64(len(w.queues))] <- req
	return true
}

// close lets the workers finish what is queued and waits for them.
func (w *twinWorkers) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		for _, q := range w.queues {
			close(q)
		}
	}
	w.mu.Unlock()
	w.wg.Wait()
}
