package jobs

import (
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"
)

// Store keeps what the engine acknowledged: jobs, the device set each job
// selected when it started, and each device's result. It is the truth after a
// restart: NewEngine loads it, a job that was running resumes with the
// devices that have no result, and a device with a result is never invoked
// again.
//
// The engine serialises its calls (one at a time); implementations need not
// be safe for concurrent writes but must allow Load before any Write.
// MemStore keeps everything in memory; hubjobs/jobstore keeps it in a bbolt
// file.
type Store interface {
	// Load calls fn once for every stored job, in any order. An error from fn
	// stops Load and is returned.
	Load(fn func(StoredJob) error) error
	// Write applies w in one transaction: when Write returns nil all of it is
	// durable; on error none of it may be.
	Write(w Write) error
	// Delete removes jobs with their device sets and results (retention).
	Delete(jobIDs []string) error
}

// StoredJob is one job as a Store returns it.
type StoredJob struct {
	Record JobRecord
	// Devices is the device set selected at start; nil before the job ran.
	Devices []string
	// Results are the stored device results, in any order.
	Results []DeviceResult
}

// JobRecord is the durable state of a job: the Job as the API shows it plus
// what the engine needs to resume it.
type JobRecord struct {
	Job
	// Started is when the job began running (zero before): the
	// maxExecutionTimeInSeconds clock runs from here, across restarts.
	Started time.Time `json:"started,omitzero"`
	// Selected is when the device set was chosen (zero before): the
	// createdDateTimeUtc of the job's device jobs.
	Selected time.Time `json:"selected,omitzero"`
	// Expired says the job reached maxExecutionTimeInSeconds; its devices
	// without a result failed with ErrorCodeJobExpired.
	Expired bool `json:"expired,omitempty"`
	// Cancelled says the job was cancelled. A job cancelled while calls were
	// in flight stays running until they are recorded, then ends cancelled;
	// after a restart it ends at once (the calls' answers were lost). Its
	// devices without a result are canceled.
	Cancelled bool `json:"cancelled,omitempty"`
}

// Write is one store transaction.
type Write struct {
	// Jobs are job records to create or replace.
	Jobs []JobRecord
	// DeviceSets are device sets to store (once per job, at start).
	DeviceSets []DeviceSet
	// Results are device results to store.
	Results []DeviceResult
}

// DeviceSet is the sorted set of device ids a job selected when it started.
type DeviceSet struct {
	JobID   string
	Devices []string
}

// MemStore is a Store in memory, for tests and throwaway runs. Two engines built one after the other on
// the same MemStore behave like a restart. It is safe for concurrent use.
type MemStore struct {
	mu   sync.Mutex
	jobs map[string]*memJob
	// fail, when set, is returned by Write (tests of store failures).
	fail error
}

type memJob struct {
	rec     JobRecord
	devices []string
	results map[string]DeviceResult
}

// NewMemStore returns an empty MemStore.
func NewMemStore() *MemStore { return &MemStore{jobs: map[string]*memJob{}} }

// Load implements Store.
func (m *MemStore) Load(fn func(StoredJob) error) error {
	m.mu.Lock()
	var out []StoredJob
	for _, id := range slices.Sorted(maps.Keys(m.jobs)) {
		j := m.jobs[id]
		out = append(out, StoredJob{Record: j.rec, Devices: j.devices, Results: slices.Collect(maps.Values(j.results))})
	}
	m.mu.Unlock()
	for _, sj := range out {
		if err := fn(sj); err != nil {
			return err
		}
	}
	return nil
}

// Write implements Store. It checks the whole of w before changing
// anything, so a failed Write leaves the store as it was.
func (m *MemStore) Write(w Write) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	known := func(id string) bool {
		return m.jobs[id] != nil || slices.ContainsFunc(w.Jobs, func(r JobRecord) bool { return r.JobID == id })
	}
	for _, s := range w.DeviceSets {
		if !known(s.JobID) {
			return fmt.Errorf("memory store: device set of unknown job %q", s.JobID)
		}
	}
	for _, r := range w.Results {
		if !known(r.JobID) {
			return fmt.Errorf("memory store: result of unknown job %q", r.JobID)
		}
	}
	for _, r := range w.Jobs {
		j := m.jobs[r.JobID]
		if j == nil {
			j = &memJob{results: map[string]DeviceResult{}}
			m.jobs[r.JobID] = j
		}
		j.rec = r
	}
	for _, s := range w.DeviceSets {
		m.jobs[s.JobID].devices = slices.Clone(s.Devices)
	}
	for _, r := range w.Results {
		m.jobs[r.JobID].results[r.DeviceID] = r
	}
	return nil
}

// nopStore is the Store of an engine configured without one: nothing
// outlives the engine, and the engine's own memory is the only copy.
type nopStore struct{}

func (nopStore) Load(func(StoredJob) error) error { return nil }
func (nopStore) Write(Write) error                { return nil }
func (nopStore) Delete([]string) error            { return nil }

// Delete implements Store.
func (m *MemStore) Delete(jobIDs []string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, id := range jobIDs {
		delete(m.jobs, id)
	}
	return nil
}

// SetWriteError makes every later Write fail with err (nil restores); for
// tests of store failures.
func (m *MemStore) SetWriteError(err error) {
	m.mu.Lock()
	m.fail = err
	m.mu.Unlock()
}
