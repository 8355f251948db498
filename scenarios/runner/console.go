package runner

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs/console"
	"github.com/fleetsim/fleetsim/scenarios"
)

// consoleJudgeEvery is the least time between two live judgements of the
// expectations for the console.
const consoleJudgeEvery = 500 * time.Millisecond

// liveScenario is the state of a scenario being played as the web
// console's scenario page shows it (console.Scenario). The player writes
// it from its own goroutine; the console reads snapshots from another.
type liveScenario struct {
	mu        sync.Mutex
	st        console.ScenarioState
	lastJudge time.Time
}

var _ console.Scenario = (*liveScenario)(nil)

// newLiveScenario lists sc's timeline; mode is "run" or "hosted".
func newLiveScenario(sc *scenarios.Scenario, mode string, devices int) *liveScenario {
	st := console.ScenarioState{
		Version: 1, Name: sc.Name(), Description: sc.Description(), Mode: mode, Phase: "starting",
		DurationMs: sc.Duration.Milliseconds(), Devices: devices,
	}
	for _, a := range sc.Actions() {
		// The page shows the time in a column of its own.
		desc := strings.TrimPrefix(a.String(), fmt.Sprintf("at %s: ", a.When()))
		st.Steps = append(st.Steps, console.ScenarioStep{AtMs: a.When().Milliseconds(), Action: desc})
	}
	return &liveScenario{st: st}
}

// ScenarioState implements console.Scenario: a copy of the state.
func (l *liveScenario) ScenarioState() console.ScenarioState {
	l.mu.Lock()
	defer l.mu.Unlock()
	st := l.st
	st.Steps = slices.Clone(st.Steps)
	st.Expect = slices.Clone(st.Expect)
	return st
}

// update changes the state under the lock and counts a new version.
func (l *liveScenario) update(fn func(st *console.ScenarioState)) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	fn(&l.st)
	l.st.Version++
}

// start marks the timeline's clock started.
func (l *liveScenario) start(at time.Time, phase string) {
	l.update(func(st *console.ScenarioState) { st.Started, st.Phase = at.UTC(), phase })
}

// stepDone marks step i played after elapsed, with the player's note.
func (l *liveScenario) stepDone(i int, a scenarios.Action, elapsed time.Duration, note string) {
	l.update(func(st *console.ScenarioState) {
		if i < 0 || i >= len(st.Steps) {
			return
		}
		s := &st.Steps[i]
		s.Done, s.DoneAtMs = true, elapsed.Milliseconds()
		s.Note = strings.TrimPrefix(strings.TrimPrefix(note, fmt.Sprintf("T+%s: %s", a.When(), a)), ": ")
	})
}

// setPhase sets the phase, when it changed.
func (l *liveScenario) setPhase(phase string) {
	if l == nil {
		return
	}
	l.mu.Lock()
	same := l.st.Phase == phase
	l.mu.Unlock()
	if !same {
		l.update(func(st *console.ScenarioState) { st.Phase = phase })
	}
}

// setExpectations replaces the judged expectations, when they changed.
func (l *liveScenario) setExpectations(exps []console.ScenarioExpectation) {
	l.mu.Lock()
	same := slices.Equal(l.st.Expect, exps)
	l.mu.Unlock()
	if !same {
		l.update(func(st *console.ScenarioState) { st.Expect = exps })
	}
}

// end shows the report's judgement: the run has ended.
func (l *liveScenario) end(rep *Report) {
	if l == nil || rep == nil {
		return
	}
	exps := make([]console.ScenarioExpectation, 0, len(rep.Expectations))
	for _, r := range rep.Expectations {
		exps = append(exps, console.ScenarioExpectation{Description: r.Description, State: passFail(r.Passed), Detail: r.Detail})
	}
	passed := rep.Passed
	l.update(func(st *console.ScenarioState) { st.Expect, st.Phase, st.Passed = exps, "ended", &passed })
}

func passFail(ok bool) string {
	if ok {
		return console.ExpectPassing
	}
	return console.ExpectFailed
}

// judgeLive judges the expectations as far as the run allows now, for the
// console, at most every consoleJudgeEvery: a job's demands on its status,
// time and counts once it is terminal (pending before); its latency and
// device-side demands, device states and rollouts when the run ends (the
// report judges them); the connected fraction as it is now.
func (p *player) judgeLive(ctx context.Context, now time.Time) {
	l := p.lv
	if l == nil || now.Sub(l.lastJudge) < consoleJudgeEvery {
		return
	}
	l.lastJudge = now
	var out []console.ScenarioExpectation
	add := func(rs []ExpectationResult, state string) {
		for _, r := range rs {
			s := state
			if s == "" {
				s = passFail(r.Passed)
			}
			out = append(out, console.ScenarioExpectation{Description: r.Description, State: s, Detail: r.Detail})
		}
	}
	states := p.states
	for _, e := range p.sc.Expectations {
		if e.DeviceState != nil {
			r := judgeState(states[0])
			states = states[1:]
			st := console.ExpectPending
			if r.Passed {
				st = console.ExpectPassing
			}
			add([]ExpectationResult{r}, st)
		}
		switch {
		case e.Job == "" && e.MinConnected == 0 && e.DeviceState != nil:
		case e.Job == "":
			frac := p.connectedFraction()
			r := ExpectationResult{
				Description: fmt.Sprintf("at least %.1f%% of the fleet is connected at the end", e.MinConnected*100),
				Detail:      fmt.Sprintf("%d of %d connected now (%.1f%%)", p.fleet.Connected(), p.fleet.Len(), frac*100),
				Passed:      frac >= e.MinConnected,
			}
			st := console.ExpectPending
			if r.Passed {
				st = console.ExpectPassing
			}
			add([]ExpectationResult{r}, st)
		default:
			out = append(out, p.judgeJobLive(ctx, e)...)
		}
	}
	for _, e := range p.sc.RolloutExpectations {
		out = append(out, console.ScenarioExpectation{Description: e.String(), State: console.ExpectPending, Detail: "judged when the run ends"})
	}
	l.setExpectations(out)
}

// judgeJobLive judges a job expectation from the job's status and
// statistics: as judged once the job is terminal, pending before.
func (p *player) judgeJobLive(ctx context.Context, e scenarios.Expectation) []console.ScenarioExpectation {
	id := p.jobID(e.Job)
	light := jobExpectation{JobID: id, Status: e.Status, Within: e.Within, TakesAtLeast: e.TakesAtLeast,
		MinSuccessRate: e.MinSuccessRate, MinSucceeded: e.MinSucceeded, MaxFailed: e.MaxFailed, MinDevices: e.MinDevices, MaxRollbacks: -1}
	heavy := e.MaxP99Latency > 0 || e.MinAckRate > 0 || e.MaxAckP99 > 0 || len(e.MaxPhaseFailures) > 0 || e.MaxRollbacks >= 0
	one := func(desc, state, detail string) []console.ScenarioExpectation {
		return []console.ScenarioExpectation{{Description: desc, State: state, Detail: detail}}
	}
	if !slices.Contains(p.jobs, id) {
		if err := p.createErr[id]; err != nil {
			return one("job "+id+" exists", console.ExpectFailed, "the job was not created: "+err.Error())
		}
		return one("job "+id+" runs", console.ExpectPending, "not created yet")
	}
	j, err := p.hub.job(ctx, id)
	if err != nil {
		return one("job "+id+" runs", console.ExpectPending, "could not be read: "+err.Error())
	}
	s := j.DeviceJobStatistics
	jr := &JobReport{JobID: id, Status: string(j.Status), FailureReason: j.FailureReason, Started: j.StartTime,
		DeviceCount: s.DeviceCount, Succeeded: s.SucceededCount, Failed: s.FailedCount, Running: s.RunningCount, Pending: s.PendingCount}
	if j.EndTime != nil {
		jr.Ended = *j.EndTime
	}
	var out []console.ScenarioExpectation
	for _, r := range judgeJob(light, jr) {
		state := passFail(r.Passed)
		if !j.Status.Terminal() {
			state = console.ExpectPending
			if strings.Contains(r.Detail, "not finished") {
				r.Detail = fmt.Sprintf("%s: %d of %d succeeded, %d failed", j.Status, s.SucceededCount, s.DeviceCount, s.FailedCount)
			}
		}
		out = append(out, console.ScenarioExpectation{Description: r.Description, State: state, Detail: r.Detail})
	}
	if heavy {
		out = append(out, console.ScenarioExpectation{Description: "job " + id + ": latency and device-side demands", State: console.ExpectPending, Detail: "judged when the run ends"})
	}
	return out
}
