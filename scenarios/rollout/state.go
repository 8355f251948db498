package rollout

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// Rollout statuses.
const (
	StatusRunning = "running"
	StatusWaiting = "waitingApproval"
	StatusDone    = "completed"
	StatusAborted = "aborted" // the abort rule fired or an operator aborted
	StatusStopped = "stopped" // a gate failed
	StatusFailed  = "failed"  // the engine could not go on (the hub refused a job, ...)
)

// Stage steps, in order.
const (
	stepMark     = "mark"
	stepRun      = "run"
	stepRetry    = "retry"
	stepGates    = "gates"
	stepApproval = "approval"
	stepDone     = "done"
)

// State is a rollout's durable state and its report: what ran, the figures
// each gate saw, and which rule stopped it.
type State struct {
	ID       string        `json:"id"`
	PlanFile string        `json:"planFile,omitempty"`
	Plan     *Plan         `json:"plan"`
	Status   string        `json:"status"`
	Reason   string        `json:"reason,omitempty"`
	Stage    int           `json:"stage"`
	Stages   []*StageState `json:"stages"`
	Abort    *AbortRecord  `json:"abort,omitempty"`
	Started  time.Time     `json:"started"`
	Updated  time.Time     `json:"updated"`
	Ended    *time.Time    `json:"ended,omitempty"`
	Events   []Event       `json:"events"`
}

// StageState is one stage's progress.
type StageState struct {
	Name    string `json:"name"`
	Step    string `json:"step"`
	Devices int    `json:"devices"`
	Waves   int    `json:"waves,omitempty"`
	// Jobs are the stage's jobs in creation order: marks, the action
	// (one per wave), retries and the rollback.
	Jobs []*JobRecord `json:"jobs"`
	// Attempt is the number of retries started.
	Attempt   int          `json:"attempt"`
	RetryAt   *time.Time   `json:"retryAt,omitempty"`
	GatesFrom *time.Time   `json:"gatesFrom,omitempty"`
	BakeUntil *time.Time   `json:"bakeUntil,omitempty"`
	Gates     []GateResult `json:"gates,omitempty"`
	Started   *time.Time   `json:"started,omitempty"`
	Ended     *time.Time   `json:"ended,omitempty"`
}

// Job kinds of a JobRecord.
const (
	KindMark     = "mark"
	KindAction   = "action"
	KindRetry    = "retry"
	KindRollback = "rollback"
)

// JobRecord is one job the rollout created.
type JobRecord struct {
	ID        string     `json:"id"`
	Kind      string     `json:"kind"`
	Condition string     `json:"condition"`
	Status    string     `json:"status"`
	Stats     Stats      `json:"stats"`
	Created   time.Time  `json:"created"`
	Ended     *time.Time `json:"ended,omitempty"`
}

// GateResult is a gate's verdict and the figures it was judged on.
type GateResult struct {
	Gate    string `json:"gate"`
	Passed  bool   `json:"passed"`
	Figures string `json:"figures"`
	// Count of Of devices met the gate (succeeded, or matched the
	// convergence condition); Value is their fraction, Threshold the least
	// fraction the gate needs. A bake or approval gate has none.
	Count     int       `json:"count,omitempty"`
	Of        int       `json:"of,omitempty"`
	Value     float64   `json:"value,omitempty"`
	Threshold float64   `json:"threshold,omitempty"`
	At        time.Time `json:"at"`
}

// AbortRecord says which rule stopped the rollout, when, and on which figures.
type AbortRecord struct {
	Rule     string    `json:"rule"`
	Stage    string    `json:"stage"`
	Job      string    `json:"job,omitempty"`
	At       time.Time `json:"at"`
	Failed   int       `json:"failed"`
	Finished int       `json:"finished"`
	Devices  int       `json:"devices"`
	// Touched is the number of devices any job of the rollout (marks
	// aside) reached before the abort.
	Touched int `json:"touched"`
}

// Event is one line of the rollout's history.
type Event struct {
	At    time.Time `json:"at"`
	Stage string    `json:"stage,omitempty"`
	Msg   string    `json:"msg"`
}

// Terminal reports whether the rollout has ended.
func (s *State) Terminal() bool {
	return s.Status == StatusDone || s.Status == StatusAborted || s.Status == StatusStopped || s.Status == StatusFailed
}

// Touched returns the number of devices the rollout's action, retry and
// rollback jobs reached (succeeded or failed).
func (s *State) Touched() int {
	n := 0
	for _, st := range s.Stages {
		for _, j := range st.Jobs {
			if j.Kind == KindAction {
				n += j.Stats.SucceededCount + j.Stats.FailedCount
			}
		}
	}
	return n
}

// NewState returns the initial state of a rollout of plan.
func NewState(plan *Plan, planFile string) *State {
	s := &State{ID: plan.ID, PlanFile: planFile, Plan: plan, Status: StatusRunning, Events: []Event{}}
	for _, sp := range plan.Stages {
		s.Stages = append(s.Stages, &StageState{Name: sp.Name, Step: stepMark, Jobs: []*JobRecord{}})
	}
	return s
}

// LoadState reads a state file.
func LoadState(path string) (*State, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read rollout state: %w", err)
	}
	s := new(State)
	if err := json.Unmarshal(b, s); err != nil {
		return nil, fmt.Errorf("read rollout state %s: %w", path, err)
	}
	if s.Plan == nil || len(s.Stages) != len(s.Plan.Stages) {
		return nil, fmt.Errorf("read rollout state %s: the plan and the stages do not match", path)
	}
	return s, nil
}

// Save writes the state to path atomically: a temporary file in the same
// folder, synced, then renamed over the old one, so a crash leaves either
// the old state or the new one.
func (s *State) Save(path string) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("encode rollout state: %w", err)
	}
	return writeAtomic(path, append(b, '\n'))
}

func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
		return fmt.Errorf("write %s: %w", path, err)
	}
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		_ = d.Close()
	}
	return nil
}

// Control is what an operator asks of a running rollout, kept beside its
// state file (STATE.control.json) so that the engine alone writes the state.
type Control struct {
	// Approved lists the stages approved with fleetsim rollout approve.
	Approved []string `json:"approved,omitempty"`
	// Abort, when set, is an operator's reason to abort.
	Abort string `json:"abort,omitempty"`
}

// ControlPath returns the control file of a state file.
func ControlPath(statePath string) string { return statePath + ".control.json" }

// LoadControl reads the control file of a state file; a missing one is empty.
func LoadControl(statePath string) (Control, error) {
	var c Control
	b, err := os.ReadFile(ControlPath(statePath))
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("read rollout control: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("read rollout control: %w", err)
	}
	return c, nil
}

func saveControl(statePath string, c Control) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(ControlPath(statePath), append(b, '\n'))
}

// Approve approves a stage (by name; "" is the stage waiting for approval)
// of the rollout whose state is at statePath. It returns the stage approved.
func Approve(statePath, stage string) (string, error) {
	s, err := LoadState(statePath)
	if err != nil {
		return "", err
	}
	if stage == "" {
		if s.Terminal() || s.Stage >= len(s.Stages) {
			return "", fmt.Errorf("rollout %s has ended (%s)", s.ID, s.Status)
		}
		stage = s.Stages[s.Stage].Name
	}
	if !slices.ContainsFunc(s.Stages, func(st *StageState) bool { return st.Name == stage }) {
		return "", fmt.Errorf("rollout %s has no stage %q", s.ID, stage)
	}
	c, err := LoadControl(statePath)
	if err != nil {
		return "", err
	}
	if !slices.Contains(c.Approved, stage) {
		c.Approved = append(c.Approved, stage)
	}
	return stage, saveControl(statePath, c)
}

// RequestAbort asks the engine running the rollout at statePath to abort it.
func RequestAbort(statePath, reason string) error {
	if _, err := LoadState(statePath); err != nil {
		return err
	}
	c, err := LoadControl(statePath)
	if err != nil {
		return err
	}
	if reason == "" {
		reason = "aborted by an operator"
	}
	c.Abort = reason
	return saveControl(statePath, c)
}
