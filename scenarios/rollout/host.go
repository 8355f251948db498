package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/fleetsim/fleetsim/internal/iothub"
	"github.com/fleetsim/fleetsim/scenarios"
)

// Error codes of fleetsim's rollout endpoints. IoT Hub has no rollouts, so
// these codes are fleetsim's own; they travel with the HTTP status of their
// number's first three digits, in IoT Hub's error body.
var (
	CodeRolloutNotFound      = iothub.Code{Name: "RolloutNotFound", Number: 404901}
	CodeRolloutAlreadyExists = iothub.Code{Name: "RolloutAlreadyExists", Number: 409901}
)

// Host runs rollouts on behalf of a hub (fleetsim serve): plans are
// submitted to it, it runs each in its own goroutine, which Run owns, and
// keeps each rollout's state file (ID.json, with its control file beside
// it) in Dir, so that a restarted hub resumes the rollouts that were
// running. Its methods answer with JSON and *iothub.Error, as the hub's
// REST API and console pass them on.
type Host struct {
	hub Hub
	dir string
	log zerolog.Logger

	mu      sync.Mutex
	running map[string]bool
	submit  chan *Engine
	stopped chan struct{} // closed when Run ends
}

// NewHost returns a host whose rollouts run on hub and keep their state in
// dir (created if missing).
func NewHost(hub Hub, dir string, log zerolog.Logger) (*Host, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("rollouts folder: %w", err)
	}
	return &Host{hub: hub, dir: dir, log: log, running: map[string]bool{}, submit: make(chan *Engine), stopped: make(chan struct{})}, nil
}

// Run resumes the rollouts whose state files say they had not ended, runs
// the ones submitted, and when ctx ends waits for every rollout's goroutine
// (their state stays where it was, to resume at the next start).
func (h *Host) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	defer func() {
		close(h.stopped)
		wg.Wait()
	}()
	start := func(e *Engine) {
		e.ApproveCommand = "fleetsim rollout approve --hub " + e.st.ID
		wg.Go(func() { h.run(ctx, e) })
	}
	paths, err := h.stateFiles()
	if err != nil {
		return err
	}
	for _, p := range paths {
		st, err := LoadState(p)
		if err != nil {
			h.log.Error().Err(err).Str("file", p).Msg("rollout state unreadable; not resumed")
			continue
		}
		if st.Terminal() {
			continue
		}
		h.mu.Lock()
		taken := h.running[st.ID] // submitted just now: Submit hands it over
		h.running[st.ID] = true
		h.mu.Unlock()
		if taken {
			continue
		}
		e, err := Resume(h.hub, p)
		if err != nil {
			h.log.Error().Err(err).Str("file", p).Msg("rollout not resumed")
			h.mu.Lock()
			delete(h.running, st.ID)
			h.mu.Unlock()
			continue
		}
		h.log.Info().Str("rollout", st.ID).Int("stage", st.Stage+1).Msg("rollout resumed")
		start(e)
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case e := <-h.submit:
			start(e)
		}
	}
}

func (h *Host) run(ctx context.Context, e *Engine) {
	id := e.st.ID
	defer func() {
		h.mu.Lock()
		delete(h.running, id)
		h.mu.Unlock()
	}()
	st, err := e.Run(ctx)
	switch {
	case err != nil && ctx.Err() != nil:
		h.log.Info().Str("rollout", id).Msg("rollout paused by the hub's shutdown; it resumes at the next start")
	case err != nil:
		h.log.Error().Err(err).Str("rollout", id).Msg("rollout engine stopped")
	default:
		h.log.Info().Str("rollout", id).Str("status", st.Status).Msg("rollout ended")
	}
}

// stateFiles lists the state files in the host's folder.
func (h *Host) stateFiles() ([]string, error) {
	paths, err := filepath.Glob(filepath.Join(h.dir, "*.json"))
	if err != nil {
		return nil, err
	}
	paths = slices.DeleteFunc(paths, func(p string) bool { return strings.HasSuffix(p, ".control.json") })
	slices.Sort(paths)
	return paths, nil
}

var hostIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,48}$`)

// path returns the state file of rollout id, or RolloutNotFound for an id
// no rollout can have.
func (h *Host) path(id string) (string, error) {
	if !hostIDRE.MatchString(id) {
		return "", iothub.Errorf(CodeRolloutNotFound, "rollout %q does not exist", id)
	}
	return filepath.Join(h.dir, id+".json"), nil
}

// load reads rollout id's state, RolloutNotFound when there is none.
func (h *Host) load(id string) (*State, string, error) {
	p, err := h.path(id)
	if err != nil {
		return nil, "", err
	}
	st, err := LoadState(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, "", iothub.Errorf(CodeRolloutNotFound, "rollout %q does not exist", id)
	}
	if err != nil {
		return nil, "", err
	}
	return st, p, nil
}

// Submit parses a plan (YAML or JSON, checked as plan files are; filename
// names it in the problems' positions) and starts its rollout. It answers
// the rollout's first state. A plan with problems is ArgumentInvalid with
// every problem as file:line:col in the message and in info.problems; a
// rollout id in use is RolloutAlreadyExists.
func (h *Host) Submit(ctx context.Context, filename string, body []byte) ([]byte, error) {
	if filename == "" {
		filename = "plan"
	}
	plan, err := ParsePlan(filename, body)
	if err != nil {
		var pe *scenarios.ParseError
		if errors.As(err, &pe) {
			lines := pe.Lines()
			return nil, &iothub.Error{Code: iothub.CodeArgumentInvalid, Message: strings.Join(lines, "\n"), Info: map[string]any{"problems": lines}}
		}
		return nil, iothub.Errorf(iothub.CodeArgumentInvalid, "%v", err)
	}
	p, err := h.path(plan.ID)
	if err != nil {
		return nil, err
	}
	// The id is taken under the lock; the engine is handed to Run without
	// it, as Run takes the lock too while it resumes rollouts.
	h.mu.Lock()
	if _, err := os.Stat(p); err == nil || h.running[plan.ID] {
		h.mu.Unlock()
		return nil, iothub.Errorf(CodeRolloutAlreadyExists, "rollout %q exists; give the plan another id", plan.ID)
	}
	h.running[plan.ID] = true
	h.mu.Unlock()
	fail := func(err error) ([]byte, error) {
		_ = os.Remove(p)
		h.mu.Lock()
		delete(h.running, plan.ID)
		h.mu.Unlock()
		return nil, err
	}
	e, err := Start(h.hub, plan, filename, p)
	if err != nil {
		return fail(err)
	}
	e.st.Updated = time.Now().UTC()
	if err := e.st.Save(p); err != nil {
		return fail(err)
	}
	b, err := json.Marshal(e.st)
	if err != nil {
		return fail(err)
	}
	select {
	case h.submit <- e:
	case <-h.stopped:
		return fail(iothub.Errorf(iothub.CodeServiceUnavailable, "the hub is stopping"))
	case <-ctx.Done():
		return fail(ctx.Err())
	}
	h.log.Info().Str("rollout", plan.ID).Int("stages", len(plan.Stages)).Msg("rollout submitted")
	return b, nil
}

// Summary is one rollout in the host's list.
type Summary struct {
	ID      string     `json:"id"`
	Status  string     `json:"status"`
	Reason  string     `json:"reason,omitempty"`
	Stage   int        `json:"stage"` // the stage it is at, 1-based; stages+1 when done
	Stages  int        `json:"stages"`
	Current string     `json:"currentStage,omitempty"`
	Touched int        `json:"touched"`
	Started time.Time  `json:"started"`
	Updated time.Time  `json:"updated"`
	Ended   *time.Time `json:"ended,omitempty"`
}

// SummaryOf returns a state's summary.
func SummaryOf(st *State) Summary {
	s := Summary{ID: st.ID, Status: st.Status, Reason: st.Reason, Stage: st.Stage + 1, Stages: len(st.Stages),
		Touched: st.Touched(), Started: st.Started, Updated: st.Updated, Ended: st.Ended}
	if st.Stage < len(st.Stages) {
		s.Current = st.Stages[st.Stage].Name
	}
	return s
}

// List answers the summaries of every rollout the host has, newest first.
func (h *Host) List() ([]byte, error) {
	paths, err := h.stateFiles()
	if err != nil {
		return nil, err
	}
	out := []Summary{}
	for _, p := range paths {
		st, err := LoadState(p)
		if err != nil {
			continue
		}
		out = append(out, SummaryOf(st))
	}
	slices.SortStableFunc(out, func(a, b Summary) int { return b.Started.Compare(a.Started) })
	return json.Marshal(out)
}

// Get answers a rollout's state: the structure of its state file, which
// 'fleetsim rollout status --json' shows.
func (h *Host) Get(id string) ([]byte, error) {
	st, _, err := h.load(id)
	if err != nil {
		return nil, err
	}
	return json.Marshal(st)
}

// Approve approves stage ("" is the stage the rollout waits on) and
// answers {"id", "stage"}. A rollout that has ended, or that waits on no
// approval when no stage is named, or a stage already past, is
// PreconditionFailed; an unknown stage is ArgumentInvalid.
func (h *Host) Approve(id, stage string) ([]byte, error) {
	st, p, err := h.load(id)
	if err != nil {
		return nil, err
	}
	if st.Terminal() {
		return nil, iothub.Errorf(iothub.CodePreconditionFailed, "rollout %s has ended (%s)", id, st.Status)
	}
	if stage == "" {
		if st.Status != StatusWaiting {
			return nil, iothub.Errorf(iothub.CodePreconditionFailed, "rollout %s waits on no approval (it is %s at stage %d); name a stage to approve it ahead", id, st.Status, st.Stage+1)
		}
		stage = st.Stages[st.Stage].Name
	}
	i := slices.IndexFunc(st.Stages, func(s *StageState) bool { return s.Name == stage })
	if i < 0 {
		return nil, iothub.Errorf(iothub.CodeArgumentInvalid, "rollout %s has no stage %q", id, stage)
	}
	if i < st.Stage {
		return nil, iothub.Errorf(iothub.CodePreconditionFailed, "stage %s of rollout %s is done", stage, id)
	}
	if _, err := Approve(p, stage); err != nil {
		return nil, err
	}
	h.log.Info().Str("rollout", id).Str("stage", stage).Msg("rollout stage approved")
	return json.Marshal(map[string]string{"id": id, "stage": stage})
}

// Abort asks the rollout's engine to abort it (cancel the stage's job, run
// the rollback) and answers {"id", "reason"}; a rollout that has ended is
// PreconditionFailed.
func (h *Host) Abort(id, reason string) ([]byte, error) {
	st, p, err := h.load(id)
	if err != nil {
		return nil, err
	}
	if st.Terminal() {
		return nil, iothub.Errorf(iothub.CodePreconditionFailed, "rollout %s has ended (%s)", id, st.Status)
	}
	if reason == "" {
		reason = "aborted by an operator"
	}
	if err := RequestAbort(p, reason); err != nil {
		return nil, err
	}
	h.log.Info().Str("rollout", id).Str("reason", reason).Msg("rollout abort requested")
	return json.Marshal(map[string]string{"id": id, "reason": reason})
}
