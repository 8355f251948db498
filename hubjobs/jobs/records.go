package jobs

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// devStatus is a device job's status in memory.
type devStatus uint8

const (
	devPending devStatus = iota
	devRunning
	devCompleted
	devFailed
	devCanceled
)

var devStatusNames = [...]Status{
	devPending:   DeviceJobPending,
	devRunning:   StatusRunning,
	devCompleted: StatusCompleted,
	devFailed:    StatusFailed,
	devCanceled:  DeviceJobCanceled,
}

func (s devStatus) Status() Status { return devStatusNames[s] }

func (s devStatus) done() bool { return s >= devCompleted }

func devStatusOf(s Status) (devStatus, bool) {
	for i, n := range devStatusNames {
		if n == s {
			return devStatus(i), true
		}
	}
	return 0, false
}

// devRec is one device job in memory: 32 bytes, plus the outcome when there
// is one. The device id lives in the job's sorted devices slice at the same
// index, and the devices.jobs row is built from both on demand.
type devRec struct {
	start, end int64      // Unix nanoseconds; 0 = not yet
	out        *devResult // nil while pending or running, and for a twin job that completed
	status     devStatus
}

// devResult is a device job's outcome: the device's answer to a method, or
// the error that failed it.
type devResult struct {
	resp *iothub.MethodResult
	err  *DeviceJobError
}

// job is one job of the engine.
type job struct {
	id      string
	plan    plan
	typ     JobType   // immutable
	startAt time.Time // the scheduled start; immutable

	// mu guards everything below.
	mu      sync.Mutex
	rec     JobRecord // the Job (status, times, statistics) and resume state
	devices []string  // sorted device set; nil before the job starts
	recs    []devRec  // parallel to devices
	// expiredWork: the job reached its maximum time with devices not done,
	// so it ends failed even if the calls in flight then fail quickly.
	expiredWork bool
	inflight    int           // devices dispatched whose result is not yet applied
	stopped     bool          // no more devices are dispatched (cancel, expiry)
	stop        chan struct{} // closed when stopped by Cancel
	changed     chan struct{} // poked (capacity 1) when results were applied
	callCtx     context.Context
	// shared errors of devices failed or canceled en masse.
	expiredErr, cancelErr *DeviceJobError
}

func newJob(rec JobRecord, p plan) *job {
	return &job{
		id:      rec.JobID,
		plan:    p,
		typ:     rec.Type,
		startAt: rec.StartTime,
		rec:     rec,
		stop:    make(chan struct{}),
		changed: make(chan struct{}, 1),
	}
}

// key is the job's prefix of devices.jobs keys; jobs sort by it so that
// their rows come out in key order ("a-b/x" < "a/x").
func (j *job) key() string { return j.id + "/" }

func (j *job) poke() {
	select {
	case j.changed <- struct{}{}:
	default:
	}
}

// snapshotLocked returns the job as the API shows it.
func (j *job) snapshotLocked() Job { return j.rec.Job }

// remainingLocked is the number of devices not done.
func (j *job) remainingLocked() int {
	s := j.rec.DeviceJobStatistics
	return s.PendingCount + s.RunningCount
}

// setStatusLocked moves device i to s, keeping the statistics in step with
// the record. The index does not hold status (see jobIndexNames), so it
// does not change.
func (j *job) setStatusLocked(i int, s devStatus) {
	st := &j.rec.DeviceJobStatistics
	count := func(s devStatus, d int) {
		switch s {
		case devPending:
			st.PendingCount += d
		case devRunning:
			st.RunningCount += d
		case devCompleted:
			st.SucceededCount += d
		default:
			st.FailedCount += d
		}
	}
	count(j.recs[i].status, -1)
	count(s, +1)
	j.recs[i].status = s
}

// jobIndexNames are the devices.jobs fields the index holds: those that never
// change for a row. Status is left out because it changes twice per device,
// each time under the one index lock, which showed in a method job's CPU
// (docs/performance.md); a condition on status alone scans the rows, and with
// jobId or deviceId it filters their postings.
var jobIndexNames = []string{"deviceId", "jobId", "jobType"}

// rowKeys are the index keys of the job's rows, in device order.
func (j *job) rowKeys() []string {
	prefix := j.key()
	keys := make([]string, len(j.devices))
	for i, id := range j.devices {
		keys[i] = prefix + id
	}
	return keys
}

// indexDoc is the part of row i that the index reads. It reads only what
// never changes once the job has started, so it needs no lock.
func (j *job) indexDoc(i int) map[string]any {
	return map[string]any{
		"deviceId": j.devices[i],
		"jobId":    j.id,
		"jobType":  string(j.typ),
	}
}

// rowTime formats devices.jobs times with a fixed 7-digit fraction (as .NET
// does), so that they compare as strings in time order.
const rowTime = "2006-01-02T15:04:05.0000000Z"

func fmtNanos(n int64) string { return time.Unix(0, n).UTC().Format(rowTime) }

// docLocked builds the devices.jobs row of device i (docs/iothub.md §5.6) as
// encoding/json would decode it.
func (j *job) docLocked(i int) map[string]any {
	r := j.recs[i]
	created := j.rec.Selected.UnixNano()
	updated := max(created, r.start, r.end)
	doc := map[string]any{
		"deviceId":               j.devices[i],
		"jobId":                  j.id,
		"jobType":                string(j.typ),
		"status":                 string(r.status.Status()),
		"createdDateTimeUtc":     fmtNanos(created),
		"lastUpdatedDateTimeUtc": fmtNanos(updated),
	}
	if r.start != 0 {
		doc["startTimeUtc"] = fmtNanos(r.start)
	}
	if r.end != 0 {
		doc["endTimeUtc"] = fmtNanos(r.end)
	}
	var resp any
	if r.out != nil && r.out.resp != nil {
		var payload any
		if len(r.out.resp.Payload) > 0 {
			if json.Unmarshal(r.out.resp.Payload, &payload) != nil {
				payload = string(r.out.resp.Payload)
			}
		}
		resp = map[string]any{"status": float64(r.out.resp.Status), "payload": payload}
	}
	doc["outcome"] = map[string]any{"deviceMethodResponse": resp}
	if r.out != nil && r.out.err != nil {
		doc["error"] = map[string]any{"code": r.out.err.Code, "description": r.out.err.Description}
	}
	return doc
}

// resultLocked is device i's durable result.
func (j *job) resultLocked(i int) DeviceResult {
	r := j.recs[i]
	res := DeviceResult{JobID: j.id, DeviceID: j.devices[i], Status: r.status.Status()}
	if r.start != 0 {
		res.StartTime = time.Unix(0, r.start).UTC()
	}
	if r.end != 0 {
		res.EndTime = time.Unix(0, r.end).UTC()
	}
	if r.out != nil {
		res.Response, res.Error = r.out.resp, r.out.err
	}
	return res
}

// deviceJobs is the devices.jobs collection: one row per device of every
// job that started, under the key "jobId/deviceId", built on demand.
type deviceJobs struct{ e *Engine }

// Get implements query.Source.
func (s deviceJobs) Get(key string) (map[string]any, bool) {
	id, dev, ok := strings.Cut(key, "/")
	if !ok {
		return nil, false
	}
	s.e.mu.RLock()
	j := s.e.jobs[id]
	s.e.mu.RUnlock()
	if j == nil {
		return nil, false
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	i, found := slices.BinarySearch(j.devices, dev)
	if !found {
		return nil, false
	}
	return j.docLocked(i), true
}

// scanChunk bounds how many rows Scan builds under one job lock.
const scanChunk = 256

// Scan implements query.Source: rows in key order after key after.
func (s deviceJobs) Scan(after string, fn func(key string, doc map[string]any) bool) {
	s.e.mu.RLock()
	jobs := slices.Clone(s.e.order)
	s.e.mu.RUnlock()
	type row struct {
		key string
		doc map[string]any
	}
	buf := make([]row, 0, scanChunk)
	for _, j := range jobs {
		p := j.key()
		start := 0
		if after != "" {
			if rest, ok := strings.CutPrefix(after, p); ok {
				j.mu.Lock()
				i, found := slices.BinarySearch(j.devices, rest)
				j.mu.Unlock()
				if found {
					i++
				}
				start = i
			} else if p < after {
				continue
			}
		}
		for {
			buf = buf[:0]
			j.mu.Lock()
			for i := start; i < len(j.devices) && len(buf) < scanChunk; i++ {
				buf = append(buf, row{p + j.devices[i], j.docLocked(i)})
			}
			j.mu.Unlock()
			if len(buf) == 0 {
				break
			}
			start += len(buf)
			for _, r := range buf {
				if !fn(r.key, r.doc) {
					return
				}
			}
		}
	}
}
