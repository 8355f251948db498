package jobs

import (
	"cmp"
	"container/heap"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/errgroup"

	"github.com/fleetsim/fleetsim/hubjobs/query"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// Defaults of Config.
const (
	DefaultMaxInFlight = 1000
	DefaultRetention   = 30 * 24 * time.Hour // "Job history is retained up to 30 days" (docs/iothub.md §5.4)
)

// Config configures an Engine.
type Config struct {
	// Store persists jobs; nil keeps them only in the engine's memory (a
	// throwaway run: nothing survives the process).
	Store Store
	// Methods runs the calls of method jobs.
	Methods MethodInvoker
	// Twins applies the patches of twin jobs.
	Twins TwinPatcher
	// Devices evaluates queryConditions when jobs start.
	Devices DeviceSelector
	// Pacing is the hub's pacing profile (zero value: Unlimited).
	Pacing Profile
	// MaxInFlight bounds the device operations in flight across all jobs:
	// the size of the worker pool (default 1000).
	MaxInFlight int
	// Retention is how long terminal jobs are kept (default 30 days).
	Retention time.Duration
	// Logger receives the engine's logs (the zero value logs nothing).
	Logger zerolog.Logger
}

// Engine runs Jobs v2 (docs/iothub.md §5). Create, Get, Cancel, List,
// Query and Rows are safe for concurrent use and work before Run starts;
// jobs execute only while Run runs.
type Engine struct {
	cfg   Config
	store Store
	log   zerolog.Logger
	pacer *pacer
	index *query.Index

	work    chan task    // dispatchers → workers (unbuffered)
	results chan outcome // workers → the writer

	// storeMu serialises store writes with the memory changes they record
	// (see the lock order in the package doc). It also guards active.
	storeMu sync.Mutex
	active  int // jobs not terminal, for Profile.MaxConcurrentJobs

	// rowsIndexing counts the started jobs whose rows are still being
	// added to index.
	rowsIndexing pending

	mu      sync.RWMutex
	jobs    map[string]*job
	order   []*job    // by key(): devices.jobs and List order
	starts  startHeap // jobs waiting for their start time
	wake    chan struct{}
	started bool
	fatal   context.CancelCauseFunc // ends Run on a store failure
}

// NewEngine builds an engine and loads the jobs persisted in cfg.Store:
// scheduled jobs keep their start times, running jobs resume when Run
// starts, with the devices that have no stored result.
func NewEngine(cfg Config) (*Engine, error) {
	if cfg.Pacing.Name == "" {
		cfg.Pacing = Unlimited
	}
	if cfg.MaxInFlight <= 0 {
		cfg.MaxInFlight = DefaultMaxInFlight
	}
	if cfg.Retention <= 0 {
		cfg.Retention = DefaultRetention
	}
	e := &Engine{
		cfg:     cfg,
		store:   cfg.Store,
		log:     cfg.Logger,
		pacer:   newPacer(cfg.Pacing),
		index:   query.NewIndexOn(jobIndexNames...),
		work:    make(chan task),
		results: make(chan outcome, 4096),
		jobs:    map[string]*job{},
		wake:    make(chan struct{}, 1),
	}
	if e.store == nil {
		e.store = nopStore{}
	}
	if err := e.store.Load(e.loadJob); err != nil {
		return nil, fmt.Errorf("load jobs: %w", err)
	}
	return e, nil
}

func (e *Engine) now() time.Time { return time.Now().UTC() }

// loadJob rebuilds one stored job.
func (e *Engine) loadJob(sj StoredJob) error {
	rec := sj.Record
	p, err := compile(rec.Job)
	j := newJob(rec, p)
	if err != nil && !rec.Status.Terminal() {
		// Valid when created, not any more (the rules changed): fail it.
		end := e.now()
		j.rec.Status, j.rec.FailureReason, j.rec.EndTime = StatusFailed, "the job cannot be resumed: "+err.Error(), &end
	}
	if sj.Devices != nil {
		j.devices = slices.Clone(sj.Devices)
		slices.Sort(j.devices)
		j.devices = slices.Compact(j.devices)
		j.recs = make([]devRec, len(j.devices))
		for _, r := range sj.Results {
			i, found := slices.BinarySearch(j.devices, r.DeviceID)
			s, ok := devStatusOf(r.Status)
			if !found || !ok || !s.done() {
				continue
			}
			dr := devRec{status: s, start: unixNanos(r.StartTime), end: unixNanos(r.EndTime)}
			if r.Response != nil || r.Error != nil {
				dr.out = &devResult{resp: r.Response, err: r.Error}
			}
			j.recs[i] = dr
		}
		// A terminal job's devices without a result get its outcome; so do
		// those of a job cancelled while calls were in flight: their
		// answers were lost with the process, and no device is called
		// again after a cancel. The resumed job then ends cancelled.
		end := unixNanos(j.endTime())
		if end == 0 {
			end = e.now().UnixNano()
		}
		st := Statistics{DeviceCount: len(j.devices)}
		for i := range j.recs {
			if !j.recs[i].status.done() && (j.rec.Status.Terminal() || j.rec.Cancelled) {
				j.fillLocked(i, end)
			}
			switch j.recs[i].status {
			case devPending:
				st.PendingCount++
			case devCompleted:
				st.SucceededCount++
			default:
				st.FailedCount++
			}
		}
		j.rec.DeviceJobStatistics = st
		e.index.AddKeys(j.rowKeys(), j.indexDoc)
	}
	if j.rec.Status.Terminal() || j.rec.Cancelled {
		j.stopped = true
		close(j.stop)
	}
	if !j.rec.Status.Terminal() {
		e.active++
		heap.Push(&e.starts, j)
	}
	e.insertLocked(j)
	return nil
}

// fillLocked gives device i of a terminal (or cancelled) job the outcome of
// devices that were never done, ending at end: canceled in a cancelled job,
// failed in an expired one.
func (j *job) fillLocked(i int, end int64) {
	r := &j.recs[i]
	r.end = end
	if j.rec.Expired {
		r.status, r.out = devFailed, &devResult{err: j.expiredError()}
	} else {
		r.status, r.out = devCanceled, &devResult{err: j.cancelError()}
	}
}

func (j *job) endTime() time.Time {
	if j.rec.EndTime != nil {
		return *j.rec.EndTime
	}
	return time.Time{}
}

// expiredError and cancelError build the shared error once; the caller holds j.mu.
func (j *job) expiredError() *DeviceJobError {
	if j.expiredErr == nil {
		j.expiredErr = &DeviceJobError{Code: ErrorCodeJobExpired, Description: fmt.Sprintf(
			"The job exceeded its maxExecutionTimeInSeconds (%d s) before this device was done", j.rec.MaxExecutionTimeInSeconds)}
	}
	return j.expiredErr
}

func (j *job) cancelError() *DeviceJobError {
	if j.cancelErr == nil {
		j.cancelErr = &DeviceJobError{Code: ErrorCodeJobCancelled, Description: "The job was cancelled before this device was reached"}
	}
	return j.cancelErr
}

func unixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// insertLocked adds j to the job table.
func (e *Engine) insertLocked(j *job) {
	e.jobs[j.id] = j
	i, _ := slices.BinarySearchFunc(e.order, j.key(), func(a *job, k string) int { return cmp.Compare(a.key(), k) })
	e.order = slices.Insert(e.order, i, j)
}

// Create validates req and schedules the job (PUT /jobs/v2/{id}, docs/iothub.md
// §5.1, §5.2). It returns once the job is stored, with status "queued" when
// its start time is now or past and "scheduled" when it is in the future.
// Errors are *iothub.Error: 400 for an invalid request (ArgumentInvalid,
// ArgumentNull, GenericBadRequest for a type the hub does not know), 409
// JobAlreadyExists, 429 ThrottlingMaxActiveJobCountExceeded when the pacing
// profile's concurrent-job limit is reached (every job not terminal counts).
func (e *Engine) Create(ctx context.Context, req JobRequest) (Job, error) {
	if err := ctx.Err(); err != nil {
		return Job{}, err
	}
	now := e.now()
	job, p, err := validate(req, now)
	if err != nil {
		return Job{}, err
	}
	job.CreatedTime = now
	job.Pacing = e.cfg.Pacing.Name
	job.Status = StatusQueued
	if job.StartTime.After(now) {
		job.Status = StatusScheduled
	}
	e.storeMu.Lock()
	defer e.storeMu.Unlock()
	e.mu.RLock()
	_, dup := e.jobs[job.JobID]
	e.mu.RUnlock()
	if dup {
		return Job{}, iothub.Errorf(iothub.CodeJobAlreadyExists, "A job with id %s already exists", job.JobID)
	}
	if limit := e.cfg.Pacing.MaxConcurrentJobs; limit > 0 && e.active >= limit {
		return Job{}, &iothub.Error{Code: iothub.CodeThrottlingMaxActiveJobCountExceeded, Message: "429",
			Info: map[string]any{"detail": fmt.Sprintf("%d active jobs; the %s limit is %d", e.active, e.cfg.Pacing.Name, limit)}}
	}
	rec := JobRecord{Job: job}
	if err := e.store.Write(Write{Jobs: []JobRecord{rec}}); err != nil {
		return Job{}, &iothub.Error{Code: iothub.CodeServerError, Message: "could not store the job", Err: fmt.Errorf("store job %s: %w", job.JobID, err)}
	}
	j := newJob(rec, p)
	e.active++
	e.mu.Lock()
	e.insertLocked(j)
	heap.Push(&e.starts, j)
	e.mu.Unlock()
	e.poke()
	e.log.Info().Str("job", job.JobID).Str("type", string(job.Type)).Time("start", job.StartTime).Msg("job created")
	return job, nil
}

// poke wakes the scheduler.
func (e *Engine) poke() {
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

func notFound(id string) error {
	return iothub.Errorf(iothub.CodeJobNotFound, "Job %s not found", id)
}

// lookup returns the job with id, or nil.
func (e *Engine) lookup(id string) *job {
	e.mu.RLock()
	defer e.mu.RUnlock()
	return e.jobs[id]
}

// Get returns a job with live statistics (GET /jobs/v2/{id}). An unknown id
// is *iothub.Error JobNotFound (404002). IoT Hub's docs do not say
// whether the real hub answers 200 {"status":"unknown"} instead; fleetsim
// answers 404 because every SDK turns it into a clear not-found error, while
// "unknown" is what the CLI reads as "not a v2 job" and falls back to the
// import/export API for.
func (e *Engine) Get(id string) (Job, error) {
	j := e.lookup(id)
	if j == nil {
		return Job{}, notFound(id)
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.snapshotLocked(), nil
}

// Cancel cancels a job (POST /jobs/v2/{id}/cancel). No device is started
// after Cancel, and devices not reached become "canceled" with error
// JobCancelled (counted as failed). Calls already in flight finish (or time
// out) and their answers are recorded: until then the job stays "running"
// with those devices counted as running and statusMessage saying it is
// being cancelled, and it becomes "cancelled" (with its endTime) once the
// last of them is recorded. A job without calls in flight is "cancelled"
// when Cancel returns. So a job never reads terminal while devices are
// still pending or running. A job already terminal, already cancelled or
// past its maxExecutionTimeInSeconds is returned unchanged. Errors:
// JobNotFound, ServerError when the store fails.
func (e *Engine) Cancel(ctx context.Context, id string) (Job, error) {
	if err := ctx.Err(); err != nil {
		return Job{}, err
	}
	e.storeMu.Lock()
	defer e.storeMu.Unlock()
	j := e.lookup(id)
	if j == nil {
		return Job{}, notFound(id)
	}
	now := e.now()
	// j.mu is held across the write: a worker must not start a call between
	// the look at inflight and the job's stop.
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.rec.Status.Terminal() || j.rec.Cancelled || j.expiredWork {
		return j.snapshotLocked(), nil
	}
	rec := j.rec
	rec.Cancelled = true
	final := j.inflight == 0
	if final {
		rec.Status, rec.EndTime, rec.StatusMessage = StatusCancelled, &now, msgCancelled
	} else {
		rec.StatusMessage = msgCancelling
	}
	if err := e.store.Write(Write{Jobs: []JobRecord{rec}}); err != nil {
		return Job{}, &iothub.Error{Code: iothub.CodeServerError, Message: "could not store the cancellation", Err: fmt.Errorf("store job %s: %w", id, err)}
	}
	j.rec = rec
	for i := range j.recs {
		if j.recs[i].status == devPending {
			j.recs[i].end = now.UnixNano()
			j.recs[i].out = &devResult{err: j.cancelError()}
			j.setStatusLocked(i, devCanceled)
		}
	}
	if final {
		e.endLocked(j)
		e.log.Info().Str("job", id).Msg("job cancelled")
	} else {
		j.stopped = true
		close(j.stop)
		e.log.Info().Str("job", id).Int("inflight", j.inflight).Msg("job cancelling: waiting for the calls in flight")
	}
	return j.snapshotLocked(), nil
}

// Status messages of a cancelled job.
const (
	msgCancelling = "The job is being cancelled: the calls in flight finish and are recorded first"
	msgCancelled  = "The job was cancelled"
)

// List returns one page of jobs (GET /jobs/v2/query, docs/iothub.md §5.5) in job
// id order, filtered by type and status when those are not empty. Filters
// match case-insensitively (the C# SDK sends enum names: ScheduleDeviceMethod,
// Completed); "enqueued" means queued, "finished" completed and "canceled"
// cancelled. pageSize <= 0 means 100; it is capped at 1000. continuation is
// "" for the first page, else the token of the previous page; the returned
// token is "" on the last page. A token that does not decode is
// *iothub.Error ArgumentInvalid.
func (e *Engine) List(jobType, status string, pageSize int, continuation string) ([]Job, string, error) {
	if pageSize <= 0 {
		pageSize = query.DefaultPageSize
	}
	pageSize = min(pageSize, query.MaxPageSize)
	after := ""
	if continuation != "" {
		b, err := base64.RawURLEncoding.DecodeString(continuation)
		if err != nil || iothub.ValidJobID(string(b)) != nil {
			return nil, "", badArg("invalid continuation token %q", continuation)
		}
		after = string(b) + "/"
	}
	status = strings.TrimSpace(status)
	switch strings.ToLower(status) {
	case "enqueued":
		status = string(StatusQueued)
	case "finished":
		status = string(StatusCompleted)
	case "canceled":
		status = string(StatusCancelled)
	}
	jobType = strings.TrimSpace(jobType)
	e.mu.RLock()
	jobs := slices.Clone(e.order)
	e.mu.RUnlock()
	start, found := slices.BinarySearchFunc(jobs, after, func(a *job, k string) int { return cmp.Compare(a.key(), k) })
	if found {
		start++
	}
	var out []Job
	for i := start; i < len(jobs); i++ {
		j := jobs[i]
		j.mu.Lock()
		v := j.snapshotLocked()
		j.mu.Unlock()
		if jobType != "" && !strings.EqualFold(jobType, string(v.Type)) {
			continue
		}
		if status != "" && !strings.EqualFold(status, string(v.Status)) {
			continue
		}
		if len(out) == pageSize {
			return out, base64.RawURLEncoding.EncodeToString([]byte(out[len(out)-1].JobID)), nil
		}
		out = append(out, v)
	}
	return out, "", nil
}

// Query runs q over the devices.jobs collection (docs/iothub.md §5.6), as
// the registry's Query does over devices: one row per device of every job
// that started, with deviceId, jobId, jobType, status, startTimeUtc and
// endTimeUtc (once set), createdDateTimeUtc, lastUpdatedDateTimeUtc,
// outcome.deviceMethodResponse ({status, payload} or null) and error ({code,
// description}, when failed). Rows are built on demand; the index covers
// deviceId, jobId and jobType, which never change for a row (a condition on
// status scans). A page holds at most pageSize rows; continuation is the
// previous page's. A query of another collection is ArgumentInvalid.
//
// A job's rows are indexed while its first devices run; Query waits until
// the rows of every started job are in the index.
func (e *Engine) Query(q *query.Query, pageSize int, continuation string) (query.Page, error) {
	if q.From() != query.Jobs {
		return query.Page{}, iothub.Errorf(iothub.CodeArgumentInvalid, "FROM %s is not served by the jobs engine", q.From())
	}
	e.rowsIndexing.wait()
	return q.Execute(deviceJobs{e}, e.index, pageSize, continuation)
}

// Rows calls fn with each devices.jobs row of job jobID, in device id
// order, until fn returns false: the rows Query returns for
// SELECT * FROM devices.jobs WHERE jobId = jobID, without paging.
func (e *Engine) Rows(jobID string, fn func(doc map[string]any) bool) {
	prefix := jobID + "/"
	deviceJobs{e}.Scan(prefix, func(key string, doc map[string]any) bool {
		return strings.HasPrefix(key, prefix) && fn(doc)
	})
}

// pending counts work in progress that others wait for. The zero value is
// ready to use.
type pending struct {
	mu   sync.Mutex
	n    int
	zero chan struct{} // closed when n drops to 0; nil while n is 0
}

func (p *pending) add() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.n == 0 {
		p.zero = make(chan struct{})
	}
	p.n++
}

func (p *pending) done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.n--
	if p.n == 0 {
		close(p.zero)
		p.zero = nil
	}
}

// wait returns once nothing is pending.
func (p *pending) wait() {
	p.mu.Lock()
	zero := p.zero
	p.mu.Unlock()
	if zero != nil {
		<-zero
	}
}

// Run executes jobs until ctx ends: it starts jobs at their start time,
// dispatches devices to MaxInFlight workers under the pacing profile, commits
// results, enforces maximum execution times and prunes history older than
// Retention. It owns every goroutine it starts and returns once they have all
// ended, after committing every result it received; calls cut short by the
// shutdown are not recorded, so those devices run again after a restart (in
// a job cancelled before the shutdown they are canceled instead). It
// returns nil when ctx ends, or the store error that stopped it. Run may be
// called once.
func (e *Engine) Run(ctx context.Context) error {
	e.mu.Lock()
	if e.started {
		e.mu.Unlock()
		return errors.New("jobs: Run called twice")
	}
	e.started = true
	runCtx, cancel := context.WithCancelCause(ctx)
	e.fatal = cancel
	e.mu.Unlock()
	defer cancel(nil)

	writerDone := make(chan error, 1)
	go func() { writerDone <- e.writeLoop() }()

	g, gctx := errgroup.WithContext(runCtx)
	for range e.cfg.MaxInFlight {
		g.Go(func() error { return e.worker(gctx) })
	}
	g.Go(func() error { return e.schedule(gctx, g) })
	g.Go(func() error { return e.pruneLoop(gctx) })
	err := g.Wait()
	// Every sender to results (workers) has returned.
	close(e.results)
	if werr := <-writerDone; werr != nil {
		return werr
	}
	if cause := context.Cause(runCtx); cause != nil && !errors.Is(cause, context.Canceled) && !errors.Is(cause, context.DeadlineExceeded) {
		return cause
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// fail stops Run because of err (a store failure).
func (e *Engine) fail(err error) {
	e.log.Error().Err(err).Msg("jobs engine stops")
	e.mu.RLock()
	f := e.fatal
	e.mu.RUnlock()
	if f != nil {
		f(err)
	}
}

// startHeap orders jobs by start time (then id): one timer over it starts
// them, rather than a timer per job. Guarded by Engine.mu.
type startHeap []*job

func (h startHeap) Len() int { return len(h) }
func (h startHeap) Less(a, b int) bool {
	if c := h[a].startAt.Compare(h[b].startAt); c != 0 {
		return c < 0
	}
	return h[a].id < h[b].id
}
func (h startHeap) Swap(a, b int) { h[a], h[b] = h[b], h[a] }
func (h *startHeap) Push(x any)   { *h = append(*h, x.(*job)) }
func (h *startHeap) Pop() any {
	old := *h
	j := old[len(old)-1]
	*h = old[:len(old)-1]
	return j
}
