// Package rollout runs staged, gated job campaigns (rollouts) against an
// IoT hub using only its public service API: jobs, cancel, queries of
// devices and devices.jobs, and twin jobs that tag devices. The same plan
// runs against fleetsim's embedded hub, a fleetsim serve and a real IoT hub.
//
// A plan names a population (a query condition), stages (by condition or by
// a seeded share of the population), each stage's job, the gates before the
// next stage, an abort rule, retries and an optional rollback. The engine
// keeps its state in a JSON file, written atomically after every step, so a
// rollout resumes where it was after a restart.
package rollout

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/fleetsim/fleetsim/scenarios"
)

// SchemaID is the $id of the plan files' JSON Schema.
const SchemaID = "https://github.com/fleetsim/fleetsim/scenarios/rollout/plan.schema.json"

// Duration is a length of time written as Go writes durations ("30s").
type Duration = scenarios.Duration

// Plan is a rollout plan file.
type Plan struct {
	ID          string      `yaml:"id" required:"true" doc:"Rollout id: letters, digits, '-' and '_', up to 48 characters. It names the rollout's jobs and its device tags."`
	Description string      `yaml:"description" doc:"What the rollout does."`
	Seed        int64       `yaml:"seed" doc:"Seed that picks the devices of share stages: the same seed picks the same devices."`
	Target      string      `yaml:"target" doc:"Query condition of the population, e.g. \"tags.model = 'm100'\"; default \"*\" (every device)."`
	Action      *ActionSpec `yaml:"action" required:"true" doc:"The job each stage runs over its devices, unless the stage has its own."`
	Stages      []StageSpec `yaml:"stages" doc:"The stages in order; each covers devices no earlier stage took."`
	Growth      *GrowthSpec `yaml:"growth" doc:"Instead of stages: share stages growing exponentially, from first by factor until the whole population."`
	Gates       *GatesSpec  `yaml:"gates" doc:"Gates every stage must pass before the next one starts, unless the stage has its own."`
	Abort       *AbortSpec  `yaml:"abort" doc:"When a stage's failures stop the rollout: its job is cancelled and rollback runs."`
	Retry       *RetrySpec  `yaml:"retry" doc:"Retries of a stage's failed or timed-out devices, as new jobs over exactly those devices."`
	Rollback    *ActionSpec `yaml:"rollback" doc:"Job run over the devices of the stage that stopped the rollout (abort or failed gate)."`
	Poll        Duration    `yaml:"poll" doc:"How often the engine reads job statistics and queries; default 1s."`
	MaxQueryLen int         `yaml:"maxQueryLength" doc:"Longest query condition the engine writes (IoT Hub's limit is 8192 characters); default 8000."`
}

// ActionSpec is a job: a method job (method) or a twin job (twin).
type ActionSpec struct {
	Method           string    `yaml:"method" doc:"Method name of a method job (scheduleDeviceMethod)."`
	Payload          any       `yaml:"payload" doc:"Method payload (any YAML value, sent as JSON)."`
	Twin             *TwinSpec `yaml:"twin" doc:"Patch of a twin job (scheduleUpdateTwin)."`
	ResponseTimeout  Duration  `yaml:"responseTimeout" doc:"Method response timeout, 5s..300s; default 30s."`
	ConnectTimeout   Duration  `yaml:"connectTimeout" doc:"How long the hub waits for an offline device to connect, 0..300s; default 0."`
	StartIn          Duration  `yaml:"startIn" doc:"Start time of the job relative to its creation; default 0 (at once)."`
	MaxExecutionTime Duration  `yaml:"maxExecutionTime" doc:"maxExecutionTimeInSeconds of the job; default 1h."`
}

// TwinSpec is the patch a twin job applies.
type TwinSpec struct {
	Tags    map[string]any `yaml:"tags" doc:"Tags to set (null deletes)."`
	Desired map[string]any `yaml:"desired" doc:"Desired properties to set (null deletes)."`
}

// StageSpec is one stage: by condition, by share, or the rest.
type StageSpec struct {
	Name      string      `yaml:"name" required:"true" doc:"Stage name, shown in progress and the report."`
	Condition string      `yaml:"condition" doc:"Query condition selecting the stage's devices (within the target), e.g. \"tags.ring = 'canary'\"."`
	Share     *float64    `yaml:"share" bounds:"probability" doc:"Fraction of the population (0..1), picked by hash(seed, deviceId)."`
	Rest      bool        `yaml:"rest" doc:"The stage takes every device of the population no earlier stage took."`
	Action    *ActionSpec `yaml:"action" doc:"This stage's job instead of the plan's action."`
	Gates     *GatesSpec  `yaml:"gates" doc:"This stage's gates instead of the plan's."`
	MaxRate   float64     `yaml:"maxRate" doc:"Most device operations per second: the stage runs in waves of at most maxRate devices a second (IoT Hub has no per-job pacing)."`
}

// GrowthSpec generates share stages of exponentially growing size.
type GrowthSpec struct {
	First  float64 `yaml:"first" required:"true" bounds:"probability" doc:"Share of the population of the first stage, e.g. 0.01."`
	Factor float64 `yaml:"factor" required:"true" doc:"Each stage is this many times the previous one (> 1); the last stage takes the rest."`
}

// GatesSpec are the checks after a stage's job before the next stage.
type GatesSpec struct {
	MinSuccessRate *float64      `yaml:"minSuccessRate" bounds:"probability" doc:"Least fraction of the stage's devices whose device job completed, after retries (0..1)."`
	Converge       *ConvergeSpec `yaml:"converge" doc:"Least fraction of the stage's devices whose twin matches a condition, within a time limit."`
	Bake           Duration      `yaml:"bake" doc:"Time to wait after the other gates passed before the next stage."`
	Approval       bool          `yaml:"approval" doc:"Wait for fleetsim rollout approve."`
}

// ConvergeSpec is a convergence gate.
type ConvergeSpec struct {
	Match       string   `yaml:"match" required:"true" doc:"Query condition the devices' twins must meet, e.g. \"properties.reported.firmware.currentVersion = '2.0.0'\"."`
	MinFraction *float64 `yaml:"minFraction" bounds:"probability" doc:"Least fraction of the stage's devices that match (0..1); default 1."`
	Within      Duration `yaml:"within" required:"true" doc:"Time limit from the end of the stage's job."`
}

// AbortSpec is the abort rule, evaluated on a stage's job statistics while
// it runs.
type AbortSpec struct {
	MaxFailureRate *float64 `yaml:"maxFailureRate" bounds:"probability" doc:"Abort when failed / finished devices reaches this (0..1), once minDevices have finished."`
	MinDevices     int      `yaml:"minDevices" doc:"Finished devices needed before maxFailureRate is judged; default 1."`
	MaxFailures    *int     `yaml:"maxFailures" doc:"Abort when this many devices of a stage have failed."`
}

// RetrySpec retries failed devices.
type RetrySpec struct {
	Attempts int      `yaml:"attempts" required:"true" doc:"Most retries per stage (1..10)."`
	Backoff  Duration `yaml:"backoff" doc:"Wait before the first retry; default 5s."`
	Factor   float64  `yaml:"factor" doc:"Each wait is this many times the previous one; default 2."`
}

var idRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,48}$`)

// ParsePlan decodes and validates a plan file strictly: every problem is
// reported at once in a *scenarios.ParseError with file:line:col positions.
func ParsePlan(filename string, data []byte) (*Plan, error) {
	p := new(Plan)
	at, err := scenarios.DecodeFile(filename, data, p)
	if err != nil {
		return nil, err
	}
	var problems []scenarios.Problem
	bad := func(ptr any, path, format string, args ...any) {
		l, c := at.Pos(ptr)
		problems = append(problems, scenarios.Problem{File: filename, Line: l, Col: c, Path: path, Msg: fmt.Sprintf(format, args...)})
	}
	if !idRE.MatchString(p.ID) {
		bad(&p.ID, "id", "%q is not a rollout id: 1 to 48 letters, digits, '-' or '_'", p.ID)
	}
	checkAction(bad, p.Action, "action")
	checkAction(bad, p.Rollback, "rollback")
	switch {
	case p.Growth != nil && len(p.Stages) > 0:
		bad(&p.Growth, "growth", "give stages or growth, not both")
	case p.Growth == nil && len(p.Stages) == 0:
		bad(p, "", "the plan needs stages (or growth)")
	case p.Growth != nil:
		if p.Growth.First <= 0 || p.Growth.First >= 1 {
			bad(&p.Growth.First, "growth.first", "must be between 0 and 1 (exclusive)")
		}
		if p.Growth.Factor <= 1 {
			bad(&p.Growth.Factor, "growth.factor", "must be more than 1")
		}
	}
	var shares float64
	names := map[string]bool{}
	for i := range p.Stages {
		s := &p.Stages[i]
		path := fmt.Sprintf("stages[%d]", i)
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
		bad(&p.Stages, "stages", "the shares add up to %.4g, more than 1", shares)
	}
	checkGates(bad, p.Gates, "gates")
	if a := p.Abort; a != nil {
		if a.MaxFailureRate == nil && a.MaxFailures == nil {
			bad(a, "abort", "give maxFailureRate or maxFailures")
		}
		if a.MaxFailureRate != nil && (*a.MaxFailureRate < 0 || *a.MaxFailureRate > 1) {
			bad(a.MaxFailureRate, "abort.maxFailureRate", "must be between 0 and 1")
		}
		if a.MinDevices < 0 {
			bad(&a.MinDevices, "abort.minDevices", "must not be negative")
		}
		if a.MaxFailures != nil && *a.MaxFailures < 1 {
			bad(a.MaxFailures, "abort.maxFailures", "must be at least 1")
		}
	}
	if r := p.Retry; r != nil {
		if r.Attempts < 1 || r.Attempts > 10 {
			bad(&r.Attempts, "retry.attempts", "must be 1 to 10")
		}
		if r.Factor != 0 && r.Factor < 1 {
			bad(&r.Factor, "retry.factor", "must be at least 1")
		}
	}
	if p.MaxQueryLen != 0 && (p.MaxQueryLen < 64 || p.MaxQueryLen > 8192) {
		bad(&p.MaxQueryLen, "maxQueryLength", "must be 64 to 8192")
	}
	if len(problems) > 0 {
		return nil, &scenarios.ParseError{File: filename, Problems: sortProblems(problems)}
	}
	p.defaults()
	return p, nil
}

func sortProblems(ps []scenarios.Problem) []scenarios.Problem {
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && (ps[j].Line < ps[j-1].Line || ps[j].Line == ps[j-1].Line && ps[j].Col < ps[j-1].Col); j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
	return ps
}

type badFunc func(ptr any, path, format string, args ...any)

func checkAction(bad badFunc, a *ActionSpec, path string) {
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

func checkGates(bad badFunc, g *GatesSpec, path string) {
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
func (p *Plan) defaults() {
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
			p.Stages = append(p.Stages, StageSpec{Name: fmt.Sprintf("wave-%d", i+1), Share: &s})
			total += share
			share = math.Min(share*g.Factor, 1-total)
			if 1-total-share < 1e-9 {
				break
			}
		}
		p.Stages = append(p.Stages, StageSpec{Name: fmt.Sprintf("wave-%d", len(p.Stages)+1), Rest: true})
	}
}

// LoadPlan reads and parses a plan file.
func LoadPlan(path string) (*Plan, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	return ParsePlan(path, data)
}

// JSONSchema returns the JSON Schema of plan files; the committed copy is
// scenarios/rollout/plan.schema.json.
func JSONSchema() []byte {
	return scenarios.JSONSchemaOf(reflect.TypeFor[Plan](), SchemaID, "fleetsim rollout plan",
		"A fleetsim rollout plan: stages of IoT Hub jobs over a population, gates between them, an abort rule, retries and a rollback.")
}

// stageAction returns the job stage i runs.
func (p *Plan) stageAction(i int) *ActionSpec {
	if a := p.Stages[i].Action; a != nil {
		return a
	}
	return p.Action
}

// stageGates returns the gates of stage i (nil: none).
func (p *Plan) stageGates(i int) *GatesSpec {
	if g := p.Stages[i].Gates; g != nil {
		return g
	}
	return p.Gates
}

// errStopped is returned by Run when the rollout stopped (aborted or a gate
// failed); the state says why.
var errStopped = errors.New("the rollout stopped")

// payloadJSON returns the action's payload as JSON.
func (a *ActionSpec) payloadJSON() (json.RawMessage, error) {
	if a.Payload == nil {
		return nil, nil
	}
	b, err := json.Marshal(a.Payload)
	if err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	return b, nil
}
