// Package jobstore is the jobs engine's embedded durable store: one bbolt
// (go.etcd.io/bbolt) file in the data directory implementing jobs.Store.
//
// Layout: bucket "jobs" maps a job id to its JSON JobRecord; bucket "sets"
// maps a job id to the device set it selected at start (ids joined by '\n',
// which no device id may contain); bucket "results" holds one nested bucket
// per job that maps a device id to its JSON DeviceResult; bucket "meta" holds
// the layout version.
//
// Crash safety: every Write is one bbolt transaction, fsynced before Commit
// returns, so after a kill -9 the file holds exactly the writes that were
// acknowledged. The engine groups device results into one Write per batch,
// which is what makes a write per result affordable.
package jobstore

import (
	"encoding/json"
	"fmt"
	"strings"

	bolt "go.etcd.io/bbolt"

	"github.com/fleetsim/fleetsim/hubjobs/jobs"
	"github.com/fleetsim/fleetsim/internal/boltfile"
)

var (
	bucketJobs    = []byte("jobs")
	bucketSets    = []byte("sets")
	bucketResults = []byte("results")
)

// layoutVersion is the version of the bucket layout written to new files.
const layoutVersion = "1"

// ErrLayout is returned (wrapped) by Open for a file written by an
// incompatible version.
var ErrLayout = boltfile.ErrLayout

// Store is an open job store. It is safe for concurrent use.
type Store struct {
	db *bolt.DB
}

var _ jobs.Store = (*Store)(nil)

// Open opens the store file at path, creating it if needed. It fails if
// another process has it open (after waiting up to a second for its lock).
func Open(path string) (*Store, error) {
	db, err := boltfile.Open(path, "job store", layoutVersion, bucketJobs, bucketSets, bucketResults)
	if err != nil {
		return nil, err
	}
	return &Store{db: db}, nil
}

// Close closes the file. Stop the engine first.
func (s *Store) Close() error { return s.db.Close() }

// Load implements jobs.Store: every job with its device set and results.
func (s *Store) Load(fn func(jobs.StoredJob) error) error {
	return s.db.View(func(tx *bolt.Tx) error {
		jobBucket, sets, results := tx.Bucket(bucketJobs), tx.Bucket(bucketSets), tx.Bucket(bucketResults)
		return jobBucket.ForEach(func(id, data []byte) error {
			var sj jobs.StoredJob
			if err := json.Unmarshal(data, &sj.Record); err != nil {
				return fmt.Errorf("job %s: %w", id, err)
			}
			if set := sets.Get(id); set != nil {
				sj.Devices = splitSet(set)
			}
			if rb := results.Bucket(id); rb != nil {
				sj.Results = make([]jobs.DeviceResult, 0, rb.Stats().KeyN)
				err := rb.ForEach(func(dev, data []byte) error {
					var r jobs.DeviceResult
					if err := json.Unmarshal(data, &r); err != nil {
						return fmt.Errorf("job %s device %s: %w", id, dev, err)
					}
					sj.Results = append(sj.Results, r)
					return nil
				})
				if err != nil {
					return err
				}
			}
			return fn(sj)
		})
	})
}

func splitSet(b []byte) []string {
	if len(b) == 0 {
		return []string{}
	}
	return strings.Split(string(b), "\n")
}

// Write implements jobs.Store: w in one fsynced transaction. Device sets
// and results of jobs neither stored nor in w fail the whole Write.
func (s *Store) Write(w jobs.Write) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		jobBucket, sets, results := tx.Bucket(bucketJobs), tx.Bucket(bucketSets), tx.Bucket(bucketResults)
		for _, r := range w.Jobs {
			b, err := json.Marshal(r)
			if err != nil {
				return fmt.Errorf("job %s: %w", r.JobID, err)
			}
			if err := jobBucket.Put([]byte(r.JobID), b); err != nil {
				return err
			}
		}
		for _, d := range w.DeviceSets {
			if jobBucket.Get([]byte(d.JobID)) == nil {
				return fmt.Errorf("device set of unknown job %q", d.JobID)
			}
			for _, id := range d.Devices {
				if strings.IndexByte(id, '\n') >= 0 {
					return fmt.Errorf("job %s: device id %q contains a newline", d.JobID, id)
				}
			}
			if err := sets.Put([]byte(d.JobID), []byte(strings.Join(d.Devices, "\n"))); err != nil {
				return err
			}
		}
		var rb *bolt.Bucket
		var rbJob string
		for _, r := range w.Results {
			if rb == nil || rbJob != r.JobID {
				if jobBucket.Get([]byte(r.JobID)) == nil {
					return fmt.Errorf("result of unknown job %q", r.JobID)
				}
				var err error
				if rb, err = results.CreateBucketIfNotExists([]byte(r.JobID)); err != nil {
					return err
				}
				rbJob = r.JobID
			}
			// bbolt keeps the value until the commit: one slice per result.
			b, err := json.Marshal(r)
			if err != nil {
				return fmt.Errorf("job %s device %s: %w", r.JobID, r.DeviceID, err)
			}
			if err := rb.Put([]byte(r.DeviceID), b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("job store write: %w", err)
	}
	return nil
}

// Delete implements jobs.Store: it removes jobs with their device sets
// and results.
func (s *Store) Delete(jobIDs []string) error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		jobBucket, sets, results := tx.Bucket(bucketJobs), tx.Bucket(bucketSets), tx.Bucket(bucketResults)
		for _, id := range jobIDs {
			k := []byte(id)
			if err := jobBucket.Delete(k); err != nil {
				return err
			}
			if err := sets.Delete(k); err != nil {
				return err
			}
			if results.Bucket(k) != nil {
				if err := results.DeleteBucket(k); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("job store delete: %w", err)
	}
	return nil
}
