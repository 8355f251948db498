package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fleetsim/fleetsim/scenarios"
	"github.com/fleetsim/fleetsim/scenarios/rollout"
)

// RolloutReport is what a rollout of the timeline did: each stage with its
// jobs and gate figures, and the rule that stopped it.
type RolloutReport struct {
	// ID is the scenario's id of the rollout; HubID, when it differs, the
	// id the rollout had on the hub (a sharded or remote run adds the run's
	// suffix, as to its jobs), which names its jobs.
	ID     string `json:"id"`
	HubID  string `json:"hubId,omitempty"`
	Status string `json:"status"`
	Reason string `json:"reason,omitempty"`
	// Touched is the number of devices the stage jobs reached.
	Touched int `json:"touched"`
	// StoppedAt is the stage at which an aborted or stopped rollout stopped.
	StoppedAt string               `json:"stoppedAt,omitempty"`
	Stages    []RolloutStageReport `json:"stages"`
	Abort     *RolloutAbortReport  `json:"abort,omitempty"`
	// Rollback is the rollback job, when one ran.
	Rollback *RolloutJobReport `json:"rollback,omitempty"`
	// Events are the rollout's history, one line each.
	Events []RolloutEventReport `json:"events"`
	// Converged99 is the time from the rollout's start until 99 % of its
	// population matched the plan's convergence condition (gates.converge.match),
	// sampled while the run lasted; absent when the plan has no such
	// condition or the fleet never got there.
	Converged99 *Duration `json:"converged99Ms,omitempty"`
	// From says which shard ran the rollout, on the other shards of a
	// sharded run, which read its report from the hub.
	From string `json:"from,omitempty"`
	// ReadError says why such a shard could not read the report.
	ReadError string `json:"readError,omitempty"`
}

// RolloutEventReport is one line of a rollout's history; At is the time
// since the run started.
type RolloutEventReport struct {
	At    Duration `json:"atMs"`
	Stage string   `json:"stage,omitempty"`
	Msg   string   `json:"msg"`
}

// RolloutJobReport is one job a rollout created, with its figures.
type RolloutJobReport struct {
	ID        string `json:"id"`
	Kind      string `json:"kind"`
	Status    string `json:"status"`
	Devices   int    `json:"devices"`
	Succeeded int    `json:"succeeded"`
	Failed    int    `json:"failed"`
}

// RolloutStageReport is one stage of a rollout.
type RolloutStageReport struct {
	Name    string              `json:"name"`
	Step    string              `json:"step"`
	Devices int                 `json:"devices"`
	Jobs    []string            `json:"jobs"`
	Gates   []RolloutGateReport `json:"gates"`
	// JobFigures are the stage's action, retry and rollback jobs.
	JobFigures []RolloutJobReport `json:"jobFigures"`
	// Retries are the devices each retry round of the stage covered, in order.
	Retries []int `json:"retries"`
}

// RolloutGateReport is a gate's verdict and figures: Count of Of devices
// met it, Value is their fraction and Threshold the least it needs (a bake
// or approval gate has none).
type RolloutGateReport struct {
	Gate      string  `json:"gate"`
	Passed    bool    `json:"passed"`
	Figures   string  `json:"figures"`
	Count     int     `json:"count"`
	Of        int     `json:"of"`
	Value     float64 `json:"value"`
	Threshold float64 `json:"threshold"`
}

// RolloutAbortReport says which rule stopped a rollout and on which figures.
type RolloutAbortReport struct {
	// Kind is the rule that fired: maxFailures, maxFailureRate or operator.
	Kind     string `json:"kind"`
	Rule     string `json:"rule"`
	Job      string `json:"job,omitempty"`
	Stage    string `json:"stage"`
	Failed   int    `json:"failed"`
	Finished int    `json:"finished"`
	Touched  int    `json:"touched"`
}

// rollouts runs the timeline's rollouts, one goroutine each, owned by the
// player: stop cancels and waits for them.
type rollouts struct {
	mu     sync.Mutex
	wg     sync.WaitGroup
	ctx    context.Context // the rollouts' context, ended by stop
	cancel context.CancelFunc
	runs   []*rolloutRun
	notes  []string
	// elsewhere are the rollouts shard 1 runs, on shards 2..n (the run's
	// goroutine alone touches them), and when their reports were last asked for.
	elsewhere []*remoteRollout
	asked     time.Time
}

// remoteRollout is a rollout another shard runs; rep is its report once
// read from the hub.
type remoteRollout struct {
	id, hubID string
	rep       *RolloutReport
	err       error
}

type rolloutRun struct {
	id          string // the scenario's id; the engine's state has the hub's
	done        chan struct{}
	st          *rollout.State
	err         error
	converged99 *time.Duration // set by the sampler
}

// rolloutHub is the hub the player's target offers the rollout engine.
func (p *player) rolloutHub() rollout.Hub {
	switch t := p.hub.(type) {
	case stackTarget:
		return rollout.HubOf(t.st)
	case *restTarget:
		return rollout.ClientHub(t.c)
	}
	return nil
}

// startRollout starts a rollout of the timeline; its state is kept in
// memory (a scenario run is its own rehearsal), so approval gates pass at once.
func (p *player) startRollout(ctx context.Context, a scenarios.RolloutAction) string {
	h := p.rolloutHub()
	if h == nil {
		return ": this hub cannot run rollouts"
	}
	p.ro.mu.Lock()
	defer p.ro.mu.Unlock()
	if p.ro.ctx == nil {
		p.ro.ctx, p.ro.cancel = context.WithCancel(ctx)
	}
	ctx = p.ro.ctx
	plan := p.hubPlan(a.Plan)
	e, err := rollout.Start(h, plan, "", "")
	if err != nil {
		return ": " + err.Error()
	}
	r := &rolloutRun{id: a.Plan.ID, done: make(chan struct{})}
	e.OnEvent = func(ev rollout.Event) {
		p.log.Info().Str("component", "rollout").Str("rollout", plan.ID).Str("stage", ev.Stage).Msg(ev.Msg)
		p.ro.mu.Lock()
		defer p.ro.mu.Unlock()
		stage := ""
		if ev.Stage != "" {
			stage = "[" + ev.Stage + "] "
		}
		p.ro.notes = append(p.ro.notes, "rollout "+a.Plan.ID+": "+stage+ev.Msg)
	}
	p.ro.runs = append(p.ro.runs, r)
	p.ro.wg.Add(1)
	go func() {
		defer p.ro.wg.Done()
		defer close(r.done)
		st, err := e.Run(ctx)
		p.ro.mu.Lock()
		r.st, r.err = st, err
		rep := p.rolloutReport(r)
		p.ro.mu.Unlock()
		if p.coord != nil && p.shards > 1 {
			p.publishRollout(ctx, rep)
		}
	}()
	if c := convergeMatch(plan); c != "" {
		p.ro.wg.Add(1)
		go func() {
			defer p.ro.wg.Done()
			p.sampleConvergence(ctx, h, plan, c, r)
		}()
	}
	return ""
}

// maxRolloutIDLen is the longest rollout id a plan may have: its jobs'
// ids add at most "-s<N>-rollback" within IoT Hub's longest job id.
const maxRolloutIDLen = 48

// rolloutID is the hub's id of a scenario's rollout: on a remote hub the
// scenario's id and the run's suffix, as for its jobs, so that a re-run on
// the same hub starts new jobs and new device tags.
func (p *player) rolloutID(base string) string {
	if p.coord == nil {
		return base
	}
	suffix := "-" + p.coord.jobSuffix()
	if len(base)+len(suffix) > maxRolloutIDLen {
		base = base[:maxRolloutIDLen-len(suffix)]
	}
	return base + suffix
}

// hubPlan is the plan as the hub runs it: on a remote run with the run's
// id suffix and a population without the run's coordination device.
func (p *player) hubPlan(plan *scenarios.RolloutPlan) *scenarios.RolloutPlan {
	if p.coord == nil {
		return plan
	}
	hp := *plan
	hp.ID = p.rolloutID(plan.ID)
	target := hp.Target
	if strings.TrimSpace(target) == "" {
		target = "*"
	}
	hp.Target = p.condition(target)
	return &hp
}

// publishRollout writes, on shard 1 of a sharded run, a rollout's report
// to the run's coordination twin for the other shards; its own context
// bounds it, as the rollouts' may have ended.
func (p *player) publishRollout(ctx context.Context, rep RolloutReport) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), reportTimeout)
	defer cancel()
	if err := p.coord.publishRollout(ctx, rep.ID, compactRollout(rep)); err != nil {
		p.log.Warn().Err(err).Str("rollout", rep.ID).Msg("rollout report not published")
		p.ro.mu.Lock()
		p.ro.notes = append(p.ro.notes, "rollout "+rep.ID+": its report could not be published for the other shards: "+err.Error())
		p.ro.mu.Unlock()
	}
}

// maxPublished bounds a published rollout report: the coordination twin's
// tags (IoT Hub allows 8 KB) also hold every shard's entry.
const maxPublished = 2048

// compactRollout is the JSON of a rollout's report as shard 1 publishes it:
// without its events (shard 1's own report has them), and, when it is still
// too long, without the gates' figure lines and the jobs' figures, and at
// last without its stages' details; what expectations judge stays longest.
func compactRollout(rep RolloutReport) string {
	rep.Events = nil
	enc := func() string {
		b, _ := json.Marshal(rep)
		return string(b)
	}
	s := enc()
	if len(s) <= maxPublished {
		return s
	}
	stages := make([]RolloutStageReport, len(rep.Stages))
	for i, st := range rep.Stages {
		st.JobFigures = nil
		gates := make([]RolloutGateReport, len(st.Gates))
		for k, g := range st.Gates {
			g.Figures = ""
			gates[k] = g
		}
		st.Gates = gates
		stages[i] = st
	}
	rep.Stages = stages
	if s = enc(); len(s) <= maxPublished {
		return s
	}
	rep.Stages = nil
	rep.Reason = truncate(rep.Reason, 256)
	return enc()
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// awaitElsewhere notes, on shards 2..n, a rollout that shard 1 runs: the
// shard reports it from what shard 1 publishes.
func (p *player) awaitElsewhere(a scenarios.RolloutAction) {
	if p.coord == nil {
		return // no hub to meet on: the rollout is shard 1's alone
	}
	p.ro.elsewhere = append(p.ro.elsewhere, &remoteRollout{id: a.Plan.ID, hubID: p.rolloutID(a.Plan.ID)})
}

// readElsewhere asks the hub for the reports of the rollouts shard 1 runs
// (at most once a poll unless force) and reports whether every one is in.
func (p *player) readElsewhere(ctx context.Context, force bool) bool {
	pending := false
	for _, r := range p.ro.elsewhere {
		pending = pending || r.rep == nil
	}
	if !pending || p.coord == nil {
		return !pending
	}
	if !force && time.Since(p.ro.asked) < 250*time.Millisecond {
		return false
	}
	p.ro.asked = time.Now()
	got, err := p.coord.readRollouts(ctx)
	done := true
	for _, r := range p.ro.elsewhere {
		if r.rep != nil {
			continue
		}
		s, ok := got[r.id]
		switch {
		case err != nil:
			r.err = err
		case !ok:
			r.err = errors.New("shard 1 has not published it")
		default:
			var rep RolloutReport
			if uerr := json.Unmarshal([]byte(s), &rep); uerr != nil {
				r.err = fmt.Errorf("its published report: %w", uerr)
				continue
			}
			rep.From = "shard 1"
			r.rep, r.err = &rep, nil
			p.progress(ctx, fmt.Sprintf("rollout %s: shard 1 reports it %s, %d devices touched", r.id, rep.Status, rep.Touched))
			continue
		}
		done = false
	}
	return done
}

// convergeMatch is the plan's convergence condition, or "".
func convergeMatch(plan *scenarios.RolloutPlan) string {
	if plan.Gates != nil && plan.Gates.Converge != nil {
		return plan.Gates.Converge.Match
	}
	for _, st := range plan.Stages {
		if st.Gates != nil && st.Gates.Converge != nil {
			return st.Gates.Converge.Match
		}
	}
	return ""
}

// sampleConvergence counts the rollout's population and the part of it
// that matches cond, every poll, until 99 % match (it records when) or
// the rollouts' context ends.
func (p *player) sampleConvergence(ctx context.Context, h rollout.Hub, plan *scenarios.RolloutPlan, cond string, r *rolloutRun) {
	start := time.Now()
	target, popQ := "", "SELECT COUNT() AS n FROM devices"
	if plan.Target != "" && plan.Target != "*" {
		target, popQ = "("+plan.Target+") AND ", popQ+" WHERE "+plan.Target
	}
	poll := max(plan.Poll.D(), 250*time.Millisecond)
	t := time.NewTicker(poll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		all, err1 := rollout.Count(ctx, h, popQ)
		n, err2 := rollout.Count(ctx, h, "SELECT COUNT() AS n FROM devices WHERE "+target+"("+cond+")")
		if err1 != nil || err2 != nil || all == 0 {
			continue
		}
		if float64(n) >= 0.99*float64(all) {
			d := time.Since(start)
			p.ro.mu.Lock()
			r.converged99 = &d
			p.ro.mu.Unlock()
			return
		}
	}
}

// rolloutsSettled reports whether every rollout has ended, and passes on
// their events as progress notes.
func (p *player) rolloutsSettled(ctx context.Context) bool {
	if !p.readElsewhere(ctx, false) {
		return false
	}
	p.ro.mu.Lock()
	notes := p.ro.notes
	p.ro.notes = nil
	done := true
	for _, r := range p.ro.runs {
		select {
		case <-r.done:
		default:
			done = false
		}
	}
	p.ro.mu.Unlock()
	for _, n := range notes {
		p.progress(ctx, n)
	}
	return done
}

// stopRollouts cancels the rollouts still running and waits for them.
func (p *player) stopRollouts() {
	p.ro.mu.Lock()
	if p.ro.cancel != nil {
		p.ro.cancel()
	}
	p.ro.mu.Unlock()
	p.ro.wg.Wait()
}

// rolloutReports reports the rollouts (after stopRollouts) and adds their
// stage, retry and rollback jobs to the run's jobs, so the report shows each.
// On shards 2..n of a sharded run they are the reports shard 1 published,
// read once more if one is missing.
func (p *player) rolloutReports(ctx context.Context) []RolloutReport {
	var out []RolloutReport
	for _, r := range p.ro.runs {
		if r.st == nil {
			continue
		}
		rr := p.rolloutReport(r)
		for _, s := range rr.Stages {
			p.jobs = append(p.jobs, s.Jobs...)
		}
		if rr.Rollback != nil {
			p.jobs = append(p.jobs, rr.Rollback.ID)
		}
		out = append(out, rr)
	}
	p.readElsewhere(ctx, true)
	for _, r := range p.ro.elsewhere {
		if r.rep != nil {
			out = append(out, *r.rep)
			continue
		}
		why := "shard 1 has not published it"
		if r.err != nil {
			why = r.err.Error()
		}
		out = append(out, RolloutReport{ID: r.id, HubID: r.hubID, Status: "unknown", From: "shard 1", ReadError: why,
			Stages: []RolloutStageReport{}, Events: []RolloutEventReport{}})
	}
	return out
}

// rolloutReport reports one rollout whose engine has returned; the caller
// holds p.ro.mu or the rollouts have stopped.
func (p *player) rolloutReport(r *rolloutRun) RolloutReport {
	st := r.st
	rr := RolloutReport{ID: r.id, Status: st.Status, Reason: st.Reason, Touched: st.Touched()}
	if st.ID != r.id {
		rr.HubID = st.ID
	}
	if !st.Terminal() {
		rr.Status = "interrupted at stage " + fmt.Sprint(st.Stage+1)
	}
	if (st.Status == rollout.StatusAborted || st.Status == rollout.StatusStopped) && st.Stage < len(st.Stages) {
		rr.StoppedAt = st.Stages[st.Stage].Name
	}
	if r.err != nil && rr.Reason == "" {
		rr.Reason = r.err.Error()
	}
	rr.Stages, rr.Rollback = stageReports(st)
	rr.Abort = abortReport(st.Abort)
	if r.converged99 != nil {
		d := Duration(*r.converged99)
		rr.Converged99 = &d
	}
	rr.Events = eventReports(st, p.started)
	return rr
}

// judgeRollout judges an expectation on a rollout.
func judgeRollout(e scenarios.RolloutExpectation, reps []RolloutReport) ExpectationResult {
	res := ExpectationResult{Description: e.String()}
	var r *RolloutReport
	for i := range reps {
		if reps[i].ID == e.ID {
			r = &reps[i]
		}
	}
	if r == nil {
		res.Detail = "the rollout did not run"
		return res
	}
	if r.ReadError != "" {
		res.Detail = "the rollout's result could not be read from " + r.From + ": " + r.ReadError
		return res
	}
	stoppedAt := r.StoppedAt
	res.Passed = (e.Outcome == "" || e.Outcome == r.Status) &&
		(e.AbortedAt == "" || e.AbortedAt == stoppedAt) &&
		(e.MaxTouched < 0 || r.Touched <= e.MaxTouched) &&
		(e.MinTouched < 0 || r.Touched >= e.MinTouched)
	res.Detail = fmt.Sprintf("%s, %d devices touched", r.Status, r.Touched)
	if stoppedAt != "" {
		res.Detail += ", stopped at stage " + stoppedAt
	}
	if e.AbortRule != "" {
		kind := "none"
		if r.Abort != nil {
			kind = r.Abort.Kind
		}
		res.Passed = res.Passed && kind == e.AbortRule
		res.Detail += ", abort rule " + kind
	}
	if e.RolledBack != nil {
		ok, detail := judgeRollback(*e.RolledBack, r)
		res.Passed = res.Passed && ok
		res.Detail += ", " + detail
	}
	var stage *RolloutStageReport
	for i := range r.Stages {
		if r.Stages[i].Name == e.Stage {
			stage = &r.Stages[i]
		}
	}
	if e.MinConverged >= 0 {
		conv := -1.0
		if stage != nil {
			for _, g := range stage.Gates {
				if g.Gate == "converge" && g.Passed {
					conv = g.Value
					res.Detail += fmt.Sprintf(", stage %s converged %d of %d devices (%.1f %%)", e.Stage, g.Count, g.Of, 100*g.Value)
				}
			}
		}
		if conv < 0 {
			res.Detail += ", stage " + e.Stage + " did not pass a convergence gate"
		}
		res.Passed = res.Passed && conv >= e.MinConverged
	}
	if e.Retries != nil {
		got := []int{}
		if stage != nil {
			got = stage.Retries
		}
		res.Passed = res.Passed && slices.Equal(got, e.Retries)
		res.Detail += fmt.Sprintf(", stage %s retried %v devices", e.Stage, got)
	}
	if r.Reason != "" {
		res.Detail += ": " + r.Reason
	}
	return res
}

// judgeRollback checks that a rollback ran over every device of the stage
// that stopped the rollout and finished (want), or that none ran.
func judgeRollback(want bool, r *RolloutReport) (bool, string) {
	rb := r.Rollback
	if rb == nil {
		return !want, "no rollback"
	}
	devices := -1
	for _, s := range r.Stages {
		if s.Name == r.StoppedAt {
			devices = s.Devices
		}
	}
	detail := fmt.Sprintf("rollback %s %s over %d of the stage's %d devices (%d succeeded, %d failed)",
		rb.ID, rb.Status, rb.Devices, devices, rb.Succeeded, rb.Failed)
	return want && rb.Status == "completed" && rb.Devices == devices, detail
}

// stageReports reports a rollout's stages, and its rollback job if one ran.
func stageReports(st *rollout.State) ([]RolloutStageReport, *RolloutJobReport) {
	var out []RolloutStageReport
	var rollback *RolloutJobReport
	for _, s := range st.Stages {
		sr := RolloutStageReport{Name: s.Name, Step: s.Step, Devices: s.Devices, Jobs: []string{}, Gates: []RolloutGateReport{},
			JobFigures: []RolloutJobReport{}, Retries: []int{}}
		for _, j := range s.Jobs {
			if j.Kind == rollout.KindMark {
				continue
			}
			jr := RolloutJobReport{ID: j.ID, Kind: j.Kind, Status: j.Status, Devices: j.Stats.DeviceCount,
				Succeeded: j.Stats.SucceededCount, Failed: j.Stats.FailedCount}
			if j.Kind == rollout.KindRollback {
				rollback = &jr
				continue
			}
			sr.Jobs = append(sr.Jobs, j.ID)
			sr.JobFigures = append(sr.JobFigures, jr)
			if j.Kind == rollout.KindRetry {
				sr.Retries = append(sr.Retries, j.Stats.DeviceCount)
			}
		}
		for _, g := range s.Gates {
			sr.Gates = append(sr.Gates, RolloutGateReport{Gate: g.Gate, Passed: g.Passed, Figures: g.Figures,
				Count: g.Count, Of: g.Of, Value: g.Value, Threshold: g.Threshold})
		}
		out = append(out, sr)
	}
	return out, rollback
}

// abortReport reports the abort record, if any.
func abortReport(a *rollout.AbortRecord) *RolloutAbortReport {
	if a == nil {
		return nil
	}
	kind, _, _ := strings.Cut(a.Rule, ":")
	return &RolloutAbortReport{Kind: kind, Rule: a.Rule, Job: a.Job, Stage: a.Stage, Failed: a.Failed, Finished: a.Finished, Touched: a.Touched}
}

// eventReports reports the rollout's history relative to start.
func eventReports(st *rollout.State, start time.Time) []RolloutEventReport {
	out := make([]RolloutEventReport, 0, len(st.Events))
	for _, ev := range st.Events {
		out = append(out, RolloutEventReport{At: Duration(max(ev.At.Sub(start), 0)), Stage: ev.Stage, Msg: ev.Msg})
	}
	return out
}
