package runner

import (
	"cmp"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	mrand "math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/fleetsim/fleetsim/devicesim"
	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/internal/iothub"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
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
	// ConsoleAddr, when set, serves the embedded hub's HTTPS listener there
	// (the REST API and the web console) for the length of the run.
	ConsoleAddr string
	// ConsoleReady, when set, is called once with the console's one-time
	// login URL when the hub is up (only with ConsoleAddr).
	ConsoleReady func(loginURL string)
	// Remote, when set, plays against that hub instead of an embedded one:
	// the fleet registers there and connects over MQTT, jobs are created
	// through its REST API. With shards, only shard 1 creates and cancels
	// jobs; the other shards bring their devices and judge the same jobs.
	Remote *Remote
	// Run is how the shards of a remote run meet on the hub (run id, start
	// barrier, heartbeats); see coord.go.
	Run Coordination
	// DeviceCA, when set, signs the certificates of the fleet's
	// certificateAuthority groups. An embedded hub trusts it; a remote hub
	// must trust it already (fleetsim serve --trust-ca, or a CA certificate
	// uploaded and verified on an IoT hub). Without it an embedded run
	// keeps a CA in DataDir/device-ca, or makes one for the run.
	DeviceCA *tlsutil.DeviceCA
}

// ErrBadShard is returned by Run for a shard outside 1..Shards.
var ErrBadShard = errors.New("runner: bad shard")

// bulkChunk is how many devices one registry bulk request creates.
const bulkChunk = 1000

// FleetSize is the number of simulated devices Run brings online in this
// process for sc and o (this shard's slice of the fleet), so that the command
// can size the process's runtime settings before it starts.
func FleetSize(sc *scenarios.Scenario, o Options) int {
	shard, shards := 0, 1
	if o.Shards > 1 && o.Shard >= 1 && o.Shard <= o.Shards {
		shard, shards = o.Shard-1, o.Shards
	}
	return len(sc.ShardIndexes(shard, shards))
}

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

	p := &player{sc: sc, o: o, shard: shard, shards: shards, indexes: indexes, log: o.Logger}
	p.secret = make([]byte, 32)
	rand.Read(p.secret)
	if o.Remote != nil {
		t, err := newRESTTarget(*o.Remote)
		if err != nil {
			return nil, err
		}
		if err := checkRemoteX509(sc, o.DeviceCA, t.mqtt); err != nil {
			return nil, err
		}
		p.ca = o.DeviceCA
		p.hub = t
		// Keys must be stable across the shards' processes and runs: derive
		// them from the service key and the device id.
		p.secret = []byte(o.Remote.ServiceConnectionString)
		p.coord = newCoord(t.c, o.Run, RunID(o.Run.RunID, sc.Name(), sc.Seed, o.Run.Getenv), shard+1, shards, len(indexes), p.connectedNow)
		rep, err := p.play(ctx)
		t.c.CloseIdleConnections()
		return p.finish(rep, err)
	}

	st, err := hubjobs.New(hubjobs.Config{
		DataDir:     o.DataDir,
		HTTPSAddr:   o.ConsoleAddr,
		Pacing:      sc.Hub.Pacing,
		MaxInFlight: sc.Hub.MaxInFlight,
		Logger:      o.Logger,
	})
	if err != nil {
		return nil, err
	}
	if o.ConsoleAddr != "" {
		p.lv = newLiveScenario(sc, "run", len(indexes))
		st.Console.SetScenario(p.lv)
	}
	// The hub outlives an interruption until the partial report is read.
	hubCtx, stopHub := context.WithCancel(context.WithoutCancel(ctx))
	hubDone := make(chan error, 1)
	go func() { hubDone <- st.Run(hubCtx) }()
	if err := waitReady(ctx, st, hubDone); err != nil {
		stopHub()
		if errors.Is(err, context.Canceled) {
			<-hubDone
		}
		return nil, fmt.Errorf("start the hub: %w", err)
	}
	if o.ConsoleReady != nil && o.ConsoleAddr != "" {
		o.ConsoleReady(st.Endpoints().ConsoleLoginURL)
	}
	p.hub = stackTarget{st}
	if p.ca, err = fleetCA(sc, o.DeviceCA, o.DataDir); err == nil && p.ca != nil {
		st.TrustCA(p.ca.Cert)
	}
	var rep *Report
	if err != nil {
		err = fmt.Errorf("device CA: %w", err)
	} else {
		rep, err = p.play(ctx)
	}
	stopHub()
	if herr := <-hubDone; err == nil && herr != nil {
		err = fmt.Errorf("hub: %w", herr)
	}
	return p.finish(rep, err)
}

// finish completes the report of a run. An interrupted run returns its
// partial report with ctx's error.
func (p *player) finish(rep *Report, err error) (*Report, error) {
	if rep == nil {
		return nil, err
	}
	if p.shards > 1 {
		rep.Shard = fmt.Sprintf("%d/%d", p.shard+1, p.shards)
	}
	return rep, err
}

// reportTimeout bounds reading the partial report of an interrupted run.
const reportTimeout = 15 * time.Second

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
	fleetStarted   time.Time // when the fleet began connecting; started moves to the barrier's end on a shard
	jobs           []string  // created (or, on other shards, expected), in timeline order
	createErr      map[string]error
	finalRows      map[string][]deviceOutcome
	readErr        map[string]error // the last failed read of each job
	waves          sync.WaitGroup   // one goroutine per disconnect wave
	waveCount      int              // disconnect waves played so far
	wavesCtx       context.Context
	wavesCancelled context.CancelFunc
	settle         settleState
	states         []*stateCheck
	lastState      time.Time
	jobStarts      map[string]map[string]time.Time // job → device → its device job's start
	jobLocalOK     map[string]int                  // job → its completed devices simulated here
	local          map[string]bool                 // ids of the devices simulated here
	coord          *coord                          // a remote run's coordination, else nil
	remote         remoteSettings                  // the remote hub's settings, as read
	endNotes       []string                        // jobs still running at the end
	ro             rollouts                        // the timeline's rollouts
	lv             *liveScenario                   // the console's view of the run, or nil
	played         int                             // timeline actions played so far
	ca             *tlsutil.DeviceCA               // signs the certificateAuthority devices' certificates
	certs          map[string]*tls.Certificate     // the X.509 devices' certificates, by id
}

// deviceKey derives a device's key from the run's secret.
func (p *player) deviceKey(id string) []byte {
	m := hmac.New(sha256.New, p.secret)
	m.Write([]byte(id))
	return m.Sum(nil)
}

func (p *player) play(ctx context.Context) (*Report, error) {
	p.createErr = map[string]error{}
	p.finalRows = map[string][]deviceOutcome{}
	p.readErr = map[string]error{}
	p.jobStarts = map[string]map[string]time.Time{}
	p.jobLocalOK = map[string]int{}
	for _, e := range p.sc.Expectations {
		if e.DeviceState != nil {
			p.states = append(p.states, &stateCheck{exp: e})
		}
	}
	if p.coord != nil {
		// Claim the shard before registering: a duplicate is refused
		// before it touches the fleet.
		if err := p.coord.join(ctx); err != nil {
			return nil, err
		}
		p.remote = readRemoteSettings(ctx, p.hub)
	}
	if err := p.register(ctx, false); err != nil {
		return nil, err
	}
	p.fleet = p.newFleet()
	// The fleet stays up through an interruption until the partial report
	// has read its state.
	fleetCtx, stopFleet := context.WithCancel(context.WithoutCancel(ctx))
	fleetDone := make(chan error, 1)
	p.started = time.Now()
	p.fleetStarted = p.started
	p.lv.start(p.started, "playing")
	go func() { fleetDone <- p.fleet.Run(fleetCtx) }()
	p.wavesCtx, p.wavesCancelled = context.WithCancel(ctx)

	err := p.meet(ctx)
	if err == nil {
		err = p.timeline(ctx)
	}
	ended := time.Now()
	if err == nil {
		p.endJobs(ctx)
	}
	p.stopRollouts()
	var rep *Report
	switch {
	case err == nil:
		rep = p.report(ctx, ended)
	case ctx.Err() != nil && errors.Is(err, ctx.Err()):
		// Interrupted: judge what happened so far, with a context of its own.
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reportTimeout)
		rep = p.report(rctx, ended)
		cancel()
		rep.Interrupted, rep.Passed = true, false
	}
	if rep != nil {
		p.remoteReport(rep)
	}
	p.lv.end(rep)
	if p.coord != nil {
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reportTimeout)
		p.coord.finish(fctx)
		cancel()
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
	if len(p.certs) > 0 {
		tr.TLSConfig = devicesim.FleetCertificateConfig(tr.TLSConfig)
	}
	host := p.hub.hostname()
	return devicesim.NewFleet(devicesim.FleetConfig{
		Count: len(p.indexes),
		Generate: func(i int) devicesim.DeviceConfig {
			d := p.sc.Device(p.indexes[i])
			id := devicesim.Identity{DeviceID: d.ID, Hostname: host}
			if id.Certificate = p.certs[d.ID]; id.Certificate == nil {
				id.Key = p.deviceKey(d.ID)
			}
			return devicesim.DeviceConfig{
				Identity:  id,
				Transport: tr,
				Behavior:  d.Behavior,
				Seed:      p.sc.Seed,
			}
		},
		Logger: p.log.With().Str("component", "fleet").Logger(),
	})
}

// register creates the shard's devices with their tags and keys, with
// calls that work on a real IoT hub as on fleetsim: a bulk create, then, for
// the devices that exist already (DeviceAlreadyExists), either nothing
// (keep: a served hub restarting on its data directory keeps what jobs
// changed) or a bulk update of those devices to the scenario's tags and the
// run's keys. IoT Hub's update of a missing device is DeviceNotFound, so
// update alone cannot register a fleet.
func (p *player) register(ctx context.Context, keep bool) error {
	ops := make([]hubjobs.ExportImportDevice, 0, bulkChunk)
	var pending []pendingCert
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		defer func() { ops, pending = ops[:0], pending[:0] }()
		if err := p.x509Auths(ops, pending); err != nil {
			return fmt.Errorf("register devices: %w", err)
		}
		res, err := p.hub.bulk(ctx, ops)
		if err != nil {
			return fmt.Errorf("register devices: %w", err)
		}
		exists := map[string]bool{}
		for _, e := range res.Errors {
			if e.ErrorCode != iothub.CodeDeviceAlreadyExists.Name {
				return fmt.Errorf("register devices: %s: %s: %s", e.DeviceID, e.ErrorCode, e.ErrorStatus)
			}
			exists[e.DeviceID] = true
		}
		if len(exists) == 0 {
			return nil
		}
		var updates []hubjobs.ExportImportDevice
		for _, op := range ops {
			if !exists[op.ID] {
				continue
			}
			op.ImportMode = "update"
			if keep {
				// Only the certificates are new: the tags stay as jobs
				// left them.
				if op.Authentication.Type == "sas" {
					continue
				}
				op.Tags = nil
			}
			updates = append(updates, op)
		}
		if len(updates) == 0 {
			return nil
		}
		if res, err = p.hub.bulk(ctx, updates); err != nil {
			return fmt.Errorf("update registered devices: %w", err)
		}
		if len(res.Errors) > 0 {
			e := res.Errors[0]
			return fmt.Errorf("update registered devices: %s: %s: %s", e.DeviceID, e.ErrorCode, e.ErrorStatus)
		}
		return nil
	}
	for d := range p.sc.DeviceSpecs(p.shard, p.shards) {
		var auth *hubjobs.Authentication
		if d.Auth.X509() {
			// Made for the whole chunk at once, on every core.
			pending = append(pending, pendingCert{len(ops), d})
		} else {
			key := base64.StdEncoding.EncodeToString(p.deviceKey(d.ID))
			auth = &hubjobs.Authentication{
				Type:         "sas",
				SymmetricKey: hubjobs.SymmetricKey{PrimaryKey: key, SecondaryKey: key},
			}
		}
		ops = append(ops, hubjobs.ExportImportDevice{
			ID:             d.ID,
			ImportMode:     "create",
			Authentication: auth,
			Tags:           d.Tags,
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
		p.checkStates(ctx, false)
		p.judgeLive(ctx, time.Now())
		if next == len(actions) && p.settled(ctx) {
			p.lv.setPhase("settling")
			if note, done := p.settle.devices(p.fleet, time.Since(p.started)); done {
				p.progress(ctx, note)
				return nil
			} else if note != "" {
				p.progress(ctx, note)
			}
		} else {
			p.settle.notDone()
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
	if !p.rolloutsSettled(ctx) {
		return false
	}
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
		id := p.jobID(a.JobID)
		if !p.leads() {
			p.jobs = append(p.jobs, id)
			note += " (by shard 1)"
			break
		}
		req := a.Request(time.Now())
		req.JobID = id
		req.QueryCondition = p.condition(req.QueryCondition)
		err := p.hub.createJob(ctx, req)
		if err != nil {
			p.createErr[id] = err
			note += ": " + err.Error()
			p.log.Warn().Err(err).Str("job", id).Msg("job not created")
			break
		}
		p.jobs = append(p.jobs, id)
	case scenarios.CancelAction:
		if !p.leads() {
			note += " (by shard 1)"
			break
		}
		if err := p.hub.cancelJob(ctx, p.jobID(a.JobID)); err != nil {
			note += ": " + err.Error()
		}
	case scenarios.DisconnectAction:
		n := p.disconnect(ctx, a.Selection, a.For)
		note += fmt.Sprintf(": %d devices dropped", n)
	case scenarios.ConnectStormAction:
		n := p.disconnect(ctx, a.Selection, nil)
		note += fmt.Sprintf(": %d devices dropped", n)
	case scenarios.C2DAction:
		note += p.sendC2D(ctx, a)
	case scenarios.RolloutAction:
		if !p.leads() {
			p.awaitElsewhere(a)
			note += " (by shard 1)"
			break
		}
		note += p.startRollout(ctx, a)
	}
	p.lv.stepDone(p.played, a, time.Since(p.started), note)
	p.played++
	p.progress(ctx, note)
}

// disconnect drops the selected devices of this shard. With a distribution
// each device is refused (disabled in the registry) for a sampled time, then
// enabled again; without one it may reconnect at once (a connect storm).
func (p *player) disconnect(ctx context.Context, sel scenarios.Selection, away devicesim.Distribution) int {
	wave := p.waveCount
	p.waveCount++
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
	plan := rejoinPlan(p.sc.Seed, wave, ids, away)
	down := plan[:0:0]
	for _, r := range plan {
		if err := p.hub.setEnabled(ctx, r.id, false); err == nil {
			down = append(down, r)
		}
	}
	if len(down) > 0 {
		p.waves.Go(func() { p.rejoin(down) })
	}
	return len(ids)
}

// rejoin is one wave's goroutine: it enables its devices again, each after
// its away time from now, in plan order. Devices are enabled again even
// when the run ends, at once, so a persistent hub (a data directory) does
// not keep them disabled.
func (p *player) rejoin(plan []rejoiner) {
	start := time.Now()
	var t *time.Timer
	for _, r := range plan {
		if wait := time.Until(start.Add(r.after)); wait > 0 && p.wavesCtx.Err() == nil {
			if t == nil {
				t = time.NewTimer(wait)
			} else {
				t.Reset(wait)
			}
			select {
			case <-t.C:
			case <-p.wavesCtx.Done():
			}
		}
		_ = p.hub.setEnabled(context.WithoutCancel(p.wavesCtx), r.id, true)
	}
	if t != nil {
		t.Stop()
	}
}

// rejoiner is a dropped device and how long it stays away.
type rejoiner struct {
	id    string
	after time.Duration
}

// rejoinPlan draws each device's away time from a generator seeded by the
// scenario's seed, the wave's ordinal in the run and the device id, so the
// same seed drops the same devices for the same times on every run and in
// every shard. The plan is sorted by away time, then id.
func rejoinPlan(seed int64, wave int, ids []string, away devicesim.Distribution) []rejoiner {
	plan := make([]rejoiner, len(ids))
	waveSeed := uint64(seed) ^ (uint64(wave)+1)*0x9e3779b97f4a7c15
	for i, id := range ids {
		h := fnv.New64a()
		h.Write([]byte(id))
		rng := mrand.New(mrand.NewPCG(waveSeed, h.Sum64()))
		plan[i] = rejoiner{id: id, after: away.Sample(rng)}
	}
	slices.SortFunc(plan, func(a, b rejoiner) int {
		if c := cmp.Compare(a.after, b.after); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	return plan
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
		Elapsed:     time.Since(p.started),
		Devices:     p.fleet.Len(),
		Connected:   p.fleet.Connected(),
		Note:        note,
		Settling:    !p.settle.jobsDone.IsZero(),
		Settled:     !p.settle.settled.IsZero(),
		Outstanding: p.fleet.Outstanding(),
		DeviceSide:  runDeviceSide(p.fleet.Stats(), nil),
	}
	for _, id := range p.jobs {
		j, err := p.hub.job(ctx, id)
		if err != nil {
			continue
		}
		rows, ok := p.liveRows(ctx, j)
		pr.Jobs = append(pr.Jobs, liveJob(j, rows, ok, time.Now()))
	}
	p.o.Progress(pr)
}

// liveRowsMax bounds the jobs whose device records progress reads while
// they run.
const liveRowsMax = 20000

// liveRows returns a job's device records for the live figures, read again
// while the job runs and kept once read after it ended; false when the job
// is too large to read a few times a second, or the hub is remote.
func (p *player) liveRows(ctx context.Context, j hubjobs.Job) ([]deviceOutcome, bool) {
	if last, seen := p.finalRows[j.JobID]; seen {
		return last, true
	}
	if j.DeviceJobStatistics.DeviceCount > liveRowsMax || !p.hub.local() {
		return nil, false
	}
	rows, err := p.hub.rows(ctx, j.JobID)
	if err != nil {
		return nil, false
	}
	if j.Status.Terminal() {
		// Read after the job's status said it ended: these are its last.
		p.finalRows[j.JobID] = rows
	}
	return rows, true
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
	p.local = make(map[string]bool, p.fleet.Len())
	for _, d := range p.fleet.Devices() {
		p.local[d.ID()] = true
	}
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
	if at := p.fleet.AllConnectedAt(); !at.IsZero() {
		rep.Fleet.AllConnected = Duration(at.Sub(p.fleetStarted))
	}
	rep.Settle = p.settle.summary(p.fleet.Outstanding(), p.sc.Duration)
	if rep.Pacing == "" {
		rep.Pacing = p.sc.Hub.Pacing
	}
	rep.Rollouts = p.rolloutReports(ctx)
	byID := map[string]*JobReport{}
	for _, id := range p.jobs {
		jr, err := p.jobReport(ctx, id)
		if err != nil {
			p.readErr[id] = err
			continue
		}
		rep.Jobs = append(rep.Jobs, *jr)
	}
	p.deviceSide(rep, fs)
	for i := range rep.Jobs {
		byID[rep.Jobs[i].JobID] = &rep.Jobs[i]
	}
	rep.Warnings = append(rep.Warnings, warnings(rep.Jobs)...)
	p.checkStates(ctx, true)
	states := p.states
	for _, e := range p.sc.Expectations {
		var results []ExpectationResult
		if e.DeviceState != nil {
			results = append(results, judgeState(states[0]))
			states = states[1:]
		}
		switch {
		case e.Job == "" && e.MinConnected == 0 && e.DeviceState != nil:
		case e.Job == "":
			// The same reading as the fleet summary's connectedAtEnd.
			frac := 1.0
			if rep.Devices > 0 {
				frac = float64(fs.Connected) / float64(rep.Devices)
			}
			results = append(results, ExpectationResult{
				Description: fmt.Sprintf("at least %.1f%% of the fleet is connected at the end", e.MinConnected*100),
				Passed:      frac >= e.MinConnected,
				Detail:      fmt.Sprintf("%d of %d connected (%.1f%%)", fs.Connected, rep.Devices, frac*100),
			})
		default:
			id := p.jobID(e.Job)
			jr := judgeJob(jobExpectation{
				JobID: id, Status: e.Status, Within: e.Within, TakesAtLeast: e.TakesAtLeast,
				MinSuccessRate: e.MinSuccessRate, MaxP99Latency: e.MaxP99Latency, MinSucceeded: e.MinSucceeded,
				MaxFailed: e.MaxFailed, MinDevices: e.MinDevices,
				MinAckRate: e.MinAckRate, MaxAckP99: e.MaxAckP99, MaxPhaseFailures: e.MaxPhaseFailures, MaxRollbacks: e.MaxRollbacks,
			}, byID[id])
			if byID[id] == nil {
				if err := p.createErr[id]; err != nil {
					jr[0].Detail = "the job was not created: " + err.Error()
				} else if err := p.readErr[id]; err != nil && (p.leads() || !errors.Is(err, &iothub.Error{Code: iothub.CodeJobNotFound})) {
					jr[0].Detail = "the job could not be read: " + err.Error()
				}
			}
			results = append(results, jr...)
		}
		for _, r := range results {
			rep.Passed = rep.Passed && r.Passed
		}
		rep.Expectations = append(rep.Expectations, results...)
	}
	for _, e := range p.sc.RolloutExpectations {
		r := judgeRollout(e, rep.Rollouts)
		rep.Passed = rep.Passed && r.Passed
		rep.Expectations = append(rep.Expectations, r)
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
	starts := make(map[string]time.Time, len(rows))
	for _, r := range rows {
		starts[r.DeviceID] = r.Start
		if r.Status == "completed" && p.local[r.DeviceID] {
			p.jobLocalOK[id]++
		}
	}
	p.jobStarts[id] = starts
	jr.Latency, jr.Failures, jr.DeviceStatuses, jr.Completion, jr.OpsPerSecond = jobFigures(j.StartTime, rows)
	return jr, nil
}

// waitReady waits for the hub, or returns why it will not be ready.
func waitReady(ctx context.Context, s *hubjobs.Hub, errc <-chan error) error {
	select {
	case <-s.Ready():
		return nil
	case err := <-errc:
		if err == nil {
			err = errors.New("hub stopped before it was ready")
		}
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Minute):
		return errors.New("hub not ready after a minute")
	}
}
