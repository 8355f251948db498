package runner

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// The shards of one run meet on a device twin of the hub, the run's
// coordination twin fleetsim-run-<run id>, with calls any IoT hub serves:
// a device create, twin reads, and twin patches under If-Match. Its tags
// hold, under "fleetsim":
//
//	shards   the run's shard count
//	epoch    the run's generation: a new run on a twin whose last run ended
//	         (or whose shards all stopped heartbeating) starts the next one
//	state    gathering, started (shard 1 created the jobs' clock) or ended
//	started  when shard 1 started the timeline
//	missing  the shards that were not ready then ("2,4")
//	m        one entry per shard and epoch, key e<epoch>s<shard>: who
//	         holds it, its heartbeat, devices, connected, ready and done
//	ro       the reports of the rollouts shard 1 ran, key e<epoch>-<rollout
//	         id>: a compact JSON string, for shards 2..n to report them
//
// Heartbeats are wall-clock times written by each shard: the machines'
// clocks must agree to well within the heartbeat timeout (NTP does).

// ErrShardConflict is returned by Run when the run's coordination twin
// refuses this shard: another live process holds the same shard number,
// or the run was started with a different shard count.
var ErrShardConflict = errors.New("runner: shard conflict")

// Coordination configures how the shards of one remote run meet on the hub.
type Coordination struct {
	// RunID names the run; every shard of the run gives the same. Empty
	// derives it from the scenario's name and seed (see RunID).
	RunID string
	// BarrierTimeout bounds how long shard 1 waits for the other shards to
	// be ready before it starts the timeline without them (default 2 min).
	BarrierTimeout time.Duration
	// HeartbeatTimeout is how long a shard may go without a heartbeat
	// before the others report it gone (default 30 s; it beats three times
	// as often).
	HeartbeatTimeout time.Duration
	// CancelAtEnd cancels (on shard 1) the jobs still running when the run
	// ends; without it they are left running and the report says so.
	CancelAtEnd bool
	// Getenv reads the environment RunID derives the run id from
	// (default os.Getenv).
	Getenv func(string) string
}

// The environment a run id is derived from.
const (
	// EnvRunID gives the run id, as --run-id does.
	EnvRunID = "FLEETSIM_RUN_ID"
	// EnvRunUID distinguishes runs of the same scenario and seed, e.g. the
	// uid of the Kubernetes Job that runs the shards (downward API).
	EnvRunUID = "FLEETSIM_RUN_UID"
)

// RunID returns the run id of a run: given, else FLEETSIM_RUN_ID, else the
// scenario's name and seed, with FLEETSIM_RUN_UID when set. It is cleaned
// to lower-case letters, digits and '-', at most 48 characters.
func RunID(given, scenario string, seed int64, getenv func(string) string) string {
	if getenv == nil {
		getenv = os.Getenv
	}
	id := given
	if id == "" {
		id = getenv(EnvRunID)
	}
	if id == "" {
		id = scenario + "-" + strconv.FormatInt(seed, 10)
		if uid := getenv(EnvRunUID); uid != "" {
			id += "-" + uid
		}
	}
	var b strings.Builder
	for _, r := range strings.ToLower(id) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('-')
		}
	}
	s := strings.Trim(b.String(), "-")
	if len(s) > 48 {
		// Keep it unique: a hash of the whole id replaces the tail.
		sum := sha256.Sum256([]byte(s))
		s = s[:39] + "-" + hex.EncodeToString(sum[:4])
	}
	if s == "" {
		s = "run"
	}
	return s
}

// coordTwins is what coordination needs from the hub's service API
// (*restapi.Client has it).
type coordTwins interface {
	CreateDevice(ctx context.Context, id string) (json.RawMessage, error)
	GetTwin(ctx context.Context, id string) (json.RawMessage, error)
	UpdateTwin(ctx context.Context, id string, patch json.RawMessage, etag string) (json.RawMessage, error)
}

// runState is the tags.fleetsim of a coordination twin.
type runState struct {
	Shards  int                    `json:"shards"`
	Epoch   int                    `json:"epoch"`
	State   string                 `json:"state"`
	Started string                 `json:"started"`
	Missing string                 `json:"missing"`
	M       map[string]*shardEntry `json:"m"`
	Ro      map[string]string      `json:"ro"`
}

// shardEntry is one shard's announcement.
type shardEntry struct {
	Shard     int    `json:"shard"`
	Epoch     int    `json:"epoch"`
	Owner     string `json:"owner"`
	Host      string `json:"host,omitempty"`
	Beat      string `json:"beat"`
	Devices   int    `json:"devices"`
	Connected int    `json:"connected"`
	Ready     bool   `json:"ready"`
	Done      bool   `json:"done"`
}

func (e *shardEntry) beat() time.Time {
	t, _ := time.Parse(time.RFC3339Nano, e.Beat)
	return t
}

// members returns the entries of the state's epoch.
func (s *runState) members() map[int]*shardEntry {
	out := map[int]*shardEntry{}
	for k, e := range s.M {
		if e != nil && e.Epoch == s.Epoch && k == memberKey(s.Epoch, e.Shard) {
			out[e.Shard] = e
		}
	}
	return out
}

// alive says some shard of the epoch beat within timeout of now.
func (s *runState) alive(now time.Time, timeout time.Duration) bool {
	for _, e := range s.members() {
		if !e.Done && now.Sub(e.beat()) < timeout {
			return true
		}
	}
	return false
}

func memberKey(epoch, shard int) string { return fmt.Sprintf("e%ds%d", epoch, shard) }

// coord is one shard's side of the coordination twin. Its methods are
// called from the run's goroutine, except beat, which the heartbeat
// goroutine calls; mu guards what both touch.
type coord struct {
	hub           coordTwins
	cfg           Coordination
	runID, device string
	shard, shards int // 1-based
	owner, host   string
	now           func() time.Time

	mu          sync.Mutex
	epoch       int
	state       runState
	devices     int
	connected   func() int
	ready       bool
	done        bool
	late        bool
	missing     []int
	lost        map[int]time.Time // shard → its last heartbeat, once seen gone
	beatErr     error
	barrierWait time.Duration

	stop context.CancelFunc
	wg   sync.WaitGroup
}

func newCoord(hub coordTwins, cfg Coordination, runID string, shard, shards, devices int, connected func() int) *coord {
	if cfg.BarrierTimeout <= 0 {
		cfg.BarrierTimeout = 2 * time.Minute
	}
	if cfg.HeartbeatTimeout <= 0 {
		cfg.HeartbeatTimeout = 30 * time.Second
	}
	nonce := make([]byte, 6)
	rand.Read(nonce)
	host, _ := os.Hostname()
	return &coord{
		hub: hub, cfg: cfg, runID: runID, device: "fleetsim-run-" + runID,
		shard: shard, shards: shards, owner: hex.EncodeToString(nonce), host: host,
		now: time.Now, devices: devices, connected: connected, lost: map[int]time.Time{},
	}
}

// jobSuffix is what the run's job ids end with: unique per run id and
// epoch, so a re-run on the same hub never meets an earlier run's jobs.
func (c *coord) jobSuffix() string {
	sum := sha256.Sum256([]byte(c.runID + "/" + strconv.Itoa(c.epoch)))
	return hex.EncodeToString(sum[:4])
}

// read returns the twin's run state and etag, creating the device first.
func (c *coord) read(ctx context.Context) (runState, string, error) {
	b, err := c.hub.GetTwin(ctx, c.device)
	// Shards that start together all find no device; one creates it, and
	// the others may read before its twin is there: ask again a few times.
	for try := 0; try < 10 && errors.Is(err, &iothub.Error{Code: iothub.CodeDeviceNotFound}); try++ {
		if _, err = c.hub.CreateDevice(ctx, c.device); err != nil && !errors.Is(err, &iothub.Error{Code: iothub.CodeDeviceAlreadyExists}) {
			return runState{}, "", fmt.Errorf("create the run's coordination device %s: %w", c.device, err)
		}
		if try > 0 {
			select {
			case <-ctx.Done():
				return runState{}, "", ctx.Err()
			case <-time.After(time.Duration(try) * 50 * time.Millisecond):
			}
		}
		b, err = c.hub.GetTwin(ctx, c.device)
	}
	if err != nil {
		return runState{}, "", fmt.Errorf("read the run's coordination twin %s: %w", c.device, err)
	}
	return parseRunTwin(b)
}

func parseRunTwin(b []byte) (runState, string, error) {
	var tw struct {
		ETag string `json:"etag"`
		Tags struct {
			Fleetsim runState `json:"fleetsim"`
		} `json:"tags"`
	}
	if err := json.Unmarshal(b, &tw); err != nil {
		return runState{}, "", fmt.Errorf("coordination twin: %w", err)
	}
	return tw.Tags.Fleetsim, tw.ETag, nil
}

// patch writes tags.fleetsim = fs under etag and keeps the state it reads back.
func (c *coord) patch(ctx context.Context, fs map[string]any, etag string) error {
	body, err := json.Marshal(map[string]any{"tags": map[string]any{"fleetsim": fs}})
	if err != nil {
		return err
	}
	b, err := c.hub.UpdateTwin(ctx, c.device, body, etag)
	if err != nil {
		return err
	}
	st, _, err := parseRunTwin(b)
	if err != nil {
		return err
	}
	c.mu.Lock()
	if st.Epoch == c.epoch {
		c.state = st
	}
	c.mu.Unlock()
	return nil
}

func (c *coord) entry() *shardEntry {
	return &shardEntry{
		Shard: c.shard, Epoch: c.epoch, Owner: c.owner, Host: c.host, Beat: c.now().UTC().Format(time.RFC3339Nano),
		Devices: c.devices, Connected: c.connected(), Ready: c.ready, Done: c.done,
	}
}

func isPrecondition(err error) bool {
	return errors.Is(err, &iothub.Error{Code: iothub.CodePreconditionFailed})
}

// join claims this shard on the twin: in the current epoch when its run is
// alive, else in a new epoch. It refuses a live process holding the same
// shard, and a shard count that differs from the live run's.
func (c *coord) join(ctx context.Context) error {
	for {
		st, etag, err := c.read(ctx)
		if err != nil {
			return err
		}
		now := c.now()
		fs := map[string]any{}
		if st.State != "" && st.State != "ended" && st.alive(now, c.cfg.HeartbeatTimeout) {
			if st.Shards != c.shards {
				return fmt.Errorf("%w: run %s has %d shards, this process is shard %d/%d", ErrShardConflict, c.runID, st.Shards, c.shard, c.shards)
			}
			if e := st.members()[c.shard]; e != nil && e.Owner != c.owner && !e.Done && now.Sub(e.beat()) < c.cfg.HeartbeatTimeout {
				return fmt.Errorf("%w: shard %d/%d of run %s is already running (host %s, last heartbeat %s)", ErrShardConflict, c.shard, c.shards, c.runID, e.Host, e.Beat)
			}
			c.epoch = st.Epoch
			c.late = st.State == "started"
		} else {
			// A new generation of the run: drop the last one's entries.
			c.epoch = st.Epoch + 1
			m := map[string]any{}
			for k := range st.M {
				m[k] = nil
			}
			fs["m"] = m
			fs["ro"] = nil
			fs["shards"], fs["epoch"], fs["state"], fs["started"], fs["missing"] = c.shards, c.epoch, "gathering", nil, nil
		}
		m, _ := fs["m"].(map[string]any)
		if m == nil {
			m = map[string]any{}
			fs["m"] = m
		}
		m[memberKey(c.epoch, c.shard)] = c.entry()
		if err := c.patch(ctx, fs, etag); err != nil {
			if isPrecondition(err) {
				continue // someone else wrote first: read again
			}
			return fmt.Errorf("join run %s: %w", c.runID, err)
		}
		return nil
	}
}

// beat writes this shard's entry and notes the shards that stopped beating.
func (c *coord) beat(ctx context.Context) error {
	c.mu.Lock()
	e := c.entry()
	c.mu.Unlock()
	err := c.patch(ctx, map[string]any{"m": map[string]any{memberKey(c.epoch, c.shard): e}}, "*")
	c.mu.Lock()
	defer c.mu.Unlock()
	c.beatErr = err
	if err != nil {
		return err
	}
	now := c.now()
	for n, m := range c.state.members() {
		if n == c.shard || m.Done {
			continue
		}
		if t := m.beat(); now.Sub(t) >= c.cfg.HeartbeatTimeout {
			if _, seen := c.lost[n]; !seen {
				c.lost[n] = t
			}
		} else {
			delete(c.lost, n) // it came back
		}
	}
	return nil
}

// startBeating runs the heartbeat goroutine until stopBeating.
func (c *coord) startBeating(ctx context.Context) {
	ctx, c.stop = context.WithCancel(ctx)
	c.wg.Go(func() {
		t := time.NewTicker(c.cfg.HeartbeatTimeout / 3)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				_ = c.beat(ctx)
			}
		}
	})
}

func (c *coord) stopBeating() {
	if c.stop != nil {
		c.stop()
		c.wg.Wait()
		c.stop = nil
	}
}

// barrier marks this shard ready and waits for the run to start: shard 1
// starts it when every shard is ready or the barrier timeout passes; the
// others wait for that, or for the timeout and a heartbeat more.
func (c *coord) barrier(ctx context.Context, poll time.Duration) error {
	start := c.now()
	c.mu.Lock()
	c.ready = true
	c.mu.Unlock()
	if err := c.beat(ctx); err != nil {
		return fmt.Errorf("announce shard %d ready: %w", c.shard, err)
	}
	deadline := start.Add(c.cfg.BarrierTimeout)
	if c.shard != 1 {
		deadline = deadline.Add(c.cfg.HeartbeatTimeout / 3)
	}
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		st, etag, err := c.read(ctx)
		if err == nil && st.Epoch == c.epoch {
			c.mu.Lock()
			c.state = st
			c.mu.Unlock()
			if st.State == "started" {
				c.missing = parseShardList(st.Missing)
				break
			}
			if c.shard == 1 {
				var missing []int
				ms := st.members()
				for n := 1; n <= c.shards; n++ {
					if e := ms[n]; e == nil || !e.Ready {
						missing = append(missing, n)
					}
				}
				if len(missing) == 0 || !c.now().Before(deadline) {
					fs := map[string]any{"state": "started", "started": c.now().UTC().Format(time.RFC3339Nano), "missing": formatShardList(missing)}
					if err := c.patch(ctx, fs, etag); err != nil {
						if isPrecondition(err) {
							continue
						}
						return fmt.Errorf("start run %s: %w", c.runID, err)
					}
					c.missing = missing
					break
				}
			}
		}
		if c.shard != 1 && !c.now().Before(deadline) {
			break // shard 1 never started the run: play without it
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		}
	}
	c.barrierWait = c.now().Sub(start)
	return nil
}

// finish marks this shard done; the last shard done ends the run, so the
// next run on the twin starts a new epoch.
func (c *coord) finish(ctx context.Context) {
	c.stopBeating()
	c.mu.Lock()
	c.done = true
	c.mu.Unlock()
	if c.beat(ctx) != nil {
		return
	}
	for range 5 {
		st, etag, err := c.read(ctx)
		if err != nil || st.Epoch != c.epoch || st.State == "ended" {
			return
		}
		now := c.now()
		for _, e := range st.members() {
			if !e.Done && now.Sub(e.beat()) < c.cfg.HeartbeatTimeout {
				return // a live shard ends it
			}
		}
		if err := c.patch(ctx, map[string]any{"state": "ended"}, etag); !isPrecondition(err) {
			return
		}
	}
}

// rolloutKey is the key of a rollout's report under tags.fleetsim.ro.
func (c *coord) rolloutKey(id string) string { return fmt.Sprintf("e%d-%s", c.epoch, id) }

// publishRollout writes a rollout's report (compact JSON, see
// compactRollout) for the other shards to read.
func (c *coord) publishRollout(ctx context.Context, id, report string) error {
	err := c.patch(ctx, map[string]any{"ro": map[string]any{c.rolloutKey(id): report}}, "*")
	if err != nil {
		return fmt.Errorf("publish rollout %s on the run's coordination twin: %w", id, err)
	}
	return nil
}

// readRollouts returns the rollout reports shard 1 has published in this
// epoch, by rollout id.
func (c *coord) readRollouts(ctx context.Context) (map[string]string, error) {
	st, _, err := c.read(ctx)
	if err != nil {
		return nil, err
	}
	if st.Epoch != c.epoch {
		return nil, fmt.Errorf("the run's coordination twin %s is at epoch %d, this shard's run is %d", c.device, st.Epoch, c.epoch)
	}
	out := map[string]string{}
	prefix := c.rolloutKey("")
	for k, v := range st.Ro {
		if id, ok := strings.CutPrefix(k, prefix); ok && v != "" {
			out[id] = v
		}
	}
	return out, nil
}

// report says what the run's coordination saw.
func (c *coord) report() *RunReport {
	c.mu.Lock()
	defer c.mu.Unlock()
	r := &RunReport{
		ID: c.runID, Epoch: c.epoch, Shards: c.shards, JobSuffix: c.jobSuffix(),
		MissingAtStart: c.missing, Late: c.late, BarrierWait: Duration(c.barrierWait),
	}
	for n, t := range c.lost {
		r.Lost = append(r.Lost, LostShard{Shard: n, LastHeartbeat: t.UTC()})
	}
	slices.SortFunc(r.Lost, func(a, b LostShard) int { return a.Shard - b.Shard })
	ms := c.state.members()
	for n := 1; n <= c.shards; n++ {
		if e := ms[n]; e != nil {
			r.Peers = append(r.Peers, PeerShard{Shard: n, Host: e.Host, Devices: e.Devices, Connected: e.Connected, Done: e.Done})
		}
	}
	if c.beatErr != nil {
		r.HeartbeatError = c.beatErr.Error()
	}
	return r
}

func formatShardList(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

func parseShardList(s string) []int {
	var out []int
	for f := range strings.SplitSeq(s, ",") {
		if n, err := strconv.Atoi(strings.TrimSpace(f)); err == nil {
			out = append(out, n)
		}
	}
	return out
}

// RunReport is what a sharded run's coordination saw, from this shard.
type RunReport struct {
	// ID is the run id every shard shares; Epoch its generation on the hub.
	ID    string `json:"id"`
	Epoch int    `json:"epoch"`
	// Shards is the run's shard count.
	Shards int `json:"shards"`
	// JobSuffix ends the ids of the run's jobs (unless the scenario pins them).
	JobSuffix string `json:"jobSuffix"`
	// MissingAtStart are the shards that were not ready when shard 1
	// started the timeline (the barrier timed out).
	MissingAtStart []int `json:"missingAtStart,omitempty"`
	// Late says this shard joined after the run had started.
	Late bool `json:"late,omitempty"`
	// BarrierWait is how long this shard waited at the start barrier.
	BarrierWait Duration `json:"barrierWaitMs"`
	// Lost are the shards that stopped heartbeating before they finished.
	Lost []LostShard `json:"lost,omitempty"`
	// Peers are the shards' last announcements this shard read.
	Peers []PeerShard `json:"peers,omitempty"`
	// HeartbeatError is the last heartbeat's error, when it failed.
	HeartbeatError string `json:"heartbeatError,omitempty"`
}

// LostShard is a shard that stopped heartbeating.
type LostShard struct {
	Shard         int       `json:"shard"`
	LastHeartbeat time.Time `json:"lastHeartbeat"`
}

// PeerShard is a shard's announcement on the coordination twin.
type PeerShard struct {
	Shard     int    `json:"shard"`
	Host      string `json:"host,omitempty"`
	Devices   int    `json:"devices"`
	Connected int    `json:"connected"`
	Done      bool   `json:"done"`
}
