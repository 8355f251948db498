package scenarios

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"gopkg.in/yaml.v3"

	"github.com/fleetsim/fleetsim/devicesim"
	"github.com/fleetsim/fleetsim/hubjobs/jobs"
	"github.com/fleetsim/fleetsim/hubjobs/query"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// Bounds of a scenario.
const (
	// MaxDevices is IoT Hub's limit of devices per hub (docs/iothub.md §7).
	MaxDevices = 1_000_000
	// DefaultSeed is the seed of a file without one.
	DefaultSeed = 1
	// DefaultResponseTimeout and DefaultMaxExecutionTime are a job's
	// defaults, as the Node SDK and the CLI send them (docs/iothub.md §5.2).
	DefaultResponseTimeout  = 30 * time.Second
	DefaultMaxExecutionTime = time.Hour
)

// Job statuses an expectation may demand (docs/iothub.md §5.3).
var terminalStatuses = []string{"completed", "failed", "cancelled"}

// validate checks f, fills in its defaults and builds the Scenario. It also
// runs on a file that decoded with problems, so a value may be missing
// where the schema requires it; problems about values that did not decode
// are dropped (see decoder.failed).
func (d *decoder) validate(f *File) *Scenario {
	s := &Scenario{File: f, Seed: DefaultSeed}
	if f.Seed != nil {
		s.Seed = *f.Seed
	} else {
		f.Seed = new(int64)
		*f.Seed = DefaultSeed
	}
	if strings.TrimSpace(f.Name) == "" {
		d.problem(d.where(&f.Name), "name", "the name is empty")
	}
	if f.Duration <= 0 {
		d.problem(d.where(&f.Duration), "duration", "the run needs a positive duration")
	}
	s.Duration = f.Duration.D()

	if f.Hub.Pacing == "" {
		f.Hub.Pacing = "unlimited"
	}
	profile, err := jobs.ParseProfile(f.Hub.Pacing)
	if err != nil {
		msg := fmt.Sprintf("unknown pacing %q: want unlimited, S1, S2 or S3, optionally with units such as S1x2", f.Hub.Pacing)
		if s := suggest(f.Hub.Pacing, []string{"unlimited", "S1", "S2", "S3"}); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		d.problem(d.where(&f.Hub.Pacing), "hub.pacing", "%s", msg)
	}
	if f.Hub.MaxInFlight < 0 {
		d.problem(d.where(&f.Hub.MaxInFlight), "hub.maxInFlight", "%d is negative", f.Hub.MaxInFlight)
	}
	s.Hub = Hub{Pacing: f.Hub.Pacing, Profile: profile, MaxInFlight: f.Hub.MaxInFlight}

	d.validateGroups(f, s)
	d.validateTimeline(f, s)
	d.validateExpectations(f, s)
	return s
}

func (d *decoder) validateGroups(f *File, s *Scenario) {
	if len(f.Devices) == 0 {
		d.problem(d.where(&f.Devices), "devices", "at least one device group is needed")
	}
	names := map[string]int{}
	total := 0
	budget := collisionBudget
	for i, g := range f.Devices {
		path := fmt.Sprintf("devices[%d]", i)
		if g.Name == "" {
			g.Name = fmt.Sprintf("group%d", i+1)
		}
		if j, dup := names[g.Name]; dup {
			d.problem(d.where(&g.Name, g), join(path, "name"), "group name %q is already used by devices[%d]", g.Name, j)
		}
		names[g.Name] = i
		switch {
		case g.Count < 1:
			d.problem(d.where(&g.Count, g), join(path, "count"), "a group needs at least 1 device, got %d", g.Count)
		case total+g.Count > MaxDevices:
			d.problem(d.where(&g.Count, g), join(path, "count"), "the fleet would have %d devices; a hub holds at most %d", total+g.Count, MaxDevices)
		}
		if g.IndexFrom < 0 {
			d.problem(d.where(&g.IndexFrom), join(path, "indexFrom"), "%d is negative", g.IndexFrom)
		}
		grp := &Group{Name: g.Name, Count: max(g.Count, 0), First: total, IndexFrom: max(g.IndexFrom, 0), tags: g.Tags}
		total += grp.Count
		pat, err := parseIDPattern(g.IDPattern)
		if err != nil {
			d.problem(d.where(&g.IDPattern, g), join(path, "idPattern"), "%v", err)
		} else {
			grp.pattern = pat
			d.checkIDs(g, grp, path)
			for j, other := range s.Groups {
				if other.pattern == (idPattern{}) {
					continue
				}
				if id, ok := collide(other.pattern, other.IndexFrom, other.Count, pat, grp.IndexFrom, grp.Count, &budget); ok {
					d.problem(d.where(&g.IDPattern, g), join(path, "idPattern"), "device id %q is also produced by devices[%d] (%s)", id, j, other.Name)
					break
				}
			}
		}
		mk := mapPointer(g.Tags)
		for _, k := range sortedKeys(g.Tags) {
			if msg := checkTagKey(k); msg != "" {
				d.problem(d.where(mapKey{mk, k}, &g.Tags), join(path, "tags"), "%s", msg)
			}
		}
		before := len(d.problems)
		grp.Behavior = d.convertBehavior(&g.Behavior, join(path, "behavior"))
		if len(d.problems) == before {
			// devicesim's own check, in case it knows a rule this package
			// does not.
			if err := grp.Behavior.Validate(); err != nil {
				for _, line := range strings.Split(err.Error(), "\n") {
					d.problem(d.where(&g.Behavior, g), join(path, "behavior"), "%s", line)
				}
			}
		}
		grp.Auth = d.convertAuth(g.Auth, join(path, "auth"))
		s.Groups = append(s.Groups, grp)
	}
}

// convertAuth reads a group's auth setting; no setting is SAS.
func (d *decoder) convertAuth(a *AuthSpec, path string) Auth {
	if a == nil {
		return AuthSAS
	}
	switch t := Auth(a.Type); t {
	case AuthSAS, AuthSelfSigned, AuthCA:
		return t
	default:
		msg := fmt.Sprintf("unknown authentication type %q: want sas, selfSigned or certificateAuthority", a.Type)
		if strings.EqualFold(a.Type, "x509") {
			msg += " (an X.509 group is selfSigned or certificateAuthority)"
		}
		d.problem(d.where(&a.Type, a), join(path, "type"), "%s", msg)
		return AuthSAS
	}
}

// checkIDs checks the group's first and last ids against IoT Hub's device
// id rules: the others differ only in digits.
func (d *decoder) checkIDs(g *GroupSpec, grp *Group, path string) {
	p := d.where(&g.IDPattern, g)
	if !grp.pattern.hasIndex && g.Count > 1 {
		d.problem(p, join(path, "idPattern"), "%q has no {index}, so its %d devices would share one id", g.IDPattern, g.Count)
		return
	}
	if grp.Count == 0 {
		return
	}
	for _, id := range []string{grp.DeviceID(0), grp.DeviceID(grp.Count - 1)} {
		if err := iothub.ValidDeviceID(id); err != nil {
			d.problem(p, join(path, "idPattern"), "%v", err)
			return
		}
	}
}

// probability checks that *p is within 0..1.
func (d *decoder) probability(p *float64, path string, fallback any) {
	if *p < 0 || *p > 1 || math.IsNaN(*p) {
		d.problem(d.where(p, fallback), path, "probability %v is outside 0..1", *p)
	}
}

// statusCode checks a method status code; 0 means the default (200).
func (d *decoder) statusCode(code *int, path string, fallback any) {
	if *code != 0 && (*code < 100 || *code > 999) {
		d.problem(d.where(code, fallback), path, "status %d is not a three-digit status code", *code)
	}
}

// payloadJSON turns a decoded payload into JSON.
func (d *decoder) payloadJSON(v any, ptr any, path string) json.RawMessage {
	if v == nil {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		d.problem(d.where(ptr), path, "cannot be sent as JSON: %v", err)
		return nil
	}
	if len(b) > iothub.MaxMethodPayloadBytes {
		d.problem(d.where(ptr), path, "is %d bytes of JSON; a method payload holds at most %d", len(b), iothub.MaxMethodPayloadBytes)
	}
	return b
}

// templateProbe replaces a payload template's placeholders with sample
// values so that the result can be checked as JSON.
var templateProbe = strings.NewReplacer("{{deviceId}}", "dev", "{{method}}", "m", "{{status}}", "200", "{{requestPayload}}", "null")

func (d *decoder) validateTimeline(f *File, s *Scenario) {
	type jobAt struct {
		at    Duration
		index int
	}
	jobs := map[string]jobAt{}
	for i, a := range f.Timeline {
		path := fmt.Sprintf("timeline[%d]", i)
		set := 0
		for _, b := range []bool{a.Job != nil, a.Cancel != "", a.Disconnect != nil, a.ConnectStorm != nil, a.Rollout != nil, a.C2D != nil} {
			if b {
				set++
			}
		}
		if set != 1 {
			d.problem(d.where(a), path, "an action needs exactly one of job, cancel, disconnect, connectStorm, rollout and c2d")
			continue
		}
		if a.At > Duration(s.Duration) && s.Duration > 0 {
			d.problem(d.where(&a.At, a), join(path, "at"), "%s is after the end of the run (duration %s)", a.At, s.Duration)
		}
		salt := hashString(fmt.Sprintf("timeline[%d]", i))
		switch {
		case a.Job != nil:
			j := a.Job
			jp := join(path, "job")
			if err := iothub.ValidJobID(j.ID); err != nil {
				d.problem(d.where(&j.ID, j), join(jp, "id"), "%v", err)
			} else if prev, dup := jobs[j.ID]; dup {
				d.problem(d.where(&j.ID, j), join(jp, "id"), "job id %q is already used by timeline[%d]", j.ID, prev.index)
			} else {
				jobs[j.ID] = jobAt{a.At, i}
			}
			if act, ok := d.jobAction(j, jp); ok {
				act.At = a.At.D()
				s.actions = append(s.actions, act)
			}
		case a.Cancel != "":
			prev, ok := jobs[a.Cancel]
			switch {
			case !ok:
				msg := fmt.Sprintf("cancels job %q, which no earlier timeline entry creates", a.Cancel)
				if sug := suggest(a.Cancel, slices.Sorted(keysOf(jobs))); sug != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", sug)
				}
				d.problem(d.where(&a.Cancel, a), join(path, "cancel"), "%s", msg)
			case prev.at > a.At:
				d.problem(d.where(&a.Cancel, a), join(path, "cancel"), "cancels job %q at %s, before it is created at %s", a.Cancel, a.At, prev.at)
			}
			s.actions = append(s.actions, CancelAction{At: a.At.D(), JobID: a.Cancel})
		case a.Rollout != nil:
			d.rolloutAction(f, a, path)
			s.actions = append(s.actions, RolloutAction{At: a.At.D(), Plan: a.Rollout})
		case a.Disconnect != nil:
			dp := join(path, "disconnect")
			sel := d.selection(a.Disconnect.Fraction, &a.Disconnect.Fraction, a.Disconnect.Condition, &a.Disconnect.Condition, dp, a.Disconnect, salt)
			s.actions = append(s.actions, DisconnectAction{At: a.At.D(), Selection: sel, For: d.distribution(a.Disconnect.For)})
		case a.C2D != nil:
			s.actions = append(s.actions, d.c2dAction(a, join(path, "c2d"), salt))
		case a.ConnectStorm != nil:
			sp := join(path, "connectStorm")
			sel := d.selection(a.ConnectStorm.Fraction, &a.ConnectStorm.Fraction, a.ConnectStorm.Condition, &a.ConnectStorm.Condition, sp, a.ConnectStorm, salt)
			s.actions = append(s.actions, ConnectStormAction{At: a.At.D(), Selection: sel, Within: a.ConnectStorm.Within.D()})
		}
	}
	slices.SortStableFunc(s.actions, func(x, y Action) int {
		switch {
		case x.When() < y.When():
			return -1
		case x.When() > y.When():
			return 1
		}
		return 0
	})
}

func keysOf[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// selection validates and defaults the device selection of a disconnect
// wave or connect storm.
func (d *decoder) selection(fraction *float64, fracPtr any, cond string, condPtr any, path string, parent any, salt uint64) Selection {
	sel := Selection{Fraction: 1, Condition: cond, salt: salt}
	if fraction != nil {
		sel.Fraction = *fraction
		d.probability(fraction, join(path, "fraction"), fracPtr)
	}
	if strings.TrimSpace(cond) != "" {
		sel.cond = d.condition(cond, condPtr, join(path, "condition"), parent)
	}
	return sel
}

// jobAction validates a job and builds its action.
func (d *decoder) jobAction(j *JobSpec, path string) (JobAction, bool) {
	ok := true
	bad := func(ptr any, key, format string, args ...any) {
		p := path
		if key != "" {
			p = join(path, key)
		}
		d.problem(d.where(ptr, j), p, format, args...)
		ok = false
	}
	act := JobAction{JobID: j.ID, PinID: j.PinID, Condition: j.Condition, StartIn: j.StartIn.D()}
	switch {
	case j.Method != "" && j.Twin != nil:
		bad(&j.Twin, "twin", "a job has either method or twin, not both")
	case j.Method == "" && j.Twin == nil:
		bad(j, "", "a job needs method (a method job) or twin (a twin job)")
	case j.Method != "":
		act.Type = jobs.TypeDeviceMethod
		if err := iothub.ValidMethodName(j.Method); err != nil {
			bad(&j.Method, "method", "%v", err)
		}
		if j.ResponseTimeout == 0 {
			j.ResponseTimeout = Duration(DefaultResponseTimeout)
		}
		rt := d.seconds(&j.ResponseTimeout, join(path, "responseTimeout"), j)
		if rt < iothub.MinResponseTimeout || rt > iothub.MaxResponseTimeout {
			bad(&j.ResponseTimeout, "responseTimeout", "%s is outside %ds..%ds", j.ResponseTimeout, iothub.MinResponseTimeout, iothub.MaxResponseTimeout)
		}
		ct := d.seconds(&j.ConnectTimeout, join(path, "connectTimeout"), j)
		if ct > iothub.MaxConnectTimeout {
			bad(&j.ConnectTimeout, "connectTimeout", "%s is above %ds", j.ConnectTimeout, iothub.MaxConnectTimeout)
		}
		act.Method = &iothub.MethodRequest{MethodName: j.Method, Payload: d.payloadJSON(j.Payload, &j.Payload, join(path, "payload")), ResponseTimeoutInSeconds: &rt}
		if ct > 0 {
			act.Method.ConnectTimeoutInSeconds = &ct
		}
	default:
		act.Type = jobs.TypeUpdateTwin
		if j.Payload != nil {
			bad(&j.Payload, "payload", "a twin job has no payload: put the patch under twin")
		}
		if _, set := d.at[&j.ResponseTimeout]; set {
			bad(&j.ResponseTimeout, "responseTimeout", "only method jobs have a response timeout")
		}
		if _, set := d.at[&j.ConnectTimeout]; set {
			bad(&j.ConnectTimeout, "connectTimeout", "only method jobs have a connect timeout")
		}
		if len(j.Twin.Tags) == 0 && len(j.Twin.Desired) == 0 {
			bad(&j.Twin, "twin", "the patch is empty: give tags or desired")
		}
		patch := map[string]any{"etag": "*"}
		if j.Twin.Tags != nil {
			patch["tags"] = j.Twin.Tags
			if err := checkTwin(iothub.TwinTags, j.Twin.Tags, true); err != "" {
				bad(&j.Twin.Tags, "twin.tags", "%s", err)
			}
		}
		if j.Twin.Desired != nil {
			patch["properties"] = map[string]any{"desired": j.Twin.Desired}
			if err := checkTwin(iothub.TwinDesired, j.Twin.Desired, true); err != "" {
				bad(&j.Twin.Desired, "twin.desired", "%s", err)
			}
		}
		b, err := json.Marshal(patch)
		if err != nil {
			bad(&j.Twin, "twin", "cannot be sent as JSON: %v", err)
		}
		act.UpdateTwin = b
	}
	if j.MaxExecutionTime == 0 {
		j.MaxExecutionTime = Duration(DefaultMaxExecutionTime)
	}
	act.MaxExecutionTime = j.MaxExecutionTime.D()
	if d.seconds(&j.MaxExecutionTime, join(path, "maxExecutionTime"), j) < 1 {
		bad(&j.MaxExecutionTime, "maxExecutionTime", "must be at least 1s")
	}
	if strings.TrimSpace(j.Condition) == "" {
		bad(&j.Condition, "condition", `the condition is empty: write "*" for all devices`)
	} else if d.condition(j.Condition, &j.Condition, join(path, "condition"), j) == nil {
		ok = false
	}
	return act, ok
}

// seconds returns *v in whole seconds, reporting a fraction of a second.
func (d *decoder) seconds(v *Duration, path string, fallback any) int {
	if *v%Duration(time.Second) != 0 {
		d.problem(d.where(v, fallback), path, "%s is not a whole number of seconds", *v)
	}
	return int(v.D() / time.Second)
}

// deviceState validates a device-state expectation.
func (d *decoder) deviceState(ds *DeviceStateSpec, path string, parent any) *DeviceState {
	if ds == nil {
		return nil
	}
	out := &DeviceState{Devices: ds.Devices, Match: ds.Match, MinFraction: 1, Within: ds.Within.D(), MinDevices: 1}
	for _, c := range []struct {
		v   *string
		key string
	}{{&ds.Devices, "devices"}, {&ds.Match, "match"}} {
		if strings.TrimSpace(*c.v) == "" {
			d.problem(d.where(c.v, ds, parent), join(path, c.key), `the condition is empty: write "*" for all devices`)
			continue
		}
		d.condition(*c.v, c.v, join(path, c.key), ds)
	}
	if ds.MinFraction != nil {
		d.probability(ds.MinFraction, join(path, "minFraction"), ds)
		out.MinFraction = *ds.MinFraction
	}
	if ds.MinDevices != nil {
		if *ds.MinDevices < 0 {
			d.problem(d.where(ds.MinDevices, ds), join(path, "minDevices"), "%d is negative", *ds.MinDevices)
		}
		out.MinDevices = *ds.MinDevices
	}
	return out
}

// checkTwin applies the hub's twin rules to one section of a twin job's
// patch (job true: with the jobs rule on characters too) or of a reported
// behaviour, so that a scenario the hub would refuse is refused when it is
// loaded.
func checkTwin(s iothub.TwinSection, m map[string]any, job bool) string {
	b, err := json.Marshal(m)
	if err != nil {
		return fmt.Sprintf("cannot be sent as JSON: %v", err)
	}
	sec, err := iothub.ParseTwinSection(s, b)
	if err == nil && job {
		var p iothub.TwinPatch
		if s == iothub.TwinTags {
			p, err = iothub.NewTwinPatch(sec, nil)
		} else {
			p, err = iothub.NewTwinPatch(nil, sec)
		}
		if err == nil {
			err = p.CheckJobCharacters()
		}
	}
	if err != nil {
		return iothub.AsError(err).Message
	}
	return ""
}

// condition parses a query condition, placing a syntax error at its column
// in the file when the scalar sits on one line as written.
func (d *decoder) condition(cond string, ptr any, path string, fallback any) *query.Query {
	q, err := query.ParseCondition(cond)
	if err == nil {
		return q
	}
	at := d.where(ptr, fallback)
	var qe *query.Error
	if !errors.As(err, &qe) {
		d.problem(at, path, "invalid condition: %v", err)
		return nil
	}
	if n, ok := d.at[ptr]; ok {
		if col, ok := d.columnIn(n, cond, qe.Pos); ok {
			d.problem(pos{n.Line, col}, path, "invalid condition: %s", qe.Msg)
			return nil
		}
	}
	d.problem(at, path, "invalid condition at column %d: %s", qe.Pos, qe.Msg)
	return nil
}

// columnIn maps a 1-based character column of a scalar's value to a column
// of the file, when the value is written verbatim on the node's line.
func (d *decoder) columnIn(n *yaml.Node, value string, col int) (int, bool) {
	if n.Line < 1 || n.Line > len(d.lines) || strings.Contains(value, "\n") {
		return 0, false
	}
	start := n.Column - 1 // characters before the scalar
	switch n.Style {
	case 0:
	case yaml.SingleQuotedStyle, yaml.DoubleQuotedStyle:
		start++
	default:
		return 0, false
	}
	line := []rune(d.lines[n.Line-1])
	if start < 0 || start+utf8.RuneCountInString(value) > len(line) || string(line[start:start+utf8.RuneCountInString(value)]) != value {
		return 0, false
	}
	return start + col, true
}

func (d *decoder) validateExpectations(f *File, s *Scenario) {
	jobs := map[string]bool{} // every job the timeline creates, valid or not
	for _, a := range f.Timeline {
		if a.Job != nil && a.Job.ID != "" {
			jobs[a.Job.ID] = true
		}
		// A rollout's stage N runs its action as job ID-sN-a1 (the first
		// wave's), which an expectation may name like a timeline job.
		if r := a.Rollout; r != nil && r.ID != "" {
			for n := range r.Stages {
				jobs[fmt.Sprintf("%s-s%d-a1", r.ID, n+1)] = true
			}
		}
	}
	for i, e := range f.Expect {
		path := fmt.Sprintf("expect[%d]", i)
		p := d.where(e)
		x := Expectation{Job: e.Job, Status: e.Status, Within: e.Within.D(), TakesAtLeast: e.TakesAtLeast.D(), MaxP99Latency: e.MaxP99Latency.D(), MaxFailed: -1, MaxRollbacks: -1, MaxAckP99: e.MaxAckP99.D(), Line: p.line}
		jobChecks := e.Status != "" || e.Within != 0 || e.TakesAtLeast != 0 || e.MinSuccessRate != nil || e.MaxP99Latency != 0 || e.MinSucceeded != nil || e.MaxFailed != nil || e.MinDevices != nil ||
			e.MinAckRate != nil || e.MaxAckP99 != 0 || e.MaxPhaseFails != nil || e.MaxRollbacks != nil
		if e.Rollout != nil {
			d.rolloutExpectation(f, s, e, path)
			continue
		}
		x.DeviceState = d.deviceState(e.DeviceState, join(path, "deviceState"), e)
		switch {
		case e.Job == "" && e.MinConnected == nil && e.DeviceState == nil:
			d.problem(p, path, "an expectation names a job (job: ...), is about the fleet (minConnected: ...) or about device state (deviceState: ...)")
			continue
		case e.Job == "" && e.DeviceState != nil && e.MinConnected != nil:
			d.problem(d.where(&e.MinConnected, e), join(path, "minConnected"), "minConnected is about the fleet: give it its own entry")
		case e.Job == "" && jobChecks:
			d.problem(p, path, "job checks (status, within, minSuccessRate, ...) need job: the id of the job")
			continue
		case e.Job != "" && e.MinConnected != nil:
			d.problem(d.where(&e.MinConnected, e), join(path, "minConnected"), "minConnected is about the fleet: give it its own entry without job")
		case e.Job != "" && !jobs[e.Job]:
			msg := fmt.Sprintf("no timeline entry creates job %q", e.Job)
			if sug := suggest(e.Job, slices.Sorted(keysOf(jobs))); sug != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", sug)
			}
			d.problem(d.where(&e.Job, e), join(path, "job"), "%s", msg)
		}
		if e.Status != "" && !slices.Contains(terminalStatuses, e.Status) {
			msg := fmt.Sprintf("status %q is not a terminal job status: want completed, failed or cancelled", e.Status)
			if sug := suggest(e.Status, terminalStatuses); sug != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", sug)
			}
			d.problem(d.where(&e.Status, e), join(path, "status"), "%s", msg)
		}
		if e.Within != 0 && e.TakesAtLeast > e.Within {
			d.problem(d.where(&e.TakesAtLeast, e), join(path, "takesAtLeast"), "%s is longer than within: %s", e.TakesAtLeast, e.Within)
		}
		if e.MinSuccessRate != nil {
			d.probability(e.MinSuccessRate, join(path, "minSuccessRate"), e)
			x.MinSuccessRate = *e.MinSuccessRate
		}
		if e.MinConnected != nil {
			d.probability(e.MinConnected, join(path, "minConnected"), e)
			x.MinConnected = *e.MinConnected
		}
		if e.MinAckRate != nil {
			d.probability(e.MinAckRate, join(path, "minAckRate"), e)
			x.MinAckRate = *e.MinAckRate
		}
		if e.MaxRollbacks != nil {
			if *e.MaxRollbacks < 0 {
				d.problem(d.where(e.MaxRollbacks, e), join(path, "maxRollbacks"), "%d is negative", *e.MaxRollbacks)
			}
			x.MaxRollbacks = *e.MaxRollbacks
		}
		if b := e.MaxPhaseFails; b != nil {
			x.MaxPhaseFailures = map[devicesim.FirmwarePhase]int{}
			for _, c := range []struct {
				v     *int
				key   string
				phase devicesim.FirmwarePhase
			}{{b.Download, "download", devicesim.FirmwareDownloading}, {b.Verify, "verify", devicesim.FirmwareVerifying}, {b.Apply, "apply", devicesim.FirmwareApplying}, {b.Reboot, "reboot", devicesim.FirmwareRebooting}} {
				if c.v == nil {
					continue
				}
				if *c.v < 0 {
					d.problem(d.where(c.v, b, e), join(join(path, "maxPhaseFailures"), c.key), "%d is negative", *c.v)
				}
				x.MaxPhaseFailures[c.phase] = *c.v
			}
			if len(x.MaxPhaseFailures) == 0 {
				d.problem(d.where(b, e), join(path, "maxPhaseFailures"), "give a budget for at least one of download, verify, apply and reboot")
			}
		}
		for _, c := range []struct {
			v   *int
			key string
			out *int
		}{{e.MinSucceeded, "minSucceeded", &x.MinSucceeded}, {e.MaxFailed, "maxFailed", &x.MaxFailed}, {e.MinDevices, "minDevices", &x.MinDevices}} {
			if c.v == nil {
				continue
			}
			if *c.v < 0 {
				d.problem(d.where(c.v, e), join(path, c.key), "%d is negative", *c.v)
			}
			*c.out = *c.v
		}
		s.Expectations = append(s.Expectations, x)
	}
}

// c2dAction validates a c2d timeline entry and builds its action.
func (d *decoder) c2dAction(a *ActionSpec, path string, salt uint64) C2DAction {
	c := a.C2D
	act := C2DAction{At: a.At.D(), Data: c.Data, TTL: c.TTL.D()}
	act.Selection = d.selection(c.Fraction, &c.Fraction, c.Condition, &c.Condition, path, c, salt)
	size := len(c.Data)
	for _, k := range slices.Sorted(keysOf(c.Properties)) {
		if err := iothub.CheckC2DPropertyName(k); err != nil {
			d.problem(d.where(&c.Properties, c), join(path, "properties"), "%v", err)
		}
		size += len(k) + len(c.Properties[k])
		act.Properties = append(act.Properties, iothub.Property{Key: k, Value: c.Properties[k]})
	}
	if size > iothub.MaxC2DBytes {
		d.problem(d.where(&c.Data, c), join(path, "data"), "the message is %d bytes with its properties; IoT Hub allows %d", size, iothub.MaxC2DBytes)
	}
	if ttl := c.TTL.D(); ttl%time.Second != 0 || ttl > iothub.MaxC2DTTL {
		d.problem(d.where(&c.TTL, c), join(path, "ttl"), "%s: want whole seconds up to %s", ttl, iothub.MaxC2DTTL)
	}
	return act
}
