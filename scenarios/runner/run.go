package runner

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"math"
	mrand "math/rand/v2"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/fleetsim/fleetsim/devicesim"
	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/internal/iothub"
	"github.com/fleetsim/fleetsim/scenarios"
)

// Options configures Run.
type Options struct {
	// Seed, when set, replaces the scenario's seed.
	Seed *int64
	// Shard and Shards select one slice of the fleet: shard Shard (1-based)
	// of Shards. Shards 0 or 1 runs the whole fleet.
	Shard, Shards int
	// DataDir keeps the hub's stores and certificates; empty runs in memory.
	DataDir string
	// Logger receives the hub's and the runner's logs (default: none).
	Logger zerolog.Logger
	// Progress, when set, receives live snapshots a few times a second and
	// a note for every timeline action. It is called from Run's goroutine:
	// it must return quickly.
	Progress func(Progress)
	// ProgressEvery is the time between snapshots (default 250 ms).
	ProgressEvery time.Duration
	// Remote, when set, plays against that hub instead of an embedded one:
	// the fleet registers there and connects over MQTT, jobs are created
	// through its REST API. With shards, only shard 1 creates and cancels
	// jobs; the other shards bring their devices and judge the same jobs.
	Remote *Remote
}

// ErrBadShard is returned by Run for a shard outside 1..Shards.
var ErrBadShard = errors.New("runner: bad shard")

// bulkChunk is how many devices one registry bulk request creates.
const bulkChunk = 1000

// Run plays a scenario on an embedded hub: it starts the broker, registry,
// jobs engine and REST API, registers the fleet (or this process's shard of
// it), connects it over the in-process transport, plays the timeline, and
// ends when every action has played and every job is terminal (and the fleet
// expectations hold), or when the scenario's duration is up. It then judges
// the expectations and returns the report; the report's Passed says whether
// they all held. The error is for a run that could not happen (a hub that
// did not start, ctx ended); every goroutine Run starts has ended when it
// returns.
func Run(ctx context.Context, sc *scenarios.Scenario, o Options) (*Report, error) {
	if o.Seed != nil {
		sc.Seed = *o.Seed
	}
	shard, shards := 0, 1
	if o.Shards > 1 {
		if o.Shard < 1 || o.Shard > o.Shards {
			return nil, fmt.Errorf("%w: %d of %d (want 1..%d)", ErrBadShard, o.Shard, o.Shards, o.Shards)
		}
		shard, shards = o.Shard-1, o.Shards
	}
	if o.ProgressEvery <= 0 {
		o.ProgressEvery = 250 * time.Millisecond
	}
	indexes := sc.ShardIndexes(shard, shards)
	defer tuneRuntime(len(indexes))()

	p := &player{sc: sc, o: o, shard: shard, shards: shards, indexes: indexes, log: o.Logger}
	p.secret = make([]byte, 32)
	rand.Read(p.secret)
	if o.Remote != nil {
		t, err := newRESTTarget(*o.Remote)
		if err != nil {
			return nil, err
		}
		p.hub = t
		// Keys must be stable across the shards' processes and runs: derive
		// them from the service key and the device id.
		p.secret = []byte(o.Remote.ServiceConnectionString)
		rep, err := p.play(ctx)
		t.c.CloseIdleConnections()
		return p.finish(rep, err)
	}

	st, err := NewStack(StackOptions{
		DataDir:     o.DataDir,
		Pacing:      sc.Hub.Pacing,
		MaxInFlight: sc.Hub.MaxInFlight,
		Logger:      o.Logger,
	})
	if err != nil {
		return nil, err
	}
	hubCtx, stopHub := context.WithCancel(ctx)
	hubDone := make(chan error, 1)
	go func() { hubDone <- st.Run(hubCtx) }()
	if err := waitReady(ctx, st, hubDone); err != nil {
		stopHub()
		if errors.Is(err, context.Canceled) {
			<-hubDone
		}
		return nil, fmt.Errorf("start the hub: %w", err)
	}
	p.hub = stackTarget{st}
	rep, err := p.play(ctx)
	stopHub()
	if herr := <-hubDone; err == nil && herr != nil {
		err = fmt.Errorf("hub: %w", herr)
	}
	return p.finish(rep, err)
}

// finish completes the report of a run.
func (p *player) finish(rep *Report, err error) (*Report, error) {
	if err != nil {
		return nil, err
	}
	if p.shards > 1 {
		rep.Shard = fmt.Sprintf("%d/%d", p.shard+1, p.shards)
	}
	return rep, nil
}

// player plays one scenario on a running stack.
type player struct {
	sc             *scenarios.Scenario
	hub            target
	o              Options
	shard, shards  int
	indexes        []int
	log            zerolog.Logger
	secret         []byte
	fleet          *devicesim.Fleet
	started        time.Time
	jobs           []string // created (or, on other shards, expected), in timeline order
	createErr      map[string]error
	readErr        map[string]error // the last failed read of each job
	lastLat        map[string][2]time.Duration
	waves          sync.WaitGroup
	wavesCtx       context.Context
	wavesCancelled context.CancelFunc
}

// deviceKey derives a device's key from the run's secret.
func (p *player) deviceKey(id string) []byte {
	m := hmac.New(sha256.New, p.secret)
	m.Write([]byte(id))
	return m.Sum(nil)
}

func (p *player) play(ctx context.Context) (*Report, error) {
	p.createErr = map[string]error{}
	p.readErr = map[string]error{}
	p.lastLat = map[string][2]time.Duration{}
	if err := p.register(ctx, false); err != nil {
		return nil, err
	}
	p.fleet = p.newFleet()
	fleetCtx, stopFleet := context.WithCancel(ctx)
	fleetDone := make(chan error, 1)
	p.started = time.Now()
	go func() { fleetDone <- p.fleet.Run(fleetCtx) }()
	p.wavesCtx, p.wavesCancelled = context.WithCancel(ctx)

	err := p.timeline(ctx)
	ended := time.Now()
	var rep *Report
	if err == nil {
		rep = p.report(ctx, ended)
	}
	p.wavesCancelled()
	p.waves.Wait()
	stopFleet()
	if ferr := <-fleetDone; err == nil && ferr != nil && !errors.Is(ferr, context.Canceled) {
		err = fmt.Errorf("fleet: %w", ferr)
	}
	return rep, err
}

// newFleet builds the shard's fleet on the in-process transport.
func (p *player) newFleet() *devicesim.Fleet {
	tr := p.hub.transport()
	host := p.hub.hostname()
	return devicesim.NewFleet(devicesim.FleetConfig{
		Count: len(p.indexes),
		Generate: func(i int) devicesim.DeviceConfig {
			d := p.sc.Device(p.indexes[i])
			return devicesim.DeviceConfig{
				Identity:  devicesim.Identity{DeviceID: d.ID, Key: p.deviceKey(d.ID), Hostname: host},
				Transport: tr,
				Behavior:  d.Behavior,
				Seed:      p.sc.Seed,
			}
		},
		Logger: p.log.With().Str("component", "fleet").Logger(),
	})
}

// register creates the shard's devices with their tags and keys. With keep,
// devices that exist already are left as they are (a served hub restarting
// on its data directory keeps what jobs changed); without, they are
// updated to the scenario's tags and the run's keys.
func (p *player) register(ctx context.Context, keep bool) error {
	mode := "update" // creates missing devices too
	if keep {
		mode = "create"
	}
	ops := make([]registry.ExportImportDevice, 0, bulkChunk)
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		res, err := p.hub.bulk(ctx, ops)
		if err != nil {
			return fmt.Errorf("register devices: %w", err)
		}
		for _, e := range res.Errors {
			if keep && e.ErrorCode == iothub.CodeDeviceAlreadyExists.Name {
				continue
			}
			return fmt.Errorf("register devices: %s: %s", e.DeviceID, e.ErrorStatus)
		}
		ops = ops[:0]
		return nil
	}
	for d := range p.sc.DeviceSpecs(p.shard, p.shards) {
		key := base64.StdEncoding.EncodeToString(p.deviceKey(d.ID))
		ops = append(ops, registry.ExportImportDevice{
			ID:         d.ID,
			ImportMode: mode,
			Authentication: &registry.Authentication{
				Type:         "sas",
				SymmetricKey: registry.SymmetricKey{PrimaryKey: key, SecondaryKey: key},
			},
			Tags: d.Tags,
		})
		if len(ops) == bulkChunk {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// timeline plays the actions and waits for the end of the run.
func (p *player) timeline(ctx context.Context) error {
	actions := p.sc.Actions()
	next := 0
	tick := time.NewTicker(p.o.ProgressEvery)
	defer tick.Stop()
	end := p.started.Add(p.sc.Duration)
	for {
		elapsed := time.Since(p.started)
		for next < len(actions) && actions[next].When() <= elapsed {
			p.do(ctx, actions[next])
			next++
		}
		if next == len(actions) && p.settled(ctx) {
			p.progress(ctx, "")
			return nil
		}
		if !time.Now().Before(end) {
			p.progress(ctx, fmt.Sprintf("T+%s: the scenario's duration is up", p.sc.Duration))
			return nil
		}
		wait := time.Until(end)
		if next < len(actions) {
			wait = min(wait, actions[next].When()-elapsed)
		}
		timer := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			timer.Stop()
			return ctx.Err()
		case <-tick.C:
			p.progress(ctx, "")
		case <-timer.C:
		}
		timer.Stop()
	}
}

// settled reports whether every created job is terminal and the fleet
// expectations hold. A job that cannot be read is never done: it may not
// be created by shard 1 yet, or the hub may not answer for now (the REST
// client has already retried); the next tick asks again.
func (p *player) settled(ctx context.Context) bool {
	for _, id := range p.jobs {
		j, err := p.hub.job(ctx, id)
		if err != nil {
			p.readErr[id] = err
			return false
		}
		delete(p.readErr, id)
		if !j.Status.Terminal() {
			return false
		}
	}
	for _, e := range p.sc.Expectations {
		if e.Job == "" && e.MinConnected > 0 && p.connectedFraction() < e.MinConnected {
			return false
		}
	}
	return true
}

func (p *player) connectedFraction() float64 {
	if p.fleet.Len() == 0 {
		return 1
	}
	return float64(p.fleet.Connected()) / float64(p.fleet.Len())
}

// do plays one action.
func (p *player) do(ctx context.Context, a scenarios.Action) {
	note := fmt.Sprintf("T+%s: %s", a.When(), a)
	switch a := a.(type) {
	case scenarios.JobAction:
		if !p.leads() {
			p.jobs = append(p.jobs, a.JobID)
			note += " (by shard 1)"
			break
		}
		err := p.hub.createJob(ctx, a.Request(time.Now()))
		if err != nil {
			p.createErr[a.JobID] = err
			note += ": " + err.Error()
			p.log.Warn().Err(err).Str("job", a.JobID).Msg("job not created")
			break
		}
		p.jobs = append(p.jobs, a.JobID)
	case scenarios.CancelAction:
		if !p.leads() {
			note += " (by shard 1)"
			break
		}
		if err := p.hub.cancelJob(ctx, a.JobID); err != nil {
			note += ": " + err.Error()
		}
	case scenarios.DisconnectAction:
		n := p.disconnect(ctx, a.Selection, a.For)
		note += fmt.Sprintf(": %d devices dropped", n)
	case scenarios.ConnectStormAction:
		n := p.disconnect(ctx, a.Selection, nil)
		note += fmt.Sprintf(": %d devices dropped", n)
	}
	p.progress(ctx, note)
}

// disconnect drops the selected devices of this shard. With a distribution
// each device is refused (disabled in the registry) for a sampled time, then
// enabled again; without one it may reconnect at once (a connect storm).
func (p *player) disconnect(ctx context.Context, sel scenarios.Selection, away devicesim.Distribution) int {
	var ids []string
	for d := range p.sc.DeviceSpecs(p.shard, p.shards) {
		if sel.Selects(p.sc.Seed, d) {
			ids = append(ids, d.ID)
		}
	}
	if away == nil {
		dropped := 0
		for _, id := range ids {
			if p.hub.drop(id) {
				dropped++
			}
		}
		if dropped == len(ids) {
			return len(ids)
		}
		// A remote hub cannot drop a connection: refuse the devices for a
		// moment instead, which drops them.
		away = devicesim.Constant(time.Second)
	}
	rng := mrand.New(mrand.NewPCG(uint64(p.sc.Seed), uint64(time.Since(p.started))))
	for _, id := range ids {
		if err := p.hub.setEnabled(ctx, id, false); err != nil {
			continue
		}
		d := away.Sample(rng)
		p.waves.Add(1)
		go func() {
			defer p.waves.Done()
			t := time.NewTimer(d)
			defer t.Stop()
			select {
			case <-t.C:
			case <-p.wavesCtx.Done():
			}
			// Enable again even when the run ends, so a persistent hub
			// (a data directory) does not keep the device disabled.
			_ = p.hub.setEnabled(context.WithoutCancel(p.wavesCtx), id, true)
		}()
	}
	return len(ids)
}

// leads says this process creates and cancels the timeline's jobs: the only
// shard, or shard 1 of several.
func (p *player) leads() bool { return p.shard == 0 }

// progress sends a snapshot.
func (p *player) progress(ctx context.Context, note string) {
	if p.o.Progress == nil {
		return
	}
	pr := Progress{
		Elapsed:   time.Since(p.started),
		Devices:   p.fleet.Len(),
		Connected: p.fleet.Connected(),
		Note:      note,
	}
	for _, id := range p.jobs {
		j, err := p.hub.job(ctx, id)
		if err != nil {
			continue
		}
		s := j.DeviceJobStatistics
		jp := JobProgress{
			JobID: id, Status: string(j.Status), DeviceCount: s.DeviceCount,
			Pending: s.PendingCount, Running: s.RunningCount, Succeeded: s.SucceededCount, Failed: s.FailedCount,
		}
		if since := time.Since(j.StartTime); j.Status != hubjobs.StatusScheduled && since > 0 {
			if j.EndTime != nil {
				since = j.EndTime.Sub(j.StartTime)
			}
			jp.OpsPerSecond = float64(s.SucceededCount+s.FailedCount) / since.Seconds()
		}
		jp.P50, jp.P99 = p.liveLatency(ctx, j)
		pr.Jobs = append(pr.Jobs, jp)
	}
	p.o.Progress(pr)
}

// liveLatencyMax bounds the jobs whose latency progress reports compute
// from the device records while they run.
const liveLatencyMax = 20000

// liveLatency returns a job's p50 and p99 so far, recomputed for jobs small
// enough and kept once the job is terminal.
func (p *player) liveLatency(ctx context.Context, j hubjobs.Job) (time.Duration, time.Duration) {
	last, seen := p.lastLat[j.JobID]
	if (seen && j.Status.Terminal()) || j.DeviceJobStatistics.DeviceCount > liveLatencyMax || !p.hub.local() {
		return last[0], last[1]
	}
	rows, _ := p.hub.rows(ctx, j.JobID)
	var lats []time.Duration
	for _, r := range rows {
		if !r.End.IsZero() && !r.Start.IsZero() {
			lats = append(lats, r.End.Sub(r.Start))
		}
	}
	slices.Sort(lats)
	v := [2]time.Duration{percentile(lats, 0.50), percentile(lats, 0.99)}
	p.lastLat[j.JobID] = v
	return v[0], v[1]
}

// outcomeOf reads one devices.jobs row.
func outcomeOf(doc map[string]any) deviceOutcome {
	str := func(m map[string]any, k string) string { s, _ := m[k].(string); return s }
	tm := func(k string) time.Time {
		t, _ := time.Parse(time.RFC3339Nano, str(doc, k))
		return t
	}
	o := deviceOutcome{DeviceID: str(doc, "deviceId"), Status: str(doc, "status"), Start: tm("startTimeUtc"), End: tm("endTimeUtc")}
	if out, ok := doc["outcome"].(map[string]any); ok {
		if resp, ok := out["deviceMethodResponse"].(map[string]any); ok {
			if s, ok := resp["status"].(float64); ok && s == math.Trunc(s) {
				o.HasResponse, o.DeviceCode = true, int(s)
			}
		}
	}
	if e, ok := doc["error"].(map[string]any); ok {
		o.ErrorCode, o.ErrorDesc = str(e, "code"), str(e, "description")
	}
	return o
}

// report builds the final report from the engine's records.
func (p *player) report(ctx context.Context, ended time.Time) *Report {
	fs := p.fleet.Stats()
	rep := &Report{
		Scenario:    p.sc.Name(),
		Description: p.sc.Description(),
		Seed:        p.sc.Seed,
		Pacing:      p.sc.Hub.Profile.Name,
		Started:     p.started.UTC(),
		Ended:       ended.UTC(),
		Duration:    Duration(ended.Sub(p.started)),
		Devices:     p.fleet.Len(),
		Fleet: FleetSummary{
			ConnectedAtEnd:  fs.Connected,
			Connects:        fs.Connects,
			Disconnects:     fs.Disconnects,
			MethodCalls:     fs.MethodCalls,
			DesiredPatches:  fs.DesiredPatches,
			ReportedUpdates: fs.ReportedSent,
			Telemetry:       fs.TelemetrySent,
			DroppedEvents:   fs.EventsDropped + fs.QueueDropped,
		},
		Passed: true,
	}
	if rep.Pacing == "" {
		rep.Pacing = p.sc.Hub.Pacing
	}
	byID := map[string]*JobReport{}
	for _, id := range p.jobs {
		jr, err := p.jobReport(ctx, id)
		if err != nil {
			p.readErr[id] = err
			continue
		}
		rep.Jobs = append(rep.Jobs, *jr)
	}
	for i := range rep.Jobs {
		byID[rep.Jobs[i].JobID] = &rep.Jobs[i]
	}
	for _, e := range p.sc.Expectations {
		var results []ExpectationResult
		if e.Job == "" {
			frac := p.connectedFraction()
			results = []ExpectationResult{{
				Description: fmt.Sprintf("at least %.1f%% of the fleet is connected at the end", e.MinConnected*100),
				Passed:      frac >= e.MinConnected,
				Detail:      fmt.Sprintf("%d of %d connected (%.1f%%)", p.fleet.Connected(), p.fleet.Len(), frac*100),
			}}
		} else {
			results = judgeJob(jobExpectation{
				JobID: e.Job, Status: e.Status, Within: e.Within, TakesAtLeast: e.TakesAtLeast,
				MinSuccessRate: e.MinSuccessRate, MaxP99Latency: e.MaxP99Latency, MinSucceeded: e.MinSucceeded,
				MaxFailed: e.MaxFailed, MinDevices: e.MinDevices,
			}, byID[e.Job])
			if byID[e.Job] == nil {
				if err := p.createErr[e.Job]; err != nil {
					results[0].Detail = "the job was not created: " + err.Error()
				} else if err := p.readErr[e.Job]; err != nil && (p.leads() || !errors.Is(err, &iothub.Error{Code: iothub.CodeJobNotFound})) {
					results[0].Detail = "the job could not be read: " + err.Error()
				}
			}
		}
		for _, r := range results {
			rep.Passed = rep.Passed && r.Passed
		}
		rep.Expectations = append(rep.Expectations, results...)
	}
	return rep
}

// jobReport builds one job's report, or says why the job could not be read.
func (p *player) jobReport(ctx context.Context, id string) (*JobReport, error) {
	j, err := p.hub.job(ctx, id)
	if err != nil {
		return nil, err
	}
	s := j.DeviceJobStatistics
	jr := &JobReport{
		JobID: id, Type: string(j.Type), Condition: j.QueryCondition, Status: string(j.Status),
		FailureReason: j.FailureReason, Created: j.CreatedTime, Started: j.StartTime,
		DeviceCount: s.DeviceCount, Succeeded: s.SucceededCount, Failed: s.FailedCount,
		Running: s.RunningCount, Pending: s.PendingCount,
	}
	if j.CloudToDeviceMethod != nil {
		jr.Method = j.CloudToDeviceMethod.MethodName
	}
	if j.EndTime != nil {
		jr.Ended = *j.EndTime
	}
	rows, err := p.hub.rows(ctx, id)
	if err != nil {
		p.log.Warn().Err(err).Str("job", id).Msg("device job records unavailable")
	}
	jr.Latency, jr.Failures, jr.DeviceStatuses, jr.Completion, jr.OpsPerSecond = jobFigures(j.StartTime, rows)
	return jr, nil
}
