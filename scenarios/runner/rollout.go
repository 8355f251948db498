package runner

import (
	"context"
	"fmt"
	"sync"

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
}

// RolloutStageReport is one stage of a rollout.
type RolloutStageReport struct {
	Name    string              `json:"name"`
	Step    string              `json:"step"`
	Devices int                 `json:"devices"`
	Jobs    []string            `json:"jobs"`
	Gates   []RolloutGateReport `json:"gates"`
}

// RolloutGateReport is a gate's verdict and figures.
type RolloutGateReport struct {
	Gate    string `json:"gate"`
	Passed  bool   `json:"passed"`
	Figures string `json:"figures"`
}

// RolloutAbortReport says which rule stopped a rollout and on which figures.
type RolloutAbortReport struct {
	Rule     string `json:"rule"`
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
	id   string
	done chan struct{}
	st   *rollout.State
	err  error
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
	return ""
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
		for _, s := range st.Stages {
			sr := RolloutStageReport{Name: s.Name, Step: s.Step, Devices: s.Devices, Jobs: []string{}, Gates: []RolloutGateReport{}}
			for _, j := range s.Jobs {
				if j.Kind == rollout.KindMark {
					continue
				}
				sr.Jobs = append(sr.Jobs, j.ID)
				p.jobs = append(p.jobs, j.ID)
			}
			for _, g := range s.Gates {
				sr.Gates = append(sr.Gates, RolloutGateReport{Gate: g.Gate, Passed: g.Passed, Figures: g.Figures})
			}
			rr.Stages = append(rr.Stages, sr)
		}
		if a := st.Abort; a != nil {
			rr.Abort = &RolloutAbortReport{Rule: a.Rule, Stage: a.Stage, Failed: a.Failed, Finished: a.Finished, Touched: a.Touched}
		}
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
	if r.Reason != "" {
		res.Detail += ": " + r.Reason
	}
	return res
}
