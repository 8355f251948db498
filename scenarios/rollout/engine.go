package rollout

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Engine runs one rollout. Its state lives in StatePath: Run creates it (or
// resumes from it) and writes it after every step.
type Engine struct {
	// Hub is the hub the rollout's jobs run on.
	Hub Hub
	// StatePath is the state file; "" keeps the state in memory only.
	StatePath string
	// OnEvent, when set, is called with every event as it happens.
	OnEvent func(Event)
	// OnSave, when set, is called with the state each time the engine
	// records a step or new job figures, on the goroutine that runs Run.
	OnSave func(*State)
	// ApproveCommand, when set, is the command that approves a stage, which
	// the event of a stage waiting for approval names (default: fleetsim
	// rollout approve --state STATEPATH).
	ApproveCommand string

	st       *State
	stopping bool // stop is running: control requests are not judged again
}

// Start returns an engine that runs plan from the beginning, or resumes the
// rollout in statePath when that file exists and holds the same rollout.
func Start(h Hub, plan *Plan, planFile, statePath string) (*Engine, error) {
	e := &Engine{Hub: h, StatePath: statePath}
	if statePath != "" {
		s, err := LoadState(statePath)
		switch {
		case err == nil:
			if s.ID != plan.ID {
				return nil, fmt.Errorf("state file %s holds rollout %s, not %s", statePath, s.ID, plan.ID)
			}
			e.st = s // the plan the rollout started with goes on
			return e, nil
		case !errors.Is(err, fs.ErrNotExist):
			return nil, err // never start over a state file that cannot be read
		}
	}
	e.st = NewState(plan, planFile)
	return e, nil
}

// Resume returns an engine that resumes the rollout in statePath.
func Resume(h Hub, statePath string) (*Engine, error) {
	s, err := LoadState(statePath)
	if err != nil {
		return nil, err
	}
	return &Engine{Hub: h, StatePath: statePath, st: s}, nil
}

// State returns the rollout's state. It is not safe to call while Run runs.
func (e *Engine) State() *State { return e.st }

func (e *Engine) plan() *Plan { return e.st.Plan }

func (e *Engine) event(stage, format string, args ...any) {
	ev := Event{At: time.Now().UTC(), Stage: stage, Msg: fmt.Sprintf(format, args...)}
	e.st.Events = append(e.st.Events, ev)
	if e.OnEvent != nil {
		e.OnEvent(ev)
	}
}

func (e *Engine) save() error {
	e.st.Updated = time.Now().UTC()
	if e.OnSave != nil {
		e.OnSave(e.st)
	}
	if e.StatePath == "" {
		return nil
	}
	return e.st.Save(e.StatePath)
}

// Run runs the rollout until it ends or ctx ends, and returns its final
// state. A rollout that ended (completed, aborted, stopped by a gate) is no
// error; an error means the engine could not go on (the state says where it
// was, and Run resumes from there). Ending ctx leaves the rollout where it
// was, its jobs running, ready to resume.
func (e *Engine) Run(ctx context.Context) (*State, error) {
	s := e.st
	if s.Terminal() {
		return s, nil
	}
	if s.Started.IsZero() {
		s.Started = time.Now().UTC()
		e.event("", "rollout %s started: %d stages over %s", s.ID, len(s.Stages), e.plan().Target)
	} else {
		e.event("", "rollout %s resumed at stage %d", s.ID, s.Stage+1)
	}
	if err := e.save(); err != nil {
		return s, err
	}
	for s.Stage < len(s.Stages) {
		err := e.runStage(ctx, s.Stage)
		if errors.Is(err, errStopped) {
			break
		}
		if err != nil {
			if ctx.Err() != nil {
				_ = e.save()
				return s, err
			}
			e.finish(StatusFailed, err.Error())
			return s, errors.Join(err, e.save())
		}
		s.Stage++
		if err := e.save(); err != nil {
			return s, err
		}
	}
	if !s.Terminal() {
		e.finish(StatusDone, "")
	}
	return s, e.save()
}

func (e *Engine) finish(status, reason string) {
	now := time.Now().UTC()
	e.st.Status, e.st.Reason, e.st.Ended = status, reason, &now
	if reason != "" {
		e.event("", "rollout %s %s: %s", e.st.ID, status, reason)
	} else {
		e.event("", "rollout %s %s", e.st.ID, status)
	}
}

// tagKey is the rollout's key under tags.rollout: the id with the
// characters a query path cannot hold replaced.
func (e *Engine) tagKey() string { return "r_" + notKeyChar.ReplaceAllString(e.st.ID, "_") }

var notKeyChar = regexp.MustCompile(`[^A-Za-z0-9_]`)

func (e *Engine) tagPath(field string) string { return "tags.rollout." + e.tagKey() + "." + field }

// stageCondition selects the devices of stage i by their mark.
func (e *Engine) stageCondition(i int) string {
	return fmt.Sprintf("%s = %d", e.tagPath("stage"), i+1)
}

func (e *Engine) runStage(ctx context.Context, i int) error {
	st := e.st.Stages[i]
	for {
		if err := e.checkControl(ctx, i); err != nil {
			return err
		}
		var err error
		switch st.Step {
		case stepMark:
			if st.Started == nil {
				now := time.Now().UTC()
				st.Started = &now
			}
			err = e.mark(ctx, i)
		case stepRun:
			err = e.runAction(ctx, i)
		case stepRetry:
			err = e.retry(ctx, i)
		case stepGates:
			err = e.gates(ctx, i)
		case stepApproval:
			err = e.approval(ctx, i)
		case stepDone:
			return nil
		default:
			return fmt.Errorf("stage %s: unknown step %q", st.Name, st.Step)
		}
		if err != nil {
			return err
		}
		if err := e.save(); err != nil {
			return err
		}
	}
}

// checkControl reads the control file and aborts on an operator's request.
func (e *Engine) checkControl(ctx context.Context, i int) error {
	if e.StatePath == "" || e.stopping {
		return nil
	}
	c, err := LoadControl(e.StatePath)
	if err != nil || c.Abort == "" {
		return err
	}
	st := e.st.Stages[i]
	for _, j := range st.Jobs {
		if !terminal(j.Status) && j.Kind != KindMark {
			if _, err := e.Hub.CancelJob(ctx, j.ID); err != nil && status(err) != 404 {
				return fmt.Errorf("cancel job %s: %w", j.ID, err)
			}
		}
	}
	e.st.Abort = &AbortRecord{Rule: "operator", Stage: st.Name, At: time.Now().UTC(), Touched: e.st.Touched()}
	e.event(st.Name, "abort requested: %s", c.Abort)
	return e.stop(ctx, i, StatusAborted, c.Abort)
}

// stop ends the rollout at stage i: the rollback runs over the stage's
// devices, then the rollout ends with status.
func (e *Engine) stop(ctx context.Context, i int, status, reason string) error {
	st := e.st.Stages[i]
	e.stopping = true
	if rb := e.plan().Rollback; rb != nil && st.Devices > 0 {
		id := fmt.Sprintf("%s-s%d-rollback", e.st.ID, i+1)
		req, err := e.jobRequest(id, rb, e.stageCondition(i))
		if err != nil {
			return err
		}
		e.event(st.Name, "rollback over the stage's %d devices (job %s)", st.Devices, id)
		if _, err := e.runJob(ctx, i, KindRollback, req, false); err != nil {
			return err
		}
	}
	e.finish(status, reason)
	if err := e.save(); err != nil {
		return err
	}
	return errStopped
}

// hashShare places a device in [0, 1) from the seed and its id.
func hashShare(seed int64, id string) float64 {
	b := binary.LittleEndian.AppendUint64(nil, uint64(seed))
	sum := sha256.Sum256(append(b, id...))
	return float64(binary.BigEndian.Uint64(sum[:8])>>11) / (1 << 53)
}

// selectDevices returns the ids of stage i's devices: the population (and
// the stage's condition) less the devices earlier stages marked, and for a
// share stage those whose hash share falls in the stage's range. It can be
// run again after a restart: devices this stage already marked stay in.
func (e *Engine) selectDevices(ctx context.Context, i int) ([]string, error) {
	p := e.plan()
	sp := p.Stages[i]
	cond := "(" + p.Target + ")"
	if p.Target == "*" {
		cond = ""
	}
	if sp.Condition != "" {
		if cond != "" {
			cond += " AND "
		}
		cond += "(" + sp.Condition + ")"
	}
	q := "SELECT deviceId, tags FROM devices"
	if cond != "" {
		q += " WHERE " + cond
	}
	rows, err := e.queryAll(ctx, q)
	if err != nil {
		return nil, err
	}
	key := e.tagKey()
	var ids []string
	for _, r := range rows {
		var d struct {
			DeviceID string `json:"deviceId"`
			Tags     struct {
				Rollout map[string]struct {
					Stage *int `json:"stage"`
				} `json:"rollout"`
			} `json:"tags"`
		}
		if err := json.Unmarshal(r, &d); err != nil {
			return nil, fmt.Errorf("query %q: unexpected row: %w", q, err)
		}
		if m, ok := d.Tags.Rollout[key]; ok && m.Stage != nil && *m.Stage != i+1 {
			continue
		}
		if sp.Share != nil || sp.Rest {
			lo, hi := p.ShareRange(i)
			if u := hashShare(p.Seed, d.DeviceID); u < lo || u >= hi {
				continue
			}
		}
		ids = append(ids, d.DeviceID)
	}
	slices.Sort(ids)
	return ids, nil
}

func (e *Engine) queryAll(ctx context.Context, q string) ([]json.RawMessage, error) {
	var out []json.RawMessage
	cont := ""
	for range 1 << 20 {
		items, next, err := e.Hub.QueryPage(ctx, q, cont)
		if err != nil {
			return nil, fmt.Errorf("query %q: %w", q, err)
		}
		out = append(out, items...)
		if next == "" {
			return out, nil
		}
		cont = next
	}
	return nil, fmt.Errorf("query %q did not end", q)
}

// idConditions splits ids into "deviceId IN [...]" conditions no longer
// than limit characters each (IoT Hub refuses longer queries).
func idConditions(ids []string, limit int) []string {
	var out []string
	var b strings.Builder
	for _, id := range ids {
		lit := "'" + strings.ReplaceAll(strings.ReplaceAll(id, `\`, `\\`), "'", `\'`) + "'"
		if b.Len() > 0 && b.Len()+len(lit)+2 > limit {
			out = append(out, b.String()+"]")
			b.Reset()
		}
		if b.Len() == 0 {
			b.WriteString("deviceId IN [")
		} else {
			b.WriteString(",")
		}
		b.WriteString(lit)
	}
	if b.Len() > 0 {
		out = append(out, b.String()+"]")
	}
	return out
}

// markDevices tags ids with tags.rollout.<key> = fields through twin jobs
// over deviceId IN [...] conditions, one at a time (IoT Hub limits
// concurrent jobs), named prefix-m1, prefix-m2, ...
func (e *Engine) markDevices(ctx context.Context, i int, prefix string, ids []string, fields map[string]any) error {
	patch, err := json.Marshal(map[string]any{"tags": map[string]any{"rollout": map[string]any{e.tagKey(): fields}}})
	if err != nil {
		return err
	}
	for k, cond := range idConditions(ids, e.plan().MaxQueryLen) {
		req := JobRequest{JobID: fmt.Sprintf("%s-m%d", prefix, k+1), Type: TypeTwin, UpdateTwin: patch, QueryCondition: cond}
		j, err := e.runJob(ctx, i, KindMark, req, false)
		if err != nil {
			return err
		}
		if j.Status != "completed" || j.Stats.FailedCount > 0 {
			return fmt.Errorf("marking job %s ended %s with %d failed devices", j.ID, j.Status, j.Stats.FailedCount)
		}
	}
	return nil
}

// mark selects stage i's devices and tags them with the stage (and the
// wave, when the stage is paced).
func (e *Engine) mark(ctx context.Context, i int) error {
	st, sp := e.st.Stages[i], e.plan().Stages[i]
	ids, err := e.selectDevices(ctx, i)
	if err != nil {
		return err
	}
	st.Devices = len(ids)
	if len(ids) == 0 {
		e.event(st.Name, "no devices: stage skipped")
		st.Step = stepDone
		return nil
	}
	waves := 1
	if sp.MaxRate > 0 {
		waves = int(math.Ceil(float64(len(ids)) / (sp.MaxRate * waveLength.Seconds())))
	}
	st.Waves = waves
	e.event(st.Name, "%d devices selected", len(ids))
	per := (len(ids) + waves - 1) / waves
	for w := range waves {
		part := ids[w*per : min(len(ids), (w+1)*per)]
		fields := map[string]any{"stage": i + 1}
		if waves > 1 {
			fields["wave"] = w + 1
		}
		if err := e.markDevices(ctx, i, fmt.Sprintf("%s-s%d-w%d", e.st.ID, i+1, w+1), part, fields); err != nil {
			return err
		}
	}
	st.Step = stepRun
	return nil
}

// waveLength is the length of a paced stage's wave: a stage with maxRate R
// runs R×waveLength devices per job, one job per waveLength at most. Tests
// shorten it.
var waveLength = 10 * time.Second

// runAction runs stage i's action job (one per wave), watching the abort rule.
func (e *Engine) runAction(ctx context.Context, i int) error {
	st := e.st.Stages[i]
	action := e.plan().StageJob(i)
	for w := range max(st.Waves, 1) {
		id := fmt.Sprintf("%s-s%d-a%d", e.st.ID, i+1, w+1)
		cond := e.stageCondition(i)
		if st.Waves > 1 {
			cond += fmt.Sprintf(" AND %s = %d", e.tagPath("wave"), w+1)
			if prev := e.job(i, fmt.Sprintf("%s-s%d-a%d", e.st.ID, i+1, w)); prev != nil && e.job(i, id) == nil {
				next := prev.Created.Add(waveLength)
				if err := sleepUntil(ctx, next); err != nil {
					return err
				}
			}
		}
		req, err := e.jobRequest(id, action, cond)
		if err != nil {
			return err
		}
		if _, err := e.runJob(ctx, i, KindAction, req, true); err != nil {
			return err
		}
	}
	st.Step = stepRetry
	return nil
}

// job returns the record of job id of stage i, or nil.
func (e *Engine) job(i int, id string) *JobRecord {
	for _, j := range e.st.Stages[i].Jobs {
		if j.ID == id {
			return j
		}
	}
	return nil
}

// jobRequest builds the request of an action over cond.
func (e *Engine) jobRequest(id string, a *ActionSpec, cond string) (JobRequest, error) {
	req := JobRequest{JobID: id, QueryCondition: cond}
	if a.Method != "" {
		payload, err := payloadJSON(a)
		if err != nil {
			return req, err
		}
		mc := &MethodCall{MethodName: a.Method, Payload: payload}
		if a.ResponseTimeout != 0 {
			v := int(a.ResponseTimeout.D().Seconds())
			mc.ResponseTimeoutInSeconds = &v
		}
		if a.ConnectTimeout != 0 {
			v := int(a.ConnectTimeout.D().Seconds())
			mc.ConnectTimeoutInSeconds = &v
		}
		req.Type, req.CloudToDeviceMethod = TypeMethod, mc
	} else {
		patch := map[string]any{}
		if len(a.Twin.Tags) > 0 {
			patch["tags"] = a.Twin.Tags
		}
		if len(a.Twin.Desired) > 0 {
			patch["properties"] = map[string]any{"desired": a.Twin.Desired}
		}
		b, err := json.Marshal(patch)
		if err != nil {
			return req, err
		}
		req.Type, req.UpdateTwin = TypeTwin, b
	}
	if a.StartIn != 0 {
		t := time.Now().UTC().Add(a.StartIn.D())
		req.StartTime = &t
	}
	if a.MaxExecutionTime != 0 {
		v := int64(a.MaxExecutionTime.D().Seconds())
		req.MaxExecutionTimeInSeconds = &v
	}
	return req, nil
}

// runJob creates a job (or finds it, after a restart) and waits until it
// is terminal. With abortable, the abort rule is judged on the stage's
// figures at every poll: when it fires the job is cancelled and the
// rollout stops (errStopped).
func (e *Engine) runJob(ctx context.Context, i int, kind string, req JobRequest, abortable bool) (*JobRecord, error) {
	st := e.st.Stages[i]
	rec := e.job(i, req.JobID)
	if rec == nil {
		rec = &JobRecord{ID: req.JobID, Kind: kind, Condition: req.QueryCondition, Created: time.Now().UTC()}
		st.Jobs = append(st.Jobs, rec)
		if err := e.save(); err != nil {
			return nil, err
		}
	}
	if terminal(rec.Status) {
		return rec, nil
	}
	if err := e.ensureJob(ctx, req); err != nil {
		return nil, err
	}
	if kind != KindMark {
		e.event(st.Name, "%s job %s started over %s", kind, rec.ID, rec.Condition)
	}
	poll := e.plan().Poll.D()
	for {
		j, err := e.Hub.GetJob(ctx, rec.ID)
		if err != nil {
			return nil, fmt.Errorf("read job %s: %w", rec.ID, err)
		}
		changed := j.Status != rec.Status || j.DeviceJobStatistics != rec.Stats
		rec.Status, rec.Stats = j.Status, j.DeviceJobStatistics
		if terminal(j.Status) {
			now := time.Now().UTC()
			rec.Ended = &now
			if kind != KindMark {
				e.event(st.Name, "%s job %s %s: %d devices, %d succeeded, %d failed", kind, rec.ID, j.Status,
					j.DeviceJobStatistics.DeviceCount, j.DeviceJobStatistics.SucceededCount, j.DeviceJobStatistics.FailedCount)
			}
			if err := e.save(); err != nil {
				return nil, err
			}
			if abortable {
				if err := e.judgeAbort(ctx, i, rec); err != nil {
					return nil, err
				}
			}
			return rec, nil
		}
		if changed {
			if err := e.save(); err != nil {
				return nil, err
			}
		}
		if abortable {
			if err := e.judgeAbort(ctx, i, rec); err != nil {
				return nil, err
			}
		}
		if err := e.checkControl(ctx, i); err != nil {
			return nil, err
		}
		if err := sleep(ctx, poll); err != nil {
			return nil, err
		}
	}
}

// ensureJob creates the job unless it exists. A hub over its concurrent-job
// limit (429) is asked again after a backoff.
func (e *Engine) ensureJob(ctx context.Context, req JobRequest) error {
	if _, err := e.Hub.GetJob(ctx, req.JobID); err == nil {
		return nil
	} else if status(err) != 404 {
		return fmt.Errorf("read job %s: %w", req.JobID, err)
	}
	wait := e.plan().Poll.D()
	for {
		_, err := e.Hub.CreateJob(ctx, req)
		switch {
		case err == nil, status(err) == 409:
			return nil
		case status(err) == 429:
			if err := sleep(ctx, wait); err != nil {
				return err
			}
			wait = min(2*wait, 30*time.Second)
		default:
			return fmt.Errorf("create job %s: %w", req.JobID, err)
		}
	}
}

// stageFigures sums the stage's action and retry jobs: devices that failed
// in their latest job, devices finished, and succeeded.
func (e *Engine) stageFigures(i int) (failed, finished, succeeded int) {
	for _, j := range e.st.Stages[i].Jobs {
		switch j.Kind {
		case KindAction:
			failed += j.Stats.FailedCount
			succeeded += j.Stats.SucceededCount
			finished += j.Stats.FailedCount + j.Stats.SucceededCount
		case KindRetry:
			// A retried device failed before: it counts once, by its latest outcome.
			succeeded += j.Stats.SucceededCount
			failed -= j.Stats.SucceededCount
		}
	}
	return failed, finished, succeeded
}

// judgeAbort applies the abort rule to stage i's figures; rec is the job
// running, if any, which is cancelled when the rule fires.
func (e *Engine) judgeAbort(ctx context.Context, i int, rec *JobRecord) error {
	a := e.plan().Abort
	if a == nil {
		return nil
	}
	failed, finished, _ := e.stageFigures(i)
	twin := 0
	if a.FailedWhen != "" {
		n, err := e.count(ctx, fmt.Sprintf("SELECT COUNT() AS n FROM devices WHERE %s AND (%s)", e.stageCondition(i), a.FailedWhen))
		if err != nil {
			return err
		}
		twin = n
		failed += n
	}
	by := ""
	if twin > 0 {
		by = fmt.Sprintf(" (%d by their twins)", twin)
	}
	rule := ""
	switch {
	case a.MaxFailures != nil && failed >= *a.MaxFailures:
		rule = fmt.Sprintf("maxFailures: %d failed devices%s reached the limit of %d", failed, by, *a.MaxFailures)
	case a.MaxFailureRate != nil && finished >= a.MinDevices && finished > 0 && float64(failed)/float64(finished) >= *a.MaxFailureRate:
		rule = fmt.Sprintf("maxFailureRate: %d of %d finished devices failed%s (%.1f %%, limit %.1f %% after %d devices)",
			failed, finished, by, 100*float64(failed)/float64(finished), 100**a.MaxFailureRate, a.MinDevices)
	}
	if rule == "" {
		return nil
	}
	st := e.st.Stages[i]
	job := ""
	if rec != nil {
		job = rec.ID
		if !terminal(rec.Status) {
			j, err := e.Hub.CancelJob(ctx, rec.ID)
			if err != nil && status(err) != 404 {
				return fmt.Errorf("cancel job %s: %w", rec.ID, err)
			}
			if err == nil {
				rec.Status, rec.Stats = j.Status, j.DeviceJobStatistics
			}
			e.settleCancelled(ctx, rec)
			e.event(st.Name, "job %s cancelled", rec.ID)
		}
	}
	e.st.Abort = &AbortRecord{Rule: rule, Stage: st.Name, Job: job, At: time.Now().UTC(),
		Failed: failed, Finished: finished, Devices: st.Devices, Touched: e.st.Touched()}
	e.event(st.Name, "abort: %s", rule)
	return e.stop(ctx, i, StatusAborted, rule)
}

// settleCancelled reads a cancelled job until the hub reports it terminal
// (a hub may finish the device jobs in flight first), a few polls at most,
// so the state and the report hold its final status and figures.
func (e *Engine) settleCancelled(ctx context.Context, rec *JobRecord) {
	for range 20 {
		if terminal(rec.Status) {
			now := time.Now().UTC()
			rec.Ended = &now
			return
		}
		if sleep(ctx, e.plan().Poll.D()) != nil {
			return
		}
		j, err := e.Hub.GetJob(ctx, rec.ID)
		if err != nil {
			return
		}
		rec.Status, rec.Stats = j.Status, j.DeviceJobStatistics
	}
}

// failedDevices returns the devices whose device job of jobID failed or
// was canceled, found through devices.jobs.
func (e *Engine) failedDevices(ctx context.Context, jobID string) ([]string, error) {
	q := "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '" + strings.ReplaceAll(jobID, "'", `\'`) +
		"' AND (devices.jobs.status = 'failed' OR devices.jobs.status = 'canceled')"
	rows, err := e.queryAll(ctx, q)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(rows))
	for _, r := range rows {
		var d struct {
			DeviceID string `json:"deviceId"`
		}
		if err := json.Unmarshal(r, &d); err != nil {
			return nil, fmt.Errorf("query %q: unexpected row: %w", q, err)
		}
		ids = append(ids, d.DeviceID)
	}
	slices.Sort(ids)
	return slices.Compact(ids), nil
}

// retry retries the stage's failed devices: after a backoff, a job over
// exactly the devices whose latest job failed, up to the plan's attempts.
func (e *Engine) retry(ctx context.Context, i int) error {
	st, r := e.st.Stages[i], e.plan().Retry
	if r == nil || st.Attempt >= r.Attempts {
		st.Step = stepGates
		return nil
	}
	var last []string // the jobs of the previous round
	for _, j := range st.Jobs {
		if (st.Attempt == 0 && j.Kind == KindAction) || (st.Attempt > 0 && j.ID == e.retryID(i, st.Attempt)) {
			last = append(last, j.ID)
		}
	}
	var ids []string
	for _, id := range last {
		f, err := e.failedDevices(ctx, id)
		if err != nil {
			return err
		}
		ids = append(ids, f...)
	}
	if len(ids) == 0 {
		st.Step = stepGates
		return nil
	}
	if st.RetryAt == nil {
		wait := time.Duration(float64(r.Backoff.D()) * math.Pow(r.Factor, float64(st.Attempt)))
		at := time.Now().UTC().Add(wait)
		st.RetryAt = &at
		e.event(st.Name, "%d devices failed; retry %d of %d at %s (backoff %s)", len(ids), st.Attempt+1, r.Attempts, at.Format(time.RFC3339), wait)
		if err := e.save(); err != nil {
			return err
		}
	}
	if err := sleepUntil(ctx, *st.RetryAt); err != nil {
		return err
	}
	n := st.Attempt + 1
	id := e.retryID(i, n)
	if e.job(i, id) == nil {
		if err := e.markDevices(ctx, i, id, ids, map[string]any{"stage": i + 1, "try": n}); err != nil {
			return err
		}
	}
	req, err := e.jobRequest(id, e.plan().StageJob(i), fmt.Sprintf("%s AND %s = %d", e.stageCondition(i), e.tagPath("try"), n))
	if err != nil {
		return err
	}
	if _, err := e.runJob(ctx, i, KindRetry, req, true); err != nil {
		return err
	}
	st.Attempt, st.RetryAt = n, nil
	return nil
}

func (e *Engine) retryID(i, n int) string { return fmt.Sprintf("%s-s%d-r%d", e.st.ID, i+1, n) }

// gates judges stage i's gates in order: success rate, convergence, bake,
// then approval.
func (e *Engine) gates(ctx context.Context, i int) error {
	st, g := e.st.Stages[i], e.plan().StageGates(i)
	if st.GatesFrom == nil {
		now := time.Now().UTC()
		st.GatesFrom = &now
	}
	if g == nil {
		st.Step = stepApproval
		return nil
	}
	if g.MinSuccessRate != nil && !e.gateDone(i, "successRate") {
		_, _, succeeded := e.stageFigures(i)
		devices := 0 // the devices the stage's jobs covered
		for _, j := range st.Jobs {
			if j.Kind == KindAction {
				devices += j.Stats.DeviceCount
			}
		}
		if devices == 0 {
			devices = st.Devices
		}
		rate := float64(succeeded) / float64(max(devices, 1))
		ok := rate >= *g.MinSuccessRate
		e.gateResult(i, GateResult{Gate: "successRate", Passed: ok, Count: succeeded, Of: devices, Value: rate, Threshold: *g.MinSuccessRate,
			Figures: fmt.Sprintf("%d of %d devices succeeded (%.1f %%, at least %.1f %% needed)", succeeded, devices, 100*rate, 100**g.MinSuccessRate)})
		if !ok {
			return e.stop(ctx, i, StatusStopped, "gate successRate failed at stage "+st.Name)
		}
	}
	if c := g.Converge; c != nil && !e.gateDone(i, "converge") {
		need := 1.0
		if c.MinFraction != nil {
			need = *c.MinFraction
		}
		deadline := st.GatesFrom.Add(c.Within.D())
		q := fmt.Sprintf("SELECT COUNT() AS n FROM devices WHERE %s AND (%s)", e.stageCondition(i), c.Match)
		for {
			n, err := e.count(ctx, q)
			if err != nil {
				return err
			}
			frac := float64(n) / float64(max(st.Devices, 1))
			res := GateResult{Gate: "converge", Count: n, Of: st.Devices, Value: frac, Threshold: need,
				Figures: fmt.Sprintf("%d of %d devices match %s (%.1f %%, at least %.1f %% needed within %s)",
					n, st.Devices, c.Match, 100*frac, 100*need, c.Within.D())}
			if frac >= need {
				res.Passed = true
				e.gateResult(i, res)
				break
			}
			if err := e.judgeAbort(ctx, i, nil); err != nil {
				return err
			}
			if !time.Now().Before(deadline) {
				e.gateResult(i, res)
				return e.stop(ctx, i, StatusStopped, "gate converge failed at stage "+st.Name)
			}
			if err := e.checkControl(ctx, i); err != nil {
				return err
			}
			if err := sleep(ctx, min(e.plan().Poll.D(), time.Until(deadline)+time.Millisecond)); err != nil {
				return err
			}
		}
	}
	if g.Bake != 0 && !e.gateDone(i, "bake") {
		if st.BakeUntil == nil {
			t := time.Now().UTC().Add(g.Bake.D())
			st.BakeUntil = &t
			e.event(st.Name, "baking for %s", g.Bake.D())
			if err := e.save(); err != nil {
				return err
			}
		}
		for time.Now().Before(*st.BakeUntil) {
			if err := e.checkControl(ctx, i); err != nil {
				return err
			}
			if err := e.judgeAbort(ctx, i, nil); err != nil {
				return err
			}
			if err := sleep(ctx, min(e.plan().Poll.D(), time.Until(*st.BakeUntil)+time.Millisecond)); err != nil {
				return err
			}
		}
		e.gateResult(i, GateResult{Gate: "bake", Passed: true, Figures: fmt.Sprintf("baked %s", g.Bake.D())})
	}
	st.Step = stepApproval
	return nil
}

// approval waits for an operator's approval when the stage's gates ask
// for it; the last stage needs none.
func (e *Engine) approval(ctx context.Context, i int) error {
	st, g := e.st.Stages[i], e.plan().StageGates(i)
	if g != nil && g.Approval && i < len(e.st.Stages)-1 && !e.gateDone(i, "approval") && e.StatePath == "" {
		// No state file, no operator to approve: an in-memory rollout (a
		// scenario's rehearsal) passes the gate.
		e.gateResult(i, GateResult{Gate: "approval", Passed: true, Figures: "approved: the rollout keeps no state file, so no operator is asked"})
	}
	if g != nil && g.Approval && i < len(e.st.Stages)-1 && !e.gateDone(i, "approval") {
		e.st.Status = StatusWaiting
		cmd := e.ApproveCommand
		if cmd == "" {
			cmd = "fleetsim rollout approve --state " + e.StatePath
		}
		e.event(st.Name, "waiting for approval: %s", cmd)
		if err := e.save(); err != nil {
			return err
		}
		for {
			if err := e.checkControl(ctx, i); err != nil {
				return err
			}
			c, err := LoadControl(e.StatePath)
			if err != nil {
				return err
			}
			if slices.Contains(c.Approved, st.Name) {
				break
			}
			if err := sleep(ctx, e.plan().Poll.D()); err != nil {
				return err
			}
		}
		e.st.Status = StatusRunning
		e.gateResult(i, GateResult{Gate: "approval", Passed: true, Figures: "approved"})
	}
	now := time.Now().UTC()
	st.Ended, st.Step = &now, stepDone
	e.event(st.Name, "stage done")
	return nil
}

func (e *Engine) gateDone(i int, gate string) bool {
	return slices.ContainsFunc(e.st.Stages[i].Gates, func(g GateResult) bool { return g.Gate == gate && g.Passed })
}

func (e *Engine) gateResult(i int, g GateResult) {
	st := e.st.Stages[i]
	g.At = time.Now().UTC()
	st.Gates = append(st.Gates, g)
	verdict := "passed"
	if !g.Passed {
		verdict = "FAILED"
	}
	e.event(st.Name, "gate %s %s: %s", g.Gate, verdict, g.Figures)
}

// count runs a SELECT COUNT() AS n query.
func (e *Engine) count(ctx context.Context, q string) (int, error) {
	return Count(ctx, e.Hub, q)
}

// Count runs a SELECT COUNT() AS n query on h.
func Count(ctx context.Context, h Hub, q string) (int, error) {
	e := &Engine{Hub: h}
	rows, err := e.queryAll(ctx, q)
	if err != nil {
		return 0, err
	}
	if len(rows) == 0 {
		return 0, nil
	}
	var r map[string]json.Number
	if err := json.Unmarshal(rows[0], &r); err != nil {
		return 0, fmt.Errorf("query %q: unexpected row: %w", q, err)
	}
	n, err := strconv.Atoi(r["n"].String())
	if err != nil {
		return 0, fmt.Errorf("query %q: unexpected count %q", q, r["n"])
	}
	return n, nil
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

func sleepUntil(ctx context.Context, t time.Time) error {
	if d := time.Until(t); d > 0 {
		return sleep(ctx, d)
	}
	return ctx.Err()
}
