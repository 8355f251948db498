package jobs

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// task is one device of one job, handed from the job's dispatcher to a
// worker.
type task struct {
	j *job
	i int
}

// outcome is what a worker learned about one device job. drop means the call
// was cut short by the engine's shutdown: the device goes back to pending and
// nothing is stored, so it runs again after a restart.
type outcome struct {
	j    *job
	i    int
	end  int64
	out  *devResult
	fail bool // the device job failed (else it completed)
	drop bool
}

// errExpired is the cause of a job's call context when the job reaches its
// maxExecutionTimeInSeconds.
var errExpired = errors.New("the job reached its maxExecutionTimeInSeconds")

// resultBatch bounds how many outcomes one store transaction commits.
const resultBatch = 1024

// schedule starts each job at its start time, in the group g, until ctx ends.
func (e *Engine) schedule(ctx context.Context, g *errgroup.Group) error {
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		now := e.now()
		var due []*job
		wait := time.Duration(-1)
		e.mu.Lock()
		for e.starts.Len() > 0 {
			j := e.starts[0]
			if d := j.startAt.Sub(now); d > 0 {
				wait = d
				break
			}
			heap.Pop(&e.starts)
			due = append(due, j)
		}
		e.mu.Unlock()
		for _, j := range due {
			g.Go(func() error { return e.runJob(ctx, j) })
		}
		if wait < 0 {
			wait = time.Hour
		}
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(wait)
		select {
		case <-ctx.Done():
			return nil
		case <-e.wake:
		case <-t.C:
		}
	}
}

// runJob runs one job from its start to its end: it selects the devices (or
// resumes with the stored set), dispatches them to the workers under the
// pacing profile, and ends the job when every device is done, when it
// expires, or when it is cancelled. It returns nil also when ctx ends; only a
// store failure is an error, and it stops the engine.
func (e *Engine) runJob(ctx context.Context, j *job) error {
	var indexing sync.WaitGroup
	defer indexing.Wait()
	if err := e.beginJob(ctx, j, &indexing); err != nil || j.isTerminal() {
		return err
	}
	j.mu.Lock()
	deadline := j.rec.Started.Add(time.Duration(j.rec.MaxExecutionTimeInSeconds) * time.Second)
	j.mu.Unlock()
	callCtx, cancelCalls := context.WithCancelCause(ctx)
	defer cancelCalls(nil)
	j.mu.Lock()
	j.callCtx = callCtx
	j.mu.Unlock()

	expiry := time.NewTimer(max(deadline.Sub(e.now()), 0))
	defer expiry.Stop()

	// Dispatch the devices that are not done, in id order.
	j.mu.Lock()
	n := len(j.devices)
	j.mu.Unlock()
dispatch:
	for i := 0; i < n; i++ {
		j.mu.Lock()
		pending := j.recs[i].status == devPending
		j.mu.Unlock()
		if !pending {
			continue
		}
		if err := e.pacer.wait(ctx); err != nil {
			return nil
		}
		select {
		case e.work <- task{j, i}:
		case <-j.stop:
			break dispatch
		case <-expiry.C:
			return e.expire(ctx, j, cancelCalls)
		case <-ctx.Done():
			return nil
		}
	}
	// Wait until every device is done, the job expires or is cancelled.
	for {
		j.mu.Lock()
		left, cancelled := j.remainingLocked(), j.rec.Cancelled
		j.mu.Unlock()
		if cancelled {
			return e.endCancel(ctx, j)
		}
		if left == 0 {
			return e.finish(j)
		}
		select {
		case <-j.changed:
		case <-j.stop:
		case <-expiry.C:
			return e.expire(ctx, j, cancelCalls)
		case <-ctx.Done():
			return nil
		}
	}
}

func (j *job) isTerminal() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.rec.Status.Terminal()
}

// endCancel ends a cancelled job once its calls in flight are recorded: the
// job stays running (Cancel marked it cancelled and stopped its dispatch)
// until the writer has applied the last of them, so it never reads terminal
// with devices running. Its maximum execution time no longer applies: the
// calls are bounded by their own response timeouts. When ctx ends first (the
// engine stops), the job stays as it is; after a restart it ends at once.
func (e *Engine) endCancel(ctx context.Context, j *job) error {
	for {
		j.mu.Lock()
		inflight := j.inflight
		j.mu.Unlock()
		if inflight == 0 {
			break
		}
		select {
		case <-j.changed:
		case <-ctx.Done():
			return nil
		}
	}
	e.storeMu.Lock()
	defer e.storeMu.Unlock()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.rec.Status.Terminal() {
		return nil // Cancel ended it: nothing was in flight
	}
	now := e.now()
	rec := j.rec
	rec.Status, rec.EndTime, rec.StatusMessage = StatusCancelled, &now, msgCancelled
	if err := e.store.Write(Write{Jobs: []JobRecord{rec}}); err != nil {
		e.fail(fmt.Errorf("store the cancellation of job %s: %w", j.id, err))
		return err
	}
	j.rec = rec
	// Devices whose result could not be stored (a store failure) are, as
	// after a restart, canceled.
	for i := range j.recs {
		if !j.recs[i].status.done() {
			j.fillLocked(i, now.UnixNano())
		}
	}
	e.endLocked(j)
	st := j.rec.DeviceJobStatistics
	e.log.Info().Str("job", j.id).Int("succeeded", st.SucceededCount).Int("failed", st.FailedCount).Msg("job cancelled")
	return nil
}

// beginJob moves a job to running. A job that never ran selects its devices
// and stores the set together with the running status; a resumed job keeps
// its stored set. A job whose condition cannot be evaluated fails.
func (e *Engine) beginJob(ctx context.Context, j *job, indexing *sync.WaitGroup) error {
	j.mu.Lock()
	resumed := j.devices != nil
	terminal := j.rec.Status.Terminal()
	j.mu.Unlock()
	if terminal {
		return nil
	}
	if resumed {
		e.storeMu.Lock()
		defer e.storeMu.Unlock()
		j.mu.Lock()
		defer j.mu.Unlock()
		if j.rec.Status != StatusRunning {
			j.rec.Status = StatusRunning
		}
		e.log.Info().Str("job", j.id).Int("left", j.remainingLocked()).Msg("job resumed")
		return nil
	}
	var ids []string
	var selErr error
	if e.cfg.Devices == nil {
		selErr = errors.New("this hub has no device registry")
	} else {
		ids, selErr = e.cfg.Devices.SelectDeviceIDs(ctx, j.plan.query)
	}
	if selErr != nil && ctx.Err() != nil {
		return nil // shutting down: the job starts again after a restart
	}
	slices.Sort(ids)
	ids = slices.Compact(ids)
	now := e.now()

	e.storeMu.Lock()
	defer e.storeMu.Unlock()
	j.mu.Lock()
	if j.rec.Status.Terminal() { // cancelled while selecting
		j.mu.Unlock()
		return nil
	}
	rec := j.rec
	j.mu.Unlock()
	w := Write{}
	if selErr != nil {
		rec.Status, rec.EndTime = StatusFailed, &now
		why := selErr.Error()
		if ie := iothub.AsError(selErr); ie.Code != iothub.CodeServerError {
			why = ie.Message
		}
		rec.FailureReason = "the queryCondition could not be evaluated: " + why
		rec.Started, rec.Selected = now, now
	} else {
		rec.Status, rec.Started, rec.Selected = StatusRunning, now, now
		rec.DeviceJobStatistics = Statistics{DeviceCount: len(ids), PendingCount: len(ids)}
		if ids == nil {
			ids = []string{}
		}
		w.DeviceSets = []DeviceSet{{JobID: j.id, Devices: ids}}
	}
	w.Jobs = []JobRecord{rec}
	if err := e.store.Write(w); err != nil {
		e.fail(fmt.Errorf("store the start of job %s: %w", j.id, err))
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.rec = rec
	if selErr != nil {
		e.endLocked(j)
		e.log.Warn().Str("job", j.id).Str("reason", rec.FailureReason).Msg("job failed")
		return nil
	}
	j.devices = ids
	j.recs = make([]devRec, len(ids))
	// The rows' index entries (deviceId, jobId, jobType) never change, so
	// they are added while the devices are dispatched rather than before the
	// first device. Queries wait for it (see Query).
	keys := j.rowKeys()
	e.rowsIndexing.add()
	indexing.Go(func() {
		defer e.rowsIndexing.done()
		e.index.AddKeys(keys, j.indexDoc)
	})
	e.log.Info().Str("job", j.id).Int("devices", len(ids)).Msg("job started")
	return nil
}

// endLocked marks j stopped and no longer active. The caller holds storeMu
// and j.mu.
func (e *Engine) endLocked(j *job) {
	if !j.stopped {
		j.stopped = true
		close(j.stop)
	}
	e.active--
}

// finish ends a job whose every device is done: completed, or failed when it
// had expired work.
func (e *Engine) finish(j *job) error {
	e.storeMu.Lock()
	defer e.storeMu.Unlock()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.rec.Status.Terminal() {
		return nil
	}
	now := e.now()
	rec := j.rec
	rec.Status, rec.EndTime = StatusCompleted, &now
	if err := e.store.Write(Write{Jobs: []JobRecord{rec}}); err != nil {
		e.fail(fmt.Errorf("store the end of job %s: %w", j.id, err))
		return err
	}
	j.rec = rec
	e.endLocked(j)
	st := rec.DeviceJobStatistics
	e.log.Info().Str("job", j.id).Int("succeeded", st.SucceededCount).Int("failed", st.FailedCount).Msg("job completed")
	return nil
}

// expire ends a job that reached maxExecutionTimeInSeconds: calls in flight
// are cancelled (and fail with JobExpired), devices not reached fail with
// JobExpired, and the job ends failed once the cut calls are recorded. A job
// cancelled before does not expire: it ends as endCancel says.
func (e *Engine) expire(ctx context.Context, j *job, cancelCalls context.CancelCauseFunc) error {
	j.mu.Lock()
	if j.rec.Cancelled {
		// Cancelled first: the calls in flight finish.
		j.mu.Unlock()
		return e.endCancel(ctx, j)
	}
	j.expiredWork = true
	j.mu.Unlock()
	cancelCalls(errExpired)
	// Let the calls in flight return and their outcomes be applied.
	for {
		j.mu.Lock()
		inflight := j.inflight
		j.mu.Unlock()
		if inflight == 0 {
			break
		}
		<-j.changed
	}
	e.storeMu.Lock()
	defer e.storeMu.Unlock()
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.rec.Status.Terminal() {
		return nil
	}
	now := e.now()
	rec := j.rec
	rec.Status, rec.EndTime, rec.Expired = StatusFailed, &now, true
	rec.FailureReason = fmt.Sprintf("The job exceeded its maxExecutionTimeInSeconds (%d s)", rec.MaxExecutionTimeInSeconds)
	if err := e.store.Write(Write{Jobs: []JobRecord{rec}}); err != nil {
		e.fail(fmt.Errorf("store the expiry of job %s: %w", j.id, err))
		return err
	}
	j.rec = rec
	for i := range j.recs {
		if !j.recs[i].status.done() {
			j.recs[i].end = now.UnixNano()
			j.recs[i].out = &devResult{err: j.expiredError()}
			j.setStatusLocked(i, devFailed)
		}
	}
	e.endLocked(j)
	e.log.Warn().Str("job", j.id).Msg("job expired")
	return nil
}

// worker runs device operations until ctx ends.
func (e *Engine) worker(ctx context.Context) error {
	for {
		select {
		case <-ctx.Done():
			return nil
		case t := <-e.work:
			e.runDevice(t)
		}
	}
}

// runDevice runs one device job and hands its outcome to the writer.
func (e *Engine) runDevice(t task) {
	j := t.j
	j.mu.Lock()
	if j.stopped || j.expiredWork || j.recs[t.i].status != devPending {
		j.mu.Unlock()
		return
	}
	j.recs[t.i].start = e.now().UnixNano()
	j.setStatusLocked(t.i, devRunning)
	j.inflight++
	ctx, id, p := j.callCtx, j.devices[t.i], j.plan
	j.mu.Unlock()

	o := outcome{j: j, i: t.i}
	var err error
	switch j.typ {
	case TypeDeviceMethod:
		var res iothub.MethodResult
		res, err = e.cfg.Methods.InvokeMethod(ctx, id, p.method)
		if err == nil {
			o.out = &devResult{resp: &res}
		}
	case TypeUpdateTwin:
		err = e.cfg.Twins.ForceUpdateTwin(ctx, id, p.patch)
	}
	o.end = e.now().UnixNano()
	if err != nil {
		switch cause := context.Cause(ctx); {
		case ctx.Err() != nil && errors.Is(cause, errExpired):
			j.mu.Lock()
			o.fail, o.out = true, &devResult{err: j.expiredError()}
			j.mu.Unlock()
		case ctx.Err() != nil:
			o.drop = true
		default:
			ie := iothub.AsError(err)
			o.fail, o.out = true, &devResult{err: &DeviceJobError{Code: ie.Code.Name, Description: ie.Message}}
		}
	}
	e.results <- o
}

// writeLoop commits outcomes in batches until results is closed: a batch's
// device results go to the store in one transaction, then into memory, so a
// device counts as done only once its result is durable. After a store
// failure it stops the engine and drops what it receives.
func (e *Engine) writeLoop() error {
	var failed error
	batch := make([]outcome, 0, resultBatch)
	for o := range e.results {
		batch = append(batch[:0], o)
	fill:
		for len(batch) < resultBatch {
			select {
			case o, ok := <-e.results:
				if !ok {
					break fill
				}
				batch = append(batch, o)
			default:
				break fill
			}
		}
		if err := e.commit(batch, failed != nil); err != nil && failed == nil {
			failed = err
			e.fail(err)
		}
	}
	return failed
}

// commit stores and applies one batch of outcomes. With skipStore it only
// releases the devices (after a store failure).
func (e *Engine) commit(batch []outcome, skipStore bool) error {
	e.storeMu.Lock()
	defer e.storeMu.Unlock()
	var w Write
	for _, o := range batch {
		if o.drop || skipStore {
			continue
		}
		o.j.mu.Lock()
		res := o.j.resultLocked(o.i)
		o.j.mu.Unlock()
		res.EndTime = time.Unix(0, o.end).UTC()
		res.Status = StatusCompleted
		if o.fail {
			res.Status = StatusFailed
		}
		if o.out != nil {
			res.Response, res.Error = o.out.resp, o.out.err
		}
		w.Results = append(w.Results, res)
	}
	var err error
	if len(w.Results) > 0 {
		if err = e.store.Write(w); err != nil {
			err = fmt.Errorf("store %d device results: %w", len(w.Results), err)
		}
	}
	for _, o := range batch {
		j := o.j
		j.mu.Lock()
		j.inflight--
		switch {
		case o.drop || skipStore || err != nil:
			j.recs[o.i].start = 0
			j.setStatusLocked(o.i, devPending)
		default:
			j.recs[o.i].end, j.recs[o.i].out = o.end, o.out
			s := devCompleted
			if o.fail {
				s = devFailed
			}
			j.setStatusLocked(o.i, s)
		}
		j.mu.Unlock()
		j.poke()
	}
	return err
}

// pruneEvery is how often pruneLoop looks for jobs past their retention.
const pruneEvery = time.Hour

// pruneLoop removes terminal jobs whose end is older than Retention, at
// start and then every pruneEvery, until ctx ends.
func (e *Engine) pruneLoop(ctx context.Context) error {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		if err := e.prune(); err != nil {
			e.fail(err)
			return err
		}
		t.Reset(min(pruneEvery, e.cfg.Retention))
	}
}

// prune removes the jobs that ended more than Retention ago.
func (e *Engine) prune() error {
	cutoff := e.now().Add(-e.cfg.Retention)
	e.storeMu.Lock()
	defer e.storeMu.Unlock()
	e.mu.RLock()
	var old []*job
	for _, j := range e.order {
		j.mu.Lock()
		if j.rec.Status.Terminal() && j.rec.EndTime != nil && j.rec.EndTime.Before(cutoff) && j.inflight == 0 {
			old = append(old, j)
		}
		j.mu.Unlock()
	}
	e.mu.RUnlock()
	if len(old) == 0 {
		return nil
	}
	ids := make([]string, len(old))
	for i, j := range old {
		ids[i] = j.id
	}
	if err := e.store.Delete(ids); err != nil {
		return fmt.Errorf("prune %d jobs: %w", len(ids), err)
	}
	e.mu.Lock()
	for _, j := range old {
		delete(e.jobs, j.id)
	}
	e.order = slices.DeleteFunc(e.order, func(j *job) bool { return e.jobs[j.id] != j })
	e.mu.Unlock()
	e.rowsIndexing.wait()
	for _, j := range old {
		j.mu.Lock()
		for _, key := range j.rowKeys() {
			e.index.Remove(key, nil) // the index knows what it holds for key
		}
		j.mu.Unlock()
	}
	e.log.Info().Int("jobs", len(ids)).Msg("pruned job history")
	return nil
}
