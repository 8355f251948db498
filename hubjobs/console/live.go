package console

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs/jobs"
)

// Cell codes of the fleet grid: the low two bits are the connection, the
// next three the state of the latest job on the device.
const (
	connDisabled     = 0
	connConnected    = 1
	connDisconnected = 2

	jobNone      = 0
	jobScheduled = 1
	jobRunning   = 2
	jobCompleted = 3
	jobFailed    = 4
	jobCanceled  = 5
)

// Bounds of what the sampler keeps and sends.
const (
	hubSeriesLen   = 600  // hub samples kept (minutes at a few per second)
	jobSeriesLen   = 2400 // samples kept per job
	seriesPoints   = 240  // most points sent per series
	gridJobs       = 8    // latest jobs whose rows colour the grid
	listedJobs     = 50   // jobs in the live list
	fleetEveryTick = 3    // the grid is rebuilt every this many ticks
)

// hubSample is one point of the hub's rates.
type hubSample struct {
	T           int64   `json:"t"` // unix ms
	Connected   int     `json:"connected"`
	MessagesPS  float64 `json:"messagesPerSec"`
	MethodsPS   float64 `json:"methodsPerSec"`
	JobOpsPS    float64 `json:"jobOpsPerSec"`
	totalsAtPos Totals
}

// jobSample is one point of a job's progress.
type jobSample struct {
	T         int64 `json:"t"`
	Succeeded int   `json:"succeeded"`
	Failed    int   `json:"failed"`
	Running   int   `json:"running"`
	Pending   int   `json:"pending"`
}

// fleetSnapshot is the grid: device ids in ascending order and one cell
// code each.
type fleetSnapshot struct {
	version int64
	ids     []string
	codes   []byte
	enc     string // "rle" or "raw"
	cells   string // base64 of (code, uvarint run length) pairs, or of the codes themselves when that is shorter
	counts  map[string]int
}

// jobRows is the latest device-job status of one job, ascending by device.
type jobRows struct {
	ids   []string
	codes []byte
}

// live samples the hub on Run's ticks and builds the messages every event
// stream sends; the streams only copy them out.
type live struct {
	devices  Devices
	jobs     Jobs
	counters Counters

	watchers  atomic.Int64 // open event streams; the grid is built only while > 0
	wantFleet atomic.Bool  // a stream opened: rebuild the grid on the next tick
	ticks     int64

	scenario         atomic.Pointer[scenarioRef] // the scenario being played, if any
	scenarioWatchers atomic.Int64                // open streams of scenario pages

	buildMu sync.Mutex // one grid build at a time: a tick's or a first load's

	mu       sync.RWMutex
	hub      []hubSample
	jobSer   map[string][]jobSample
	jobList  []jobs.Job
	fleet    *fleetSnapshot
	rowCache map[string]jobRows // rows of terminal jobs, which no longer change
	msg      []byte             // the latest aggregate message, without the grid
	fleetAt  time.Time          // when the grid was built
	// scenarioMsg is the scenario's latest state, scenarioVer its version.
	scenarioMsg []byte
	scenarioVer int64
	seq         int64         // counts messages
	notify      chan struct{} // closed and replaced on every new message
}

func newLive(d Devices, j Jobs, c Counters) *live {
	return &live{devices: d, jobs: j, counters: c, jobSer: map[string][]jobSample{}, rowCache: map[string]jobRows{}, notify: make(chan struct{}), fleet: &fleetSnapshot{counts: map[string]int{}}}
}

// tick takes one sample and publishes the next message.
func (l *live) tick(ctx context.Context, now time.Time) {
	l.ticks++
	tot := l.counters.Totals()
	list := l.listJobs()

	l.mu.Lock()
	s := hubSample{T: now.UnixMilli(), Connected: tot.Connected, totalsAtPos: tot}
	if n := len(l.hub); n > 0 {
		prev := l.hub[n-1]
		if dt := float64(s.T-prev.T) / 1000; dt > 0 {
			s.MessagesPS = float64(tot.MessagesIn+tot.MessagesOut-prev.totalsAtPos.MessagesIn-prev.totalsAtPos.MessagesOut) / dt
			s.MethodsPS = (tot.MethodCalls - prev.totalsAtPos.MethodCalls) / dt
			s.JobOpsPS = (tot.JobOps - prev.totalsAtPos.JobOps) / dt
		}
	}
	l.hub = appendBounded(l.hub, s, hubSeriesLen)
	keep := map[string]bool{}
	for i, j := range list {
		if i >= listedJobs {
			break
		}
		keep[j.JobID] = true
		ser := l.jobSer[j.JobID]
		st := j.DeviceJobStatistics
		p := jobSample{T: s.T, Succeeded: st.SucceededCount, Failed: st.FailedCount, Running: st.RunningCount, Pending: st.PendingCount}
		if n := len(ser); n > 0 && ser[n-1] == (jobSample{T: ser[n-1].T, Succeeded: p.Succeeded, Failed: p.Failed, Running: p.Running, Pending: p.Pending}) && j.Status.Terminal() {
			continue // a finished job's series stays as it ended
		}
		l.jobSer[j.JobID] = appendBounded(ser, p, jobSeriesLen)
	}
	for id := range l.jobSer {
		if !keep[id] {
			delete(l.jobSer, id)
		}
	}
	if len(list) > listedJobs {
		list = list[:listedJobs]
	}
	l.jobList = list
	l.mu.Unlock()

	if l.watchers.Load() > 0 && (l.ticks%fleetEveryTick == 0 || l.wantFleet.Swap(false)) {
		l.buildFleet(ctx, list, now)
	}
	l.sampleScenario(now)

	l.mu.Lock()
	defer l.mu.Unlock()
	l.seq++
	l.msg = l.messageLocked(s, tot)
	close(l.notify)
	l.notify = make(chan struct{})
}

// listJobs returns the hub's jobs, newest first (at most 1000).
func (l *live) listJobs() []jobs.Job {
	var all []jobs.Job
	cont := ""
	for len(all) < 1000 {
		page, next, err := l.jobs.List("", "", 1000, cont)
		if err != nil {
			break
		}
		all = append(all, page...)
		if next == "" {
			break
		}
		cont = next
	}
	slices.SortStableFunc(all, func(a, b jobs.Job) int { return b.CreatedTime.Compare(a.CreatedTime) })
	return all
}

type liveMessage struct {
	Seq   int64      `json:"seq"`
	Hub   hubSample  `json:"hub"`
	Tot   Totals     `json:"totals"`
	Jobs  []jobBrief `json:"jobs"`
	Fleet fleetBrief `json:"fleet"`
}

// jobBrief is a job in the live list.
type jobBrief struct {
	ID        string          `json:"jobId"`
	Type      jobs.JobType    `json:"type"`
	Status    jobs.Status     `json:"status"`
	Condition string          `json:"queryCondition"`
	Created   time.Time       `json:"createdTime"`
	Stats     jobs.Statistics `json:"deviceJobStatistics"`
}

// fleetBrief is the grid's counts; the cells travel separately.
type fleetBrief struct {
	Version int64          `json:"version"`
	Devices int            `json:"devices"`
	Counts  map[string]int `json:"counts"`
}

func (l *live) messageLocked(s hubSample, tot Totals) []byte {
	m := liveMessage{Seq: l.seq, Hub: s, Tot: tot, Jobs: []jobBrief{}}
	for _, j := range l.jobList {
		m.Jobs = append(m.Jobs, jobBrief{ID: j.JobID, Type: j.Type, Status: j.Status, Condition: j.QueryCondition, Created: j.CreatedTime, Stats: j.DeviceJobStatistics})
	}
	m.Fleet = fleetBrief{Version: l.fleet.version, Devices: len(l.fleet.ids), Counts: l.fleet.counts}
	b, _ := json.Marshal(m)
	return b
}

// freshFleet returns the grid, built now when it is older than maxAge
// (or was never built): a page's first load gets the fleet as it is, not
// after the event stream's next tick.
func (l *live) freshFleet(ctx context.Context, now time.Time, maxAge time.Duration) *fleetSnapshot {
	fresh := func() *fleetSnapshot {
		l.mu.RLock()
		defer l.mu.RUnlock()
		if l.fleet.version > 0 && now.Sub(l.fleetAt) <= maxAge {
			return l.fleet
		}
		return nil
	}
	if f := fresh(); f != nil {
		return f
	}
	l.buildMu.Lock()
	// Requests that waited here for another's build use it.
	if f := fresh(); f == nil {
		l.mu.RLock()
		list := l.jobList
		l.mu.RUnlock()
		l.buildFleetLocked(ctx, list, now)
	}
	l.buildMu.Unlock()
	_, _, f, _ := l.snapshot()
	return f
}

// buildFleet rebuilds the grid from the twins and the latest jobs' rows.
func (l *live) buildFleet(ctx context.Context, list []jobs.Job, now time.Time) {
	l.buildMu.Lock()
	defer l.buildMu.Unlock()
	l.buildFleetLocked(ctx, list, now)
}

// buildFleetLocked is buildFleet with buildMu held.
func (l *live) buildFleetLocked(ctx context.Context, list []jobs.Job, now time.Time) {
	l.mu.RLock()
	prev := l.fleet
	l.mu.RUnlock()
	ids := make([]string, 0, len(prev.ids))
	codes := make([]byte, 0, len(prev.ids))
	l.devices.Scan("", func(id string, doc map[string]any) bool {
		c := byte(connDisconnected)
		if doc["status"] == "disabled" {
			c = connDisabled
		} else if doc["connectionState"] == "Connected" {
			c = connConnected
		}
		ids = append(ids, id)
		codes = append(codes, c)
		return ctx.Err() == nil
	})
	// Oldest first, so the newest job a device is in wins.
	n := min(len(list), gridJobs)
	for i := n - 1; i >= 0; i-- {
		rows := l.rows(list[i])
		mergeRows(ids, codes, rows)
	}
	counts := map[string]int{}
	for _, c := range codes {
		counts[connName(c&3)]++
		if j := c >> 2; j != jobNone {
			counts["job:"+jobName(j)]++
		}
	}
	f := &fleetSnapshot{ids: ids, codes: codes, counts: counts, enc: "rle", cells: encodeRLE(codes)}
	if raw := base64.StdEncoding.EncodedLen(len(codes)); raw < len(f.cells) {
		// A fleet in which neighbours differ: a byte per device is shorter.
		f.enc, f.cells = "raw", base64.StdEncoding.EncodeToString(codes)
	}
	f.version = prev.version
	if !slices.Equal(prev.ids, ids) || !bytes.Equal(prev.codes, codes) || prev.version == 0 {
		f.version++
	}
	l.mu.Lock()
	l.fleet, l.fleetAt = f, now
	l.mu.Unlock()
}

// rows returns a job's device-job codes, cached once the job is terminal.
func (l *live) rows(j jobs.Job) jobRows {
	l.mu.RLock()
	r, ok := l.rowCache[j.JobID]
	l.mu.RUnlock()
	if ok {
		return r
	}
	l.jobs.Rows(j.JobID, func(doc map[string]any) bool {
		id, _ := doc["deviceId"].(string)
		r.ids = append(r.ids, id)
		r.codes = append(r.codes, rowCode(doc["status"]))
		return true
	})
	if j.Status.Terminal() {
		l.mu.Lock()
		l.rowCache[j.JobID] = r
		if len(l.rowCache) > 4*gridJobs {
			for k := range l.rowCache {
				delete(l.rowCache, k)
				break
			}
		}
		l.mu.Unlock()
	}
	return r
}

func rowCode(v any) byte {
	switch v {
	case "scheduled", "pending":
		return jobScheduled
	case "running":
		return jobRunning
	case "completed":
		return jobCompleted
	case "failed":
		return jobFailed
	case "canceled", "cancelled":
		return jobCanceled
	}
	return jobNone
}

// mergeRows sets the job bits of the devices in rows; both are ascending.
func mergeRows(ids []string, codes []byte, rows jobRows) {
	i := 0
	for k, id := range rows.ids {
		for i < len(ids) && ids[i] < id {
			i++
		}
		if i == len(ids) {
			return
		}
		if ids[i] == id && rows.codes[k] != jobNone {
			codes[i] = codes[i]&3 | rows.codes[k]<<2
		}
	}
}

func connName(c byte) string {
	switch c {
	case connConnected:
		return "connected"
	case connDisconnected:
		return "disconnected"
	}
	return "disabled"
}

func jobName(c byte) string {
	return [...]string{"none", "scheduled", "running", "completed", "failed", "canceled"}[c]
}

// encodeRLE writes runs of equal codes as (code, uvarint length) pairs, in
// base64: a fleet where most devices look alike takes a few bytes.
func encodeRLE(codes []byte) string {
	var out []byte
	for i := 0; i < len(codes); {
		j := i + 1
		for j < len(codes) && codes[j] == codes[i] {
			j++
		}
		out = append(out, codes[i])
		out = binary.AppendUvarint(out, uint64(j-i))
		i = j
	}
	return base64.StdEncoding.EncodeToString(out)
}

// snapshot returns the latest message, its sequence number, the grid and
// the channel closed when the next message is ready.
func (l *live) snapshot() ([]byte, int64, *fleetSnapshot, <-chan struct{}) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.msg, l.seq, l.fleet, l.notify
}

// series returns the hub's samples and a job's (when job is not ""), each
// thinned to at most seriesPoints.
func (l *live) series(job string) ([]hubSample, []jobSample) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return thin(l.hub), thin(l.jobSer[job])
}

func thin[T any](s []T) []T {
	if len(s) <= seriesPoints {
		return slices.Clone(s)
	}
	out := make([]T, 0, seriesPoints)
	step := float64(len(s)-1) / float64(seriesPoints-1)
	for i := range seriesPoints {
		out = append(out, s[int(float64(i)*step+0.5)])
	}
	return out
}

func appendBounded[T any](s []T, v T, max int) []T {
	if len(s) >= max {
		s = append(s[:0], s[len(s)-max+1:]...)
	}
	return append(s, v)
}
