package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/hubjobs/restapi"
	"github.com/fleetsim/fleetsim/internal/iothub"
	"github.com/fleetsim/fleetsim/scenarios"
)

// maxJobIDLen is IoT Hub's longest job id.
const maxJobIDLen = 64

// jobID is the hub's id of a scenario's job: on a remote hub the scenario's
// id and the run's suffix, unless the scenario pins the id.
func (p *player) jobID(base string) string {
	if p.coord == nil || base == "" {
		return base
	}
	for _, a := range p.sc.Actions() {
		if ja, ok := a.(scenarios.JobAction); ok && ja.JobID == base && ja.PinID {
			return base
		}
	}
	suffix := "-" + p.coord.jobSuffix()
	if len(base)+len(suffix) > maxJobIDLen {
		base = base[:maxJobIDLen-len(suffix)]
	}
	return base + suffix
}

// condition is a scenario's query condition on the hub: on a remote run
// it leaves out the run's coordination device, which is no device of the
// fleet.
func (p *player) condition(cond string) string {
	if p.coord == nil {
		return cond
	}
	return both(cond, "deviceId != '"+p.coord.device+"'")
}

// connectedNow is the shard's connected count for its heartbeats.
func (p *player) connectedNow() int {
	if p.fleet == nil {
		return 0
	}
	return p.fleet.Connected()
}

// meet starts the shard's heartbeats and waits at the run's start barrier;
// the timeline's clock starts after it.
func (p *player) meet(ctx context.Context) error {
	if p.coord == nil {
		return nil
	}
	// Heartbeats go on through an interruption until the report is made.
	p.coord.startBeating(context.WithoutCancel(ctx))
	poll := min(time.Second, max(100*time.Millisecond, p.coord.cfg.HeartbeatTimeout/10))
	if err := p.coord.barrier(ctx, poll); err != nil {
		return err
	}
	p.started = time.Now()
	return nil
}

// endJobs deals with the jobs still running when a remote run ends:
// shard 1 cancels them when asked to; every shard's report says which.
func (p *player) endJobs(ctx context.Context) {
	if p.hub.local() {
		return
	}
	for _, id := range p.jobs {
		j, err := p.hub.job(ctx, id)
		if err != nil || j.Status.Terminal() {
			continue
		}
		switch {
		case p.leads() && p.o.Run.CancelAtEnd:
			if err := p.hub.cancelJob(ctx, id); err != nil {
				p.endNotes = append(p.endNotes, fmt.Sprintf("job %s was still %s when the run ended and could not be cancelled: %v", id, j.Status, err))
			} else {
				p.endNotes = append(p.endNotes, fmt.Sprintf("job %s was still %s when the run ended: cancelled (--at-end cancel)", id, j.Status))
			}
		case p.o.Run.CancelAtEnd:
			p.endNotes = append(p.endNotes, fmt.Sprintf("job %s was still %s when the run ended: shard 1 cancels it (--at-end cancel)", id, j.Status))
		default:
			p.endNotes = append(p.endNotes, fmt.Sprintf("job %s was still %s when the run ended: left running on the hub (--at-end cancel cancels it)", id, j.Status))
		}
	}
}

// remoteReport adds what a remote run's report says besides the jobs: the
// run's coordination, the hub's settings, jobs left running, and, on any
// run, the devices that never connected.
func (p *player) remoteReport(rep *Report) {
	rep.NeverConnected = p.neverConnected()
	if rep.NeverConnected != nil {
		rep.Warnings = append(rep.Warnings, rep.NeverConnected.summary(rep.Devices))
	}
	if p.coord == nil {
		return
	}
	rr := p.coord.report()
	rep.Run = rr
	if len(rr.MissingAtStart) > 0 {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("shards %s of run %s were not ready when shard 1 started the timeline (the barrier waited %s): their devices may be missing from the jobs",
			formatShardList(rr.MissingAtStart), rr.ID, time.Duration(rr.BarrierWait).Round(time.Millisecond)))
	}
	if rr.Late {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("this shard joined run %s after it had started: its devices may be missing from the jobs", rr.ID))
	}
	for _, l := range rr.Lost {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("shard %d/%d stopped heartbeating (last heartbeat %s): it disappeared before it finished, and its devices failed or timed out in the jobs",
			l.Shard, rr.Shards, l.LastHeartbeat.Format(time.RFC3339)))
	}
	rep.Warnings = append(rep.Warnings, p.endNotes...)
	rep.Hub = &HubSettings{Known: p.remote.known, Error: p.remote.err}
	want := p.sc.Hub.Profile.Name
	if want == "" {
		want = p.sc.Hub.Pacing
	}
	if want == "" {
		want = "unlimited"
	}
	wantInFlight := p.sc.Hub.MaxInFlight
	if wantInFlight <= 0 {
		wantInFlight = hubjobs.DefaultMaxInFlight
	}
	if !p.remote.known {
		rep.Pacing = "unknown"
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("the hub's pacing and in-flight limit are unknown (%s): the scenario asks for pacing %s and %d in flight, which the hub decides", p.remote.err, want, wantInFlight))
		return
	}
	s := p.remote.settings
	rep.Hub.Pacing, rep.Hub.MaxInFlight, rep.Hub.OpsPerSecond = s.Pacing, s.MaxInFlight, s.OpsPerSecond
	rep.Pacing = s.Pacing
	if !strings.EqualFold(s.Pacing, want) {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("the hub runs jobs at pacing %s, the scenario asks for %s: the figures are the hub's", s.Pacing, want))
	}
	if s.MaxInFlight != wantInFlight {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("the hub runs at most %d device operations in flight, the scenario asks for %d: the figures are the hub's", s.MaxInFlight, wantInFlight))
	}
}

// HubSettings are the remote hub's job settings, as read from it.
type HubSettings struct {
	// Known says the hub told them (a fleetsim serve); a real IoT hub does not.
	Known        bool    `json:"known"`
	Pacing       string  `json:"pacing,omitempty"`
	OpsPerSecond float64 `json:"opsPerSecond,omitempty"`
	MaxInFlight  int     `json:"maxInFlight,omitempty"`
	// Error says why they are unknown.
	Error string `json:"error,omitempty"`
}

// remoteSettings are a remote hub's settings, or why they are unknown.
type remoteSettings struct {
	known    bool
	settings restapi.Settings
	err      string
}

// settingsReader is what reading the settings needs (*restapi.Client has it).
type settingsReader interface {
	Do(ctx context.Context, method, path string, body any, header http.Header) (*restapi.Response, error)
}

// readRemoteSettings asks a remote hub for its settings: a fleetsim serve
// answers; any other hub has no such endpoint.
func readRemoteSettings(ctx context.Context, t target) remoteSettings {
	rt, ok := t.(*restTarget)
	if !ok {
		return remoteSettings{err: "not a remote hub"}
	}
	return fetchSettings(ctx, rt.c)
}

func fetchSettings(ctx context.Context, c settingsReader) remoteSettings {
	resp, err := c.Do(ctx, http.MethodGet, restapi.SettingsPath, nil, nil)
	if err != nil {
		var ie *iothub.Error
		if errors.As(err, &ie) && (ie.Code.Status() == http.StatusNotFound || ie.Code.Status() == http.StatusBadRequest) {
			return remoteSettings{err: "the hub has no " + restapi.SettingsPath + ": not a fleetsim serve"}
		}
		return remoteSettings{err: "reading " + restapi.SettingsPath + ": " + err.Error()}
	}
	var s restapi.Settings
	if err := json.Unmarshal(resp.Body, &s); err != nil || s.Pacing == "" {
		return remoteSettings{err: fmt.Sprintf("the hub's %s answer is not settings: %s", restapi.SettingsPath, resp.Body)}
	}
	return remoteSettings{known: true, settings: s}
}

// NeverConnected are the shard's devices that never connected in the run.
type NeverConnected struct {
	Count int `json:"count"`
	// Causes are their last connect errors, counted; a device that never
	// tried (offline by the scenario, or still waiting) has none.
	Causes []NeverConnectedCause `json:"causes,omitempty"`
}

// NeverConnectedCause is one cause and its devices.
type NeverConnectedCause struct {
	Cause    string   `json:"cause"`
	Count    int      `json:"count"`
	Examples []string `json:"examples,omitempty"`
}

const neverTried = "no connect attempt failed (offline by the scenario, or still waiting to connect)"

// neverConnected counts the fleet's devices with no accepted connect, by
// their last connect error with the device id taken out.
func (p *player) neverConnected() *NeverConnected {
	if p.fleet == nil {
		return nil
	}
	nc := &NeverConnected{}
	by := map[string]*NeverConnectedCause{}
	for _, d := range p.fleet.Devices() {
		if d.Stats().Connects > 0 {
			continue
		}
		nc.Count++
		cause := connectCause(d.ID(), d.LastConnectError())
		c := by[cause]
		if c == nil {
			c = &NeverConnectedCause{Cause: cause}
			by[cause] = c
		}
		c.Count++
		if len(c.Examples) < 3 {
			c.Examples = append(c.Examples, d.ID())
		}
	}
	if nc.Count == 0 {
		return nil
	}
	for _, c := range by {
		nc.Causes = append(nc.Causes, *c)
	}
	slices.SortFunc(nc.Causes, func(a, b NeverConnectedCause) int {
		if a.Count != b.Count {
			return b.Count - a.Count
		}
		return strings.Compare(a.Cause, b.Cause)
	})
	return nc
}

// connectCause is a connect error without what differs per device.
func connectCause(id, msg string) string {
	if msg == "" {
		return neverTried
	}
	return strings.ReplaceAll(msg, id, "<device>")
}

func (nc *NeverConnected) summary(devices int) string {
	s := fmt.Sprintf("%d of %d devices never connected", nc.Count, devices)
	top := nc.Causes[0]
	s += fmt.Sprintf("; most (%d): %s", top.Count, top.Cause)
	if strings.Contains(strings.ToLower(top.Cause), "too many open files") || strings.Contains(top.Cause, "connection reset") || strings.Contains(top.Cause, "connection refused") {
		s += " (a hub or shard out of file descriptors refuses connections: see the README on descriptor limits)"
	}
	return s
}
