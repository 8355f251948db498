package runner

import (
	"context"
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
	ID     string `json:"id"`
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
}

type rolloutRun struct {
	id          string
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
	e, err := rollout.Start(h, a.Plan, "", "")
	if err != nil {
		return ": " + err.Error()
	}
	r := &rolloutRun{id: a.Plan.ID, done: make(chan struct{})}
	e.OnEvent = func(ev rollout.Event) {
		p.log.Info().Str("component", "rollout").Str("rollout", a.Plan.ID).Str("stage", ev.Stage).Msg(ev.Msg)
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
		p.ro.mu.Unlock()
	}()
	if c := convergeMatch(a.Plan); c != "" {
		p.ro.wg.Add(1)
		go func() {
			defer p.ro.wg.Done()
			p.sampleConvergence(ctx, h, a.Plan, c, r)
		}()
	}
	return ""
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
func (p *player) rolloutReports() []RolloutReport {
	var out []RolloutReport
	for _, r := range p.ro.runs {
		st := r.st
		if st == nil {
			continue
		}
		rr := RolloutReport{ID: st.ID, Status: st.Status, Reason: st.Reason, Touched: st.Touched()}
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
		for _, s := range rr.Stages {
			p.jobs = append(p.jobs, s.Jobs...)
		}
		if rr.Rollback != nil {
			p.jobs = append(p.jobs, rr.Rollback.ID)
		}
		rr.Abort = abortReport(st.Abort)
		if r.converged99 != nil {
			d := Duration(*r.converged99)
			rr.Converged99 = &d
		}
		rr.Events = eventReports(st, p.started)
		out = append(out, rr)
	}
	return out
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
