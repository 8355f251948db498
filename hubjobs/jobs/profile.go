package jobs

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Profile is a pacing profile: how fast the hub runs device operations of
// jobs and how many jobs may be active at once (docs/iothub.md §7, "Jobs device
// operations" and "max concurrent jobs").
type Profile struct {
	// Name is the profile as written: "unlimited", "S1", "S2x4", ...
	Name string
	// OpsPerSecond is the rate of device operations shared by every job of
	// the hub; 0 means unlimited (only Config.MaxInFlight bounds them).
	OpsPerSecond float64
	// MaxConcurrentJobs bounds the jobs that are not terminal (queued,
	// scheduled and running); 0 means no bound.
	MaxConcurrentJobs int
}

// Unlimited is the default profile: device operations as fast as devices
// answer, any number of jobs.
var Unlimited = Profile{Name: "unlimited"}

// ParseProfile reads a profile name: "unlimited", or a tier "S1", "S2", "S3"
// with an optional unit count "x<n>" ("S1x2", "S3x4"); case does not matter.
// Per docs/iothub.md §7: S1 runs 10 device operations per second whatever its
// units and 1 job at a time; S2 the higher of 10/s or 1/s per unit, 5 jobs;
// S3 50/s per unit, 10 jobs.
func ParseProfile(s string) (Profile, error) {
	name := strings.TrimSpace(s)
	if name == "" || strings.EqualFold(name, "unlimited") {
		return Unlimited, nil
	}
	tier, unitText, hasUnits := strings.Cut(strings.ToUpper(name), "X")
	units := 1
	if hasUnits {
		n, err := strconv.Atoi(unitText)
		if err != nil || n < 1 || n > 9999 || unitText[0] == '+' {
			return Profile{}, fmt.Errorf("pacing profile %q: the unit count after x must be 1 to 9999", s)
		}
		units = n
	}
	p := Profile{Name: tier}
	if hasUnits {
		p.Name = tier + "x" + strconv.Itoa(units)
	}
	switch tier {
	case "S1":
		p.OpsPerSecond, p.MaxConcurrentJobs = 10, 1
	case "S2":
		p.OpsPerSecond, p.MaxConcurrentJobs = max(10, float64(units)), 5
	case "S3":
		p.OpsPerSecond, p.MaxConcurrentJobs = 50*float64(units), 10
	default:
		return Profile{}, fmt.Errorf("pacing profile %q: want unlimited, S1, S2 or S3, optionally with units such as S1x2", s)
	}
	return p, nil
}

// String returns the profile's name.
func (p Profile) String() string { return p.Name }

// pacer is a token bucket of one token refilled at the profile's rate, shared
// by every job of the engine. Reservations
// advance a virtual schedule by exactly one interval each, so timers that
// fire late are caught up and the long-run pace is the profile's rate; after
// an idle spell longer than an interval the schedule restarts from now, so
// idleness is never saved up into a burst.
type pacer struct {
	interval time.Duration // 0: unlimited

	mu   sync.Mutex
	next time.Time // the earliest time the next operation may start
}

func newPacer(p Profile) *pacer {
	pc := &pacer{}
	if p.OpsPerSecond > 0 {
		pc.interval = time.Duration(float64(time.Second) / p.OpsPerSecond)
	}
	return pc
}

// wait blocks until the caller may start one operation, or ctx ends.
func (p *pacer) wait(ctx context.Context) error {
	if p.interval == 0 {
		return ctx.Err()
	}
	p.mu.Lock()
	now := time.Now()
	at := p.next
	if now.Sub(at) > p.interval {
		at = now
	}
	p.next = at.Add(p.interval)
	p.mu.Unlock()
	d := at.Sub(now)
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
