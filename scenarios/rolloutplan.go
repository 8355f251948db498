package scenarios

import (
	"cmp"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"
)

// A rollout plan is read from its own file (fleetsim rollout run PLAN) or
// inline in a scenario's timeline (a rollout action); its types live here so
// that scenario files can hold one, and the engine that runs it lives in
// scenarios/rollout.

// RolloutPlan is a rollout plan file.
type RolloutPlan struct {
	ID          string         `yaml:"id" required:"true" doc:"Rollout id: letters, digits, '-' and '_', up to 48 characters. It names the rollout's jobs and its device tags."`
	Description string         `yaml:"description" doc:"What the rollout does."`
	Seed        int64          `yaml:"seed" doc:"Seed that picks the devices of share stages: the same seed picks the same devices."`
	Target      string         `yaml:"target" doc:"Query condition of the population, e.g. \"tags.model = 'm100'\"; default \"*\" (every device)."`
	Action      *RolloutJob    `yaml:"action" required:"true" doc:"The job each stage runs over its devices, unless the stage has its own."`
	Stages      []RolloutStage `yaml:"stages" doc:"The stages in order; each covers devices no earlier stage took."`
	Growth      *RolloutGrowth `yaml:"growth" doc:"Instead of stages: share stages growing exponentially, from first by factor until the whole population."`
	Gates       *RolloutGates  `yaml:"gates" doc:"Gates every stage must pass before the next one starts, unless the stage has its own."`
	Abort       *RolloutAbort  `yaml:"abort" doc:"When a stage's failures stop the rollout: its job is cancelled and rollback runs."`
	Retry       *RolloutRetry  `yaml:"retry" doc:"Retries of a stage's failed or timed-out devices, as new jobs over exactly those devices."`
	Rollback    *RolloutJob    `yaml:"rollback" doc:"Job run over the devices of the stage that stopped the rollout (abort or failed gate)."`
	Poll        Duration       `yaml:"poll" doc:"How often the engine reads job statistics and queries; default 1s."`
	MaxQueryLen int            `yaml:"maxQueryLength" doc:"Longest query condition the engine writes (IoT Hub's limit is 8192 characters); default 8000."`
}

// RolloutJob is a job: a method job (method) or a twin job (twin).
type RolloutJob struct {
	Method           string         `yaml:"method" doc:"Method name of a method job (scheduleDeviceMethod)."`
	Payload          any            `yaml:"payload" doc:"Method payload (any YAML value, sent as JSON)."`
	Twin             *TwinPatchSpec `yaml:"twin" doc:"Patch of a twin job (scheduleUpdateTwin)."`
	ResponseTimeout  Duration       `yaml:"responseTimeout" doc:"Method response timeout, 5s..300s; default 30s."`
	ConnectTimeout   Duration       `yaml:"connectTimeout" doc:"How long the hub waits for an offline device to connect, 0..300s; default 0."`
	StartIn          Duration       `yaml:"startIn" doc:"Start time of the job relative to its creation; default 0 (at once)."`
	MaxExecutionTime Duration       `yaml:"maxExecutionTime" doc:"maxExecutionTimeInSeconds of the job; default 1h."`
}

// RolloutStage is one stage: by condition, by share, or the rest.
type RolloutStage struct {
	Name      string        `yaml:"name" required:"true" doc:"Stage name, shown in progress and the report."`
	Condition string        `yaml:"condition" doc:"Query condition selecting the stage's devices (within the target), e.g. \"tags.ring = 'canary'\"."`
	Share     *float64      `yaml:"share" bounds:"probability" doc:"Fraction of the population (0..1), picked by hash(seed, deviceId)."`
	Rest      bool          `yaml:"rest" doc:"The stage takes every device of the population no earlier stage took."`
	Action    *RolloutJob   `yaml:"action" doc:"This stage's job instead of the plan's action."`
	Gates     *RolloutGates `yaml:"gates" doc:"This stage's gates instead of the plan's."`
	MaxRate   float64       `yaml:"maxRate" doc:"Most device operations per second: the stage runs in waves of at most maxRate devices a second (IoT Hub has no per-job pacing)."`
}

// RolloutGrowth generates share stages of exponentially growing size.
type RolloutGrowth struct {
	First  float64 `yaml:"first" required:"true" bounds:"probability" doc:"Share of the population of the first stage, e.g. 0.01."`
	Factor float64 `yaml:"factor" required:"true" doc:"Each stage is this many times the previous one (> 1); the last stage takes the rest."`
}

// RolloutGates are the checks after a stage's job before the next stage.
type RolloutGates struct {
	MinSuccessRate *float64         `yaml:"minSuccessRate" bounds:"probability" doc:"Least fraction of the stage's devices whose device job completed, after retries (0..1)."`
	Converge       *RolloutConverge `yaml:"converge" doc:"Least fraction of the stage's devices whose twin matches a condition, within a time limit."`
	Bake           Duration         `yaml:"bake" doc:"Time to wait after the other gates passed before the next stage."`
	Approval       bool             `yaml:"approval" doc:"Wait for fleetsim rollout approve."`
}

// RolloutConverge is a convergence gate.
type RolloutConverge struct {
	Match       string   `yaml:"match" required:"true" doc:"Query condition the devices' twins must meet, e.g. \"properties.reported.firmware.currentVersion = '2.0.0'\"."`
	MinFraction *float64 `yaml:"minFraction" bounds:"probability" doc:"Least fraction of the stage's devices that match (0..1); default 1."`
	Within      Duration `yaml:"within" required:"true" doc:"Time limit from the end of the stage's job."`
}

// RolloutAbort is the abort rule, evaluated on a stage's job statistics while
// it runs.
type RolloutAbort struct {
	MaxFailureRate *float64 `yaml:"maxFailureRate" bounds:"probability" doc:"Abort when failed / finished devices reaches this (0..1), once minDevices have finished."`
	MinDevices     int      `yaml:"minDevices" doc:"Finished devices needed before maxFailureRate is judged; default 1."`
	MaxFailures    *int     `yaml:"maxFailures" doc:"Abort when this many devices of a stage have failed."`
	FailedWhen     string   `yaml:"failedWhen" doc:"Query condition that counts a device of the stage as failed by its twin, e.g. \"properties.reported.firmware.status = 'failed'\": a method job's device completes once it accepts the call, what happens next shows in its twin. Judged while the stage's job runs and while its gates wait."`
}

// RolloutRetry retries failed devices.
type RolloutRetry struct {
	Attempts int      `yaml:"attempts" required:"true" doc:"Most retries per stage (1..10)."`
	Backoff  Duration `yaml:"backoff" doc:"Wait before the first retry; default 5s."`
	Factor   float64  `yaml:"factor" doc:"Each wait is this many times the previous one; default 2."`
}

var idRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,48}$`)

// ParsePlan decodes and validates a plan file strictly: every problem is
// reported at once in a *ParseError with file:line:col positions.
// ParseRolloutPlan decodes and validates a rollout plan file strictly:
// every problem is reported at once in a *ParseError with file:line:col
// positions. Defaults are filled in.
func ParseRolloutPlan(filename string, data []byte) (*RolloutPlan, error) {
	p := new(RolloutPlan)
	pos, err := DecodeFile(filename, data, p)
	if err != nil {
		return nil, err
	}
	var problems []Problem
	checkRolloutPlan(func(ptr any, path, format string, args ...any) {
		l, c := pos.Pos(ptr)
		problems = append(problems, Problem{File: filename, Line: l, Col: c, Path: path, Msg: fmt.Sprintf(format, args...)})
	}, p, "")
	if len(problems) > 0 {
		return nil, &ParseError{File: filename, Problems: sortProblems(problems)}
	}
	p.defaults()
	return p, nil
}

// checkRolloutPlan reports the problems of a decoded plan whose YAML path is
// prefix ("" for a plan file).
func checkRolloutPlan(bad badFunc, p *RolloutPlan, prefix string) {
	at := func(path string) string { return join(prefix, path) }
	if !idRE.MatchString(p.ID) {
		bad(&p.ID, at("id"), "%q is not a rollout id: 1 to 48 letters, digits, '-' or '_'", p.ID)
	}
	checkAction(bad, p.Action, at("action"))
	checkAction(bad, p.Rollback, at("rollback"))
	switch {
	case p.Growth != nil && len(p.Stages) > 0:
		bad(&p.Growth, at("growth"), "give stages or growth, not both")
	case p.Growth == nil && len(p.Stages) == 0:
		bad(p, prefix, "the plan needs stages (or growth)")
	case p.Growth != nil:
		if p.Growth.First <= 0 || p.Growth.First >= 1 {
			bad(&p.Growth.First, at("growth.first"), "must be between 0 and 1 (exclusive)")
		}
		if p.Growth.Factor <= 1 {
			bad(&p.Growth.Factor, at("growth.factor"), "must be more than 1")
		}
	}
	var shares float64
	names := map[string]bool{}
	for i := range p.Stages {
		s := &p.Stages[i]
		path := at(fmt.Sprintf("stages[%d]", i))
		if names[s.Name] {
			bad(&s.Name, path+".name", "stage %q is named twice", s.Name)
		}
		names[s.Name] = true
		n := 0
		if s.Condition != "" {
			n++
		}
		if s.Share != nil {
			n++
			if *s.Share <= 0 || *s.Share > 1 {
				bad(s.Share, path+".share", "must be more than 0 and at most 1")
			}
			shares += *s.Share
		}
		if s.Rest {
			n++
			if i != len(p.Stages)-1 {
				bad(&s.Rest, path+".rest", "only the last stage can take the rest")
			}
		}
		if n != 1 {
			bad(s, path, "a stage has exactly one of condition, share and rest")
		}
		if s.MaxRate < 0 {
			bad(&s.MaxRate, path+".maxRate", "must not be negative")
		}
		checkAction(bad, s.Action, path+".action")
		checkGates(bad, s.Gates, path+".gates")
	}
	if shares > 1+1e-9 {
		bad(&p.Stages, at("stages"), "the shares add up to %.4g, more than 1", shares)
	}
	checkGates(bad, p.Gates, at("gates"))
	if a := p.Abort; a != nil {
		if a.MaxFailureRate == nil && a.MaxFailures == nil {
			bad(a, at("abort"), "give maxFailureRate or maxFailures")
		}
		if a.MaxFailureRate != nil && (*a.MaxFailureRate < 0 || *a.MaxFailureRate > 1) {
			bad(a.MaxFailureRate, at("abort.maxFailureRate"), "must be between 0 and 1")
		}
		if a.MinDevices < 0 {
			bad(&a.MinDevices, at("abort.minDevices"), "must not be negative")
		}
		if a.MaxFailures != nil && *a.MaxFailures < 1 {
			bad(a.MaxFailures, at("abort.maxFailures"), "must be at least 1")
		}
	}
	if r := p.Retry; r != nil {
		if r.Attempts < 1 || r.Attempts > 10 {
			bad(&r.Attempts, at("retry.attempts"), "must be 1 to 10")
		}
		if r.Factor != 0 && r.Factor < 1 {
			bad(&r.Factor, at("retry.factor"), "must be at least 1")
		}
	}
	if p.MaxQueryLen != 0 && (p.MaxQueryLen < 64 || p.MaxQueryLen > 8192) {
		bad(&p.MaxQueryLen, at("maxQueryLength"), "must be 64 to 8192")
	}
}

func sortProblems(ps []Problem) []Problem {
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && (ps[j].Line < ps[j-1].Line || ps[j].Line == ps[j-1].Line && ps[j].Col < ps[j-1].Col); j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
	return ps
}

type badFunc func(ptr any, path, format string, args ...any)

func checkAction(bad badFunc, a *RolloutJob, path string) {
	if a == nil {
		return
	}
	if (a.Method == "") == (a.Twin == nil) {
		bad(a, path, "an action is a method job (method) or a twin job (twin), exactly one")
	}
	if a.Twin != nil && a.Payload != nil {
		bad(&a.Payload, path+".payload", "a twin job has no payload")
	}
	if a.Twin != nil && len(a.Twin.Tags) == 0 && len(a.Twin.Desired) == 0 {
		bad(a.Twin, path+".twin", "the patch sets nothing: give tags or desired")
	}
	if rt := a.ResponseTimeout.D(); rt != 0 && (rt < 5*time.Second || rt > 300*time.Second) {
		bad(&a.ResponseTimeout, path+".responseTimeout", "must be 5s to 300s")
	}
	if ct := a.ConnectTimeout.D(); ct > 300*time.Second {
		bad(&a.ConnectTimeout, path+".connectTimeout", "must be at most 300s")
	}
}

func checkGates(bad badFunc, g *RolloutGates, path string) {
	if g == nil {
		return
	}
	if g.MinSuccessRate != nil && (*g.MinSuccessRate < 0 || *g.MinSuccessRate > 1) {
		bad(g.MinSuccessRate, path+".minSuccessRate", "must be between 0 and 1")
	}
	if c := g.Converge; c != nil {
		if strings.TrimSpace(c.Match) == "" {
			bad(&c.Match, path+".converge.match", "must not be empty")
		}
		if c.MinFraction != nil && (*c.MinFraction < 0 || *c.MinFraction > 1) {
			bad(c.MinFraction, path+".converge.minFraction", "must be between 0 and 1")
		}
		if c.Within.D() <= 0 {
			bad(&c.Within, path+".converge.within", "must be more than 0")
		}
	}
}

// defaults fills in the defaults and turns growth into stages.
func (p *RolloutPlan) defaults() {
	if strings.TrimSpace(p.Target) == "" {
		p.Target = "*"
	}
	if p.Poll == 0 {
		p.Poll = Duration(time.Second)
	}
	if p.MaxQueryLen == 0 {
		p.MaxQueryLen = 8000
	}
	if p.Abort != nil && p.Abort.MinDevices == 0 {
		p.Abort.MinDevices = 1
	}
	if r := p.Retry; r != nil {
		if r.Backoff == 0 {
			r.Backoff = Duration(5 * time.Second)
		}
		if r.Factor == 0 {
			r.Factor = 2
		}
	}
	if g := p.Growth; g != nil && len(p.Stages) == 0 {
		share, total := g.First, 0.0
		for i := 0; total+share < 1-1e-9 && i < 64; i++ {
			s := share
			p.Stages = append(p.Stages, RolloutStage{Name: fmt.Sprintf("wave-%d", i+1), Share: &s})
			total += share
			share = math.Min(share*g.Factor, 1-total)
			if 1-total-share < 1e-9 {
				break
			}
		}
		p.Stages = append(p.Stages, RolloutStage{Name: fmt.Sprintf("wave-%d", len(p.Stages)+1), Rest: true})
	}
}

// StageJob returns the job stage i runs: its own, else the plan's.
func (p *RolloutPlan) StageJob(i int) *RolloutJob {
	if a := p.Stages[i].Action; a != nil {
		return a
	}
	return p.Action
}

// StageGates returns the gates of stage i: its own, else the plan's (nil: none).
func (p *RolloutPlan) StageGates(i int) *RolloutGates {
	if g := p.Stages[i].Gates; g != nil {
		return g
	}
	return p.Gates
}

// ShareRange returns the range [lo, hi) of hash shares stage i takes: share
// stages follow each other from 0, the rest stage takes everything above.
func (p *RolloutPlan) ShareRange(i int) (lo, hi float64) {
	for k := 0; k < i; k++ {
		if s := p.Stages[k].Share; s != nil {
			lo += *s
		}
	}
	if p.Stages[i].Rest {
		return lo, math.Inf(1)
	}
	if p.Stages[i].Share == nil {
		return 0, 0
	}
	return lo, lo + *p.Stages[i].Share
}

// RolloutAction starts a rollout.
type RolloutAction struct {
	At   time.Duration
	Plan *RolloutPlan
}

// When implements Action.
func (a RolloutAction) When() time.Duration { return a.At }

// String implements Action.
func (a RolloutAction) String() string {
	return fmt.Sprintf("at %s: rollout %s (%d stages over %s)", a.At, a.Plan.ID, len(a.Plan.Stages), a.Plan.Target)
}

// RolloutExpectSpec is an expectation on a rollout of the timeline.
type RolloutExpectSpec struct {
	ID         string `yaml:"id" required:"true" doc:"Id of the rollout (its plan's id)."`
	Outcome    string `yaml:"outcome" enum:"completed,aborted,stopped" doc:"How the rollout ends: completed, aborted (the abort rule fired) or stopped (a gate failed)."`
	AbortedAt  string `yaml:"abortedAt" doc:"The stage at which the rollout aborted or stopped."`
	MaxTouched *int   `yaml:"maxTouched" doc:"Most devices the rollout's stage jobs reached (before an abort, all of them)."`
	MinTouched *int   `yaml:"minTouched" doc:"Least devices the rollout's stage jobs reached."`
	AbortRule  string `yaml:"abortRule" enum:"maxFailures,maxFailureRate,operator" doc:"The abort rule that fired: maxFailures (the absolute count), maxFailureRate (the rate after minDevices) or operator."`
	RolledBack *bool  `yaml:"rolledBack" doc:"true: the rollback job ran over every device of the stage that stopped the rollout and finished; false: no rollback ran."`
	Stage      string `yaml:"stage" doc:"The stage that minConverged and retries look at."`
	// MinConverged and Retries need Stage.
	MinConverged *float64 `yaml:"minConverged" bounds:"probability" doc:"The stage's convergence gate passed with at least this fraction of its devices matching (0..1)."`
	Retries      []int    `yaml:"retries" doc:"The devices each retry round of the stage covered, in order, e.g. [12, 4]; [] means no retry ran."`
}

// RolloutExpectation is a validated RolloutExpectSpec; MaxTouched and
// MinTouched are -1 when not given, MinConverged is -1 when not given and
// Retries is nil when not given.
type RolloutExpectation struct {
	ID, Outcome, AbortedAt string
	MaxTouched, MinTouched int
	AbortRule              string
	RolledBack             *bool
	Stage                  string
	MinConverged           float64
	Retries                []int
	Line                   int
}

// String describes the expectation.
func (x RolloutExpectation) String() string {
	var parts []string
	if x.Outcome != "" {
		parts = append(parts, "ends "+x.Outcome)
	}
	if x.AbortedAt != "" {
		parts = append(parts, "stops at stage "+x.AbortedAt)
	}
	if x.MaxTouched >= 0 {
		parts = append(parts, fmt.Sprintf("touches at most %d devices", x.MaxTouched))
	}
	if x.MinTouched >= 0 {
		parts = append(parts, fmt.Sprintf("touches at least %d devices", x.MinTouched))
	}
	if x.AbortRule != "" {
		parts = append(parts, "aborts by rule "+x.AbortRule)
	}
	if x.RolledBack != nil && *x.RolledBack {
		parts = append(parts, "rolls back the stopping stage's devices")
	} else if x.RolledBack != nil {
		parts = append(parts, "runs no rollback")
	}
	if x.MinConverged >= 0 {
		parts = append(parts, fmt.Sprintf("converges at least %.1f %% of stage %s", 100*x.MinConverged, x.Stage))
	}
	if x.Retries != nil {
		parts = append(parts, fmt.Sprintf("retries %v devices at stage %s", x.Retries, x.Stage))
	}
	return "rollout " + x.ID + " " + strings.Join(parts, ", ")
}

// rolloutAction validates a rollout timeline entry's plan.
func (d *decoder) rolloutAction(f *File, a *ActionSpec, path string) {
	rp := join(path, "rollout")
	checkRolloutPlan(func(ptr any, p, format string, args ...any) {
		d.problem(d.where(ptr, a.Rollout, a), p, format, args...)
	}, a.Rollout, rp)
	for _, other := range f.Timeline {
		if other != a && other.Rollout != nil && other.Rollout.ID == a.Rollout.ID {
			d.problem(d.where(&a.Rollout.ID, a.Rollout), join(rp, "id"), "rollout id %q is used twice", a.Rollout.ID)
			break
		}
	}
	a.Rollout.defaults()
}

// rolloutExpectation validates an expectation on a rollout.
func (d *decoder) rolloutExpectation(f *File, s *Scenario, e *ExpectSpec, path string) {
	r := e.Rollout
	rp := join(path, "rollout")
	x := RolloutExpectation{ID: r.ID, Outcome: r.Outcome, AbortedAt: r.AbortedAt, MaxTouched: -1, MinTouched: -1,
		AbortRule: r.AbortRule, RolledBack: r.RolledBack, Stage: r.Stage, MinConverged: -1, Line: d.where(e).line}
	if e.Job != "" || e.DeviceState != nil || e.MinConnected != nil {
		d.problem(d.where(e), path, "an expectation on a rollout stands alone: give job, deviceState and minConnected their own entries")
	}
	var ids []string
	var plan *RolloutPlan
	for _, a := range f.Timeline {
		if a.Rollout != nil {
			ids = append(ids, a.Rollout.ID)
			if a.Rollout.ID == r.ID {
				plan = a.Rollout
			}
		}
	}
	if plan == nil {
		msg := fmt.Sprintf("no timeline entry starts rollout %q", r.ID)
		if sug := suggest(r.ID, ids); sug != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", sug)
		}
		d.problem(d.where(&r.ID, r), join(rp, "id"), "%s", msg)
	}
	if r.Outcome != "" && r.Outcome != "completed" && r.Outcome != "aborted" && r.Outcome != "stopped" {
		d.problem(d.where(&r.Outcome, r), join(rp, "outcome"), "outcome %q: want completed, aborted or stopped", r.Outcome)
	}
	if r.AbortedAt != "" && plan != nil && !slicesContainsStage(plan, r.AbortedAt) {
		d.problem(d.where(&r.AbortedAt, r), join(rp, "abortedAt"), "rollout %s has no stage %q", r.ID, r.AbortedAt)
	}
	if r.AbortedAt != "" && r.Outcome == "completed" {
		d.problem(d.where(&r.AbortedAt, r), join(rp, "abortedAt"), "a completed rollout does not stop at a stage")
	}
	for _, c := range []struct {
		v   *int
		key string
		out *int
	}{{r.MaxTouched, "maxTouched", &x.MaxTouched}, {r.MinTouched, "minTouched", &x.MinTouched}} {
		if c.v == nil {
			continue
		}
		if *c.v < 0 {
			d.problem(d.where(c.v, r), join(rp, c.key), "%d is negative", *c.v)
		}
		*c.out = *c.v
	}
	if r.AbortRule != "" && r.AbortRule != "maxFailures" && r.AbortRule != "maxFailureRate" && r.AbortRule != "operator" {
		d.problem(d.where(&r.AbortRule, r), join(rp, "abortRule"), "abortRule %q: want maxFailures, maxFailureRate or operator", r.AbortRule)
	}
	if r.Stage != "" && plan != nil && !slicesContainsStage(plan, r.Stage) {
		d.problem(d.where(&r.Stage, r), join(rp, "stage"), "rollout %s has no stage %q", r.ID, r.Stage)
	}
	if r.MinConverged != nil {
		x.MinConverged = *r.MinConverged
		if v := *r.MinConverged; v < 0 || v > 1 || v != v {
			d.problem(d.where(r.MinConverged, r), join(rp, "minConverged"), "%v is outside 0..1", v)
		}
		if r.Stage == "" {
			d.problem(d.where(r.MinConverged, r), join(rp, "minConverged"), "minConverged needs the stage it looks at (stage)")
		}
	}
	if r.Retries != nil {
		x.Retries = r.Retries
		if r.Stage == "" {
			d.problem(d.where(&r.Retries, r), join(rp, "retries"), "retries needs the stage it looks at (stage)")
		}
		for k, n := range r.Retries {
			if n < 0 {
				d.problem(d.where(&r.Retries, r), join(rp, fmt.Sprintf("retries[%d]", k)), "%d is negative", n)
			}
		}
	}
	if r.Stage != "" && r.MinConverged == nil && r.Retries == nil {
		d.problem(d.where(&r.Stage, r), join(rp, "stage"), "stage is for minConverged and retries: give one of them")
	}
	if r.Outcome == "" && r.AbortedAt == "" && r.MaxTouched == nil && r.MinTouched == nil && r.AbortRule == "" &&
		r.RolledBack == nil && r.MinConverged == nil && r.Retries == nil {
		d.problem(d.where(r), rp, "give at least one of outcome, abortedAt, maxTouched, minTouched, abortRule, rolledBack, minConverged and retries")
	}
	s.RolloutExpectations = append(s.RolloutExpectations, x)
}

func slicesContainsStage(p *RolloutPlan, name string) bool {
	for _, st := range p.Stages {
		if st.Name == name {
			return true
		}
	}
	return false
}

// Rehearse turns the scenario into a rehearsal of plan (fleetsim rollout
// run PLAN --scenario NAME): its fleet and disturbances stay, its own jobs
// and the expectations on them go, and the rollout starts at offset at,
// expected to complete. The run lasts until the rollout ends, 30 minutes
// at most (the scenario's own duration is for its own timeline).
func (s *Scenario) Rehearse(at time.Duration, plan *RolloutPlan) {
	s.Duration = max(s.Duration, 30*time.Minute)
	s.actions = slices.DeleteFunc(s.actions, func(a Action) bool {
		switch a.(type) {
		case JobAction, CancelAction, RolloutAction:
			return true
		}
		return false
	})
	s.Expectations = slices.DeleteFunc(s.Expectations, func(e Expectation) bool { return e.Job != "" })
	s.actions = append(s.actions, RolloutAction{At: at, Plan: plan})
	slices.SortStableFunc(s.actions, func(x, y Action) int { return cmp.Compare(x.When(), y.When()) })
	s.RolloutExpectations = []RolloutExpectation{{ID: plan.ID, Outcome: "completed", MaxTouched: -1, MinTouched: -1, MinConverged: -1}}
}
