package scenarios

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"iter"
	"math"
	"math/rand/v2"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/fleetsim/fleetsim/devicesim"
	"github.com/fleetsim/fleetsim/hubjobs/jobs"
	"github.com/fleetsim/fleetsim/hubjobs/query"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

//go:embed files/*.yaml
var embedded embed.FS

// Names returns the names of the embedded scenarios, sorted.
func Names() []string {
	entries, _ := fs.ReadDir(embedded, "files")
	var names []string
	for _, e := range entries {
		if n, ok := strings.CutSuffix(e.Name(), ".yaml"); ok {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	return names
}

// Load returns the embedded scenario with the given name or, failing that,
// the scenario file at that path. A name that is neither gives an error
// wrapping ErrUnknownScenario; a file that does not decode or validate gives
// a *ParseError.
func Load(name string) (*Scenario, error) {
	if data, err := embedded.ReadFile("files/" + name + ".yaml"); err == nil && !strings.ContainsAny(name, "/\\") {
		return Parse(name+".yaml", data)
	}
	data, err := os.ReadFile(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w %q: not an embedded scenario (%s) nor a file", ErrUnknownScenario, name, strings.Join(Names(), ", "))
	}
	if err != nil {
		return nil, fmt.Errorf("read scenario: %w", err)
	}
	return Parse(name, data)
}

// Parse decodes and validates a scenario file strictly. Every problem found
// — YAML syntax, unknown keys, wrong types, impossible values, references to
// unknown jobs — is reported at once in a *ParseError, each with the file
// name, line and column.
func Parse(filename string, data []byte) (*Scenario, error) {
	d := newDecoder(filename)
	d.lines = strings.Split(strings.ReplaceAll(string(data), "\r\n", "\n"), "\n")
	root, ok := d.parseYAML(data)
	f := new(File)
	if ok {
		d.decode(root, reflect.ValueOf(f).Elem(), "")
	}
	var s *Scenario
	if ok {
		d.validating = true
		s = d.validate(f)
	}
	if len(d.problems) > 0 {
		d.sortProblems()
		return nil, &ParseError{File: filename, Problems: d.problems}
	}
	s.filename = filename
	s.source = bytes.Clone(data)
	return s, nil
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parseYAML reads exactly one YAML document; a syntax error becomes a
// problem. yaml.v3 reports only the line of a syntax error, so the column
// is 1.
func (d *decoder) parseYAML(data []byte) (root *yaml.Node, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			d.problem(pos{1, 1}, "", "the YAML parser failed: %v", r)
			root, ok = nil, false
		}
	}()
	syntax := func(err error) {
		msg := err.Error()
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			line, _ := strconv.Atoi(m[1])
			d.problem(pos{line, 1}, "", "%s", m[2])
			return
		}
		d.problem(pos{1, 1}, "", "%s", strings.TrimPrefix(msg, "yaml: "))
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			d.problem(pos{1, 1}, "", "the file is empty")
		} else {
			syntax(err)
		}
		return nil, false
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		d.problem(pos{extra.Line, extra.Column}, "", "a scenario file holds one YAML document; remove the second")
		return nil, false
	} else if !errors.Is(err, io.EOF) {
		syntax(err)
		return nil, false
	}
	return &doc, true
}

// Scenario is a decoded, validated scenario with its defaults applied.
// Its exported fields may be changed before a run (for example Seed, from
// fleetsim run --seed); everything derived from the seed is computed on
// demand.
type Scenario struct {
	// File is the scenario as written, defaults filled in.
	File *File
	// Seed drives every random choice; File's seed, 1 by default.
	Seed int64
	// Duration is the longest run time.
	Duration time.Duration
	// Hub configures job execution.
	Hub Hub
	// Groups are the device groups in file order.
	Groups []*Group
	// Expectations are judged at the end of the run, in file order.
	Expectations []Expectation
	// RolloutExpectations are the expectations on the timeline's rollouts.
	RolloutExpectations []RolloutExpectation

	actions  []Action
	filename string
	source   []byte
}

// Name returns the scenario's name.
func (s *Scenario) Name() string { return s.File.Name }

// Description returns the scenario's description.
func (s *Scenario) Description() string { return s.File.Description }

// Filename returns the name the scenario was parsed under ("quickstart.yaml"
// for an embedded one).
func (s *Scenario) Filename() string { return s.filename }

// Source returns the scenario file's text.
func (s *Scenario) Source() []byte { return s.source }

// Actions returns the timeline sorted by At; actions at the same offset
// keep their file order.
func (s *Scenario) Actions() []Action { return slices.Clone(s.actions) }

// Jobs returns the timeline's job actions sorted by At.
func (s *Scenario) Jobs() []JobAction {
	var jobs []JobAction
	for _, a := range s.actions {
		if j, ok := a.(JobAction); ok {
			jobs = append(jobs, j)
		}
	}
	return jobs
}

// Hub is how the simulated hub executes jobs.
type Hub struct {
	// Pacing is the profile as written: "unlimited", or a tier S1, S2 or S3
	// with an optional unit count ("S1x2").
	Pacing string
	// Profile is Pacing as jobs.ParseProfile reads it.
	Profile jobs.Profile
	// MaxInFlight bounds the device operations a job runs at once; 0 lets
	// the engine choose.
	MaxInFlight int
}

// Group is a validated device group.
type Group struct {
	// Name labels the group ("group1" when the file gives none).
	Name string
	// Count is the number of devices.
	Count int
	// First is the fleet-wide index of the group's first device: groups are
	// numbered one after the other in file order, from 0.
	First int
	// IndexFrom is the {index} of the group's first device.
	IndexFrom int
	// Behavior is what every device of the group does; it is shared, so
	// treat it as read-only.
	Behavior devicesim.Behavior
	// Auth is how the group's devices authenticate.
	Auth Auth

	pattern idPattern
	tags    map[string]*TagSpec
}

// DeviceID returns the id of the group's i-th device (0-based within the
// group), that is idPattern with {index} = IndexFrom + i.
func (g *Group) DeviceID(i int) string { return g.pattern.id(g.IndexFrom + i) }

// DeviceSpec is one simulated device.
type DeviceSpec struct {
	// Index is the fleet-wide index, 0..DeviceCount()-1.
	Index int
	// Group is the name of the device's group.
	Group string
	// ID is the device id.
	ID string
	// Tags are the device's twin tags, typed as encoding/json decodes JSON
	// (string, float64, bool, nil, map[string]any, []any). Each DeviceSpec
	// has its own copy.
	Tags map[string]any
	// Behavior is shared by the group's devices: read-only.
	Behavior devicesim.Behavior
	// Auth is how the device authenticates.
	Auth Auth
}

// Auth is how a device authenticates, named as IoT Hub's registry names its
// authentication types.
type Auth string

// The authentication types a group can have.
const (
	// AuthSAS devices sign SAS tokens with keys the run derives.
	AuthSAS Auth = "sas"
	// AuthSelfSigned devices present a self-signed certificate registered
	// by its thumbprints.
	AuthSelfSigned Auth = "selfSigned"
	// AuthCA devices present a certificate with CN = device id signed by
	// the run's device CA, which the hub trusts.
	AuthCA Auth = "certificateAuthority"
)

// X509 reports whether devices with a authenticate with a certificate.
func (a Auth) X509() bool { return a == AuthSelfSigned || a == AuthCA }

// X509Groups reports which X.509 authentication types the fleet's groups use.
func (s *Scenario) X509Groups() (selfSigned, ca bool) {
	for _, g := range s.Groups {
		selfSigned = selfSigned || g.Auth == AuthSelfSigned
		ca = ca || g.Auth == AuthCA
	}
	return selfSigned, ca
}

// DeviceCount returns the number of devices over all groups and shards.
func (s *Scenario) DeviceCount() int {
	n := 0
	for _, g := range s.Groups {
		n += g.Count
	}
	return n
}

// Device returns the device with the given fleet-wide index (0 ≤ i <
// DeviceCount()). Its tags are drawn from a generator seeded by s.Seed and
// the device id alone, so a device is the same whichever shard or order
// asks for it.
func (s *Scenario) Device(i int) DeviceSpec {
	gi := sort.Search(len(s.Groups), func(k int) bool { return s.Groups[k].First+s.Groups[k].Count > i })
	if gi == len(s.Groups) || i < 0 {
		panic(fmt.Sprintf("scenarios: device index %d out of range [0, %d)", i, s.DeviceCount()))
	}
	g := s.Groups[gi]
	local := i - g.First
	id := g.DeviceID(local)
	spec := DeviceSpec{Index: i, Group: g.Name, ID: id, Behavior: g.Behavior, Auth: g.Auth, Tags: map[string]any{}}
	if len(g.tags) > 0 {
		h := hashString(id)
		r := rand.New(rand.NewPCG(uint64(s.Seed), h))
		for _, k := range sortedKeys(g.tags) {
			spec.Tags[k] = g.tags[k].sample(local, r)
		}
	}
	return spec
}

// DeviceSpecs yields the devices of one shard in index order. A device
// belongs to shard devicesim.ShardOf(id, shards) (shards count from 0), the
// rule every fleetsim process uses, so the shards of one scenario are
// disjoint and together hold every device. shards ≤ 1 yields the whole
// fleet.
func (s *Scenario) DeviceSpecs(shard, shards int) iter.Seq[DeviceSpec] {
	return func(yield func(DeviceSpec) bool) {
		for _, i := range s.ShardIndexes(shard, shards) {
			if !yield(s.Device(i)) {
				return
			}
		}
	}
}

// ShardIndexes returns the fleet-wide indexes of one shard's devices, in
// order: what DeviceSpecs yields, without building tags, for a
// devicesim.FleetConfig whose Generate calls Device on demand.
func (s *Scenario) ShardIndexes(shard, shards int) []int {
	n := s.DeviceCount()
	if shards <= 1 {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	if shard < 0 || shard >= shards {
		return nil
	}
	idx := make([]int, 0, n/shards+1)
	for _, g := range s.Groups {
		for i := range g.Count {
			if devicesim.ShardOf(g.DeviceID(i), shards) == shard {
				idx = append(idx, g.First+i)
			}
		}
	}
	return idx
}

func hashString(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}

// Action is one timeline entry: a JobAction, CancelAction, DisconnectAction,
// ConnectStormAction, RolloutAction or C2DAction.
type Action interface {
	// When returns the offset from the start of the run.
	When() time.Duration
	// String describes the action for logs and progress lines.
	String() string
}

// JobAction creates a job.
type JobAction struct {
	At    time.Duration
	JobID string
	// PinID keeps JobID as written on a remote hub, where runs otherwise
	// append their run's suffix.
	PinID bool
	// Type is jobs.TypeDeviceMethod or jobs.TypeUpdateTwin.
	Type jobs.JobType
	// Method is the method call of a method job.
	Method *iothub.MethodRequest
	// UpdateTwin is the patch of a twin job: {"etag":"*","tags":...,
	// "properties":{"desired":...}}.
	UpdateTwin json.RawMessage
	// Condition is the job's queryCondition.
	Condition string
	// StartIn is the job's start time relative to the action.
	StartIn time.Duration
	// MaxExecutionTime is the job's maxExecutionTimeInSeconds.
	MaxExecutionTime time.Duration
}

// When implements Action.
func (a JobAction) When() time.Duration { return a.At }

// String implements Action.
func (a JobAction) String() string {
	if a.Type == jobs.TypeDeviceMethod {
		return fmt.Sprintf("at %s: create method job %s (%s) over %s", a.At, a.JobID, a.Method.MethodName, a.Condition)
	}
	return fmt.Sprintf("at %s: create twin job %s over %s", a.At, a.JobID, a.Condition)
}

// CancelAction cancels a job created earlier in the timeline.
type CancelAction struct {
	At    time.Duration
	JobID string
}

// When implements Action.
func (a CancelAction) When() time.Duration { return a.At }

// String implements Action.
func (a CancelAction) String() string { return fmt.Sprintf("at %s: cancel job %s", a.At, a.JobID) }

// Selection picks devices for a disconnect wave or a connect storm: those
// matching Condition (all when empty), then a Fraction of them chosen by
// the seed.
type Selection struct {
	// Fraction of the matching devices, 0..1.
	Fraction float64
	// Condition is a query condition over deviceId and tags; empty or "*"
	// matches every device.
	Condition string

	cond *query.Query
	salt uint64
}

// Selects reports whether the selection picks d under the given seed. The
// choice depends only on the seed, the device id and the action's place in
// the timeline, so every shard agrees on it.
func (sel Selection) Selects(seed int64, d DeviceSpec) bool {
	if sel.cond != nil && !sel.cond.Match(map[string]any{"deviceId": d.ID, "tags": d.Tags}) {
		return false
	}
	switch {
	case sel.Fraction >= 1:
		return true
	case sel.Fraction <= 0:
		return false
	}
	r := rand.New(rand.NewPCG(uint64(seed)^sel.salt, hashString(d.ID)))
	return r.Float64() < sel.Fraction
}

func (sel Selection) String() string {
	var parts []string
	if sel.Fraction < 1 {
		parts = append(parts, fmt.Sprintf("%g%% of", sel.Fraction*100))
	}
	if sel.Condition == "" || strings.TrimSpace(sel.Condition) == "*" {
		parts = append(parts, "all devices")
	} else {
		parts = append(parts, "devices where "+sel.Condition)
	}
	return strings.Join(parts, " ")
}

// DisconnectAction is a disconnect wave: the selected devices drop their
// connections (no DISCONNECT packet) and stay offline for a time drawn
// from For.
type DisconnectAction struct {
	At time.Duration
	Selection
	For devicesim.Distribution
}

// When implements Action.
func (a DisconnectAction) When() time.Duration { return a.At }

// String implements Action.
func (a DisconnectAction) String() string {
	return fmt.Sprintf("at %s: disconnect %s for %v", a.At, a.Selection, a.For)
}

// ConnectStormAction is a connect storm: the selected devices drop their
// connections and reconnect at once, spread over Within.
type ConnectStormAction struct {
	At time.Duration
	Selection
	Within time.Duration
}

// When implements Action.
func (a ConnectStormAction) When() time.Duration { return a.At }

// String implements Action.
func (a ConnectStormAction) String() string {
	return fmt.Sprintf("at %s: connect storm of %s within %s", a.At, a.Selection, a.Within)
}

// Expectation is one judged outcome. Job expectations set Job; the fleet
// expectation sets MinConnected. Zero values mean "not checked", except
// MaxFailed, where -1 does.
type Expectation struct {
	// Job is the job the checks are about; empty for a fleet expectation.
	Job string
	// Status is the final status the job must reach: completed, failed or
	// cancelled.
	Status string
	// Within bounds the time from the job's start to its terminal status.
	Within time.Duration
	// TakesAtLeast is the least time from the job's start to its terminal
	// status (to show pacing).
	TakesAtLeast time.Duration
	// MinSuccessRate is the least fraction of the job's devices that succeed.
	MinSuccessRate float64
	// MaxP99Latency bounds the 99th percentile of device operation times.
	MaxP99Latency time.Duration
	// MinSucceeded is the least number of devices that succeed.
	MinSucceeded int
	// MaxFailed is the most devices that may fail; -1 is not checked.
	MaxFailed int
	// MinDevices is the least number of devices the job selects.
	MinDevices int
	// MinConnected is the least fraction (0..1) of the process's devices
	// connected at the end of the run.
	MinConnected float64
	// MinAckRate is the least fraction (0..1) of a twin job's succeeded
	// devices whose acknowledgement the hub accepted.
	MinAckRate float64
	// MaxAckP99 bounds the 99th percentile of a twin job's acknowledgement
	// latency.
	MaxAckP99 time.Duration
	// MaxPhaseFailures is the failure budget of a firmwareUpdate job by
	// phase (downloading, verifying, applying, rebooting); phases without
	// an entry are not checked.
	MaxPhaseFailures map[devicesim.FirmwarePhase]int
	// MaxRollbacks is the most updates that roll back; -1 is not checked.
	MaxRollbacks int
	// DeviceState, when set, is an expectation on the devices' twins.
	DeviceState *DeviceState
	// Line is the expectation's line in the file, for reports.
	Line int
}

// DeviceState is an expectation on the devices' twins, judged with IoT Hub
// queries: at least MinFraction of the devices Devices selects (and at
// least MinDevices of them) match Match, within Within of the job's start
// (or the run's), or by the end of the run when Within is 0.
type DeviceState struct {
	Devices, Match string
	MinFraction    float64
	Within         time.Duration
	MinDevices     int
}

// String describes the expectation.
func (e Expectation) String() string {
	var parts []string
	if ds := e.DeviceState; ds != nil {
		s := fmt.Sprintf("at least %g%% of the devices where %s match %s", ds.MinFraction*100, ds.Devices, ds.Match)
		switch {
		case ds.Within > 0 && e.Job != "":
			s += fmt.Sprintf(" within %s of job %s's start", ds.Within, e.Job)
		case ds.Within > 0:
			s += fmt.Sprintf(" within %s of the start", ds.Within)
		}
		parts = append(parts, s)
	}
	if e.Job == "" {
		if e.MinConnected > 0 || len(parts) == 0 {
			parts = append(parts, fmt.Sprintf("at least %g%% of devices connected at the end", e.MinConnected*100))
		}
		return strings.Join(parts, ", ")
	}
	if e.Status != "" {
		parts = append(parts, "ends "+e.Status)
	}
	if e.Within > 0 {
		parts = append(parts, "within "+e.Within.String())
	}
	if e.TakesAtLeast > 0 {
		parts = append(parts, "takes at least "+e.TakesAtLeast.String())
	}
	if e.MinSuccessRate > 0 {
		parts = append(parts, fmt.Sprintf("success rate ≥ %g%%", e.MinSuccessRate*100))
	}
	if e.MaxP99Latency > 0 {
		parts = append(parts, "p99 ≤ "+e.MaxP99Latency.String())
	}
	if e.MinSucceeded > 0 {
		parts = append(parts, fmt.Sprintf("≥ %d succeeded", e.MinSucceeded))
	}
	if e.MaxFailed >= 0 {
		parts = append(parts, fmt.Sprintf("≤ %d failed", e.MaxFailed))
	}
	if e.MinDevices > 0 {
		parts = append(parts, fmt.Sprintf("≥ %d devices", e.MinDevices))
	}
	if e.MinAckRate > 0 {
		parts = append(parts, fmt.Sprintf("acknowledged by ≥ %g%%", e.MinAckRate*100))
	}
	if e.MaxAckP99 > 0 {
		parts = append(parts, "acknowledgement p99 ≤ "+e.MaxAckP99.String())
	}
	for _, ph := range devicesim.FirmwarePhases {
		if n, ok := e.MaxPhaseFailures[ph]; ok {
			parts = append(parts, fmt.Sprintf("≤ %d failed in %s", n, ph))
		}
	}
	if e.MaxRollbacks >= 0 {
		parts = append(parts, fmt.Sprintf("≤ %d rollbacks", e.MaxRollbacks))
	}
	if len(parts) == 0 {
		parts = append(parts, "is created")
	}
	return "job " + e.Job + " " + strings.Join(parts, ", ")
}

// Scaled returns a copy of s with at most maxDevices devices, for running a
// large scenario at small scale (tests, laptops): every group shrinks by the
// same factor, keeping at least one device, and the expectations' device
// counts shrink with it (minimums rounded down, maxFailed rounded up). A
// scenario already within maxDevices comes back unchanged.
func (s *Scenario) Scaled(maxDevices int) *Scenario {
	total := s.DeviceCount()
	if maxDevices <= 0 || total <= maxDevices {
		return s
	}
	f := float64(maxDevices) / float64(total)
	c := *s
	c.Groups = make([]*Group, len(s.Groups))
	first := 0
	for i, g := range s.Groups {
		ng := *g
		ng.Count = max(int(float64(g.Count)*f), 1)
		ng.First = first
		first += ng.Count
		c.Groups[i] = &ng
	}
	c.Expectations = slices.Clone(s.Expectations)
	for i := range c.Expectations {
		e := &c.Expectations[i]
		e.MinDevices = int(float64(e.MinDevices) * f)
		e.MinSucceeded = int(float64(e.MinSucceeded) * f)
		if e.MaxFailed > 0 {
			e.MaxFailed = int(math.Ceil(float64(e.MaxFailed) * f))
		}
		if e.MaxRollbacks > 0 {
			e.MaxRollbacks = int(math.Ceil(float64(e.MaxRollbacks) * f))
		}
		if e.MaxPhaseFailures != nil {
			b := make(map[devicesim.FirmwarePhase]int, len(e.MaxPhaseFailures))
			for ph, n := range e.MaxPhaseFailures {
				b[ph] = int(math.Ceil(float64(n) * f))
			}
			e.MaxPhaseFailures = b
		}
		if ds := e.DeviceState; ds != nil {
			c := *ds
			c.MinDevices = max(int(float64(c.MinDevices)*f), min(c.MinDevices, 1))
			e.DeviceState = &c
		}
	}
	c.RolloutExpectations = slices.Clone(s.RolloutExpectations)
	for i := range c.RolloutExpectations {
		e := &c.RolloutExpectations[i]
		if e.MinTouched > 0 {
			e.MinTouched = int(float64(e.MinTouched) * f)
		}
		if e.MaxTouched > 0 {
			e.MaxTouched = int(math.Ceil(float64(e.MaxTouched) * f))
		}
	}
	return &c
}

// C2DAction sends a cloud-to-device message to the selected devices.
type C2DAction struct {
	At time.Duration
	Selection
	// Data is the message body.
	Data string
	// Properties are the application properties, in name order.
	Properties []iothub.Property
	// TTL is the time to live; 0 is the hub's default.
	TTL time.Duration
}

// When implements Action.
func (a C2DAction) When() time.Duration { return a.At }

// String implements Action.
func (a C2DAction) String() string {
	return fmt.Sprintf("at %s: send a cloud-to-device message to %s", a.At, a.Selection)
}
