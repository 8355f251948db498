package devicesim

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Behavior is everything a simulated device does besides speaking MQTT. The
// zero value connects, answers no methods (like an SDK client without a
// handler: the hub times out), keeps its twin copy and acknowledges nothing.
type Behavior struct {
	// Methods maps a method name to how the device answers it; "*" is the
	// default for any name without its own entry.
	Methods map[string]MethodBehavior
	// Reboot, when set, handles the built-in "reboot" method: answer, go
	// offline for a sampled time, reconnect.
	Reboot *RebootBehavior
	// FirmwareUpdate, when set, handles the built-in "firmwareUpdate" method:
	// download → verify → apply → reboot → report, progress and result in
	// reported.firmware.
	FirmwareUpdate *FirmwareBehavior
	// Desired says how the device acknowledges desired-property changes.
	Desired DesiredBehavior
	// Connectivity covers going offline, flapping, token renewal and retries.
	Connectivity Connectivity
	// Telemetry, when set, sends device-to-cloud messages periodically.
	Telemetry *TelemetryBehavior
	// C2D, when set, subscribes to cloud-to-device messages and says how
	// the device reacts to them (c2d.go); nil takes none.
	C2D *C2DBehavior
	// Reported is merged into reported properties once after the first
	// connect (for example {"model":"x","firmware":{...}}); nil sends none.
	Reported map[string]any
}

// Built-in method names.
const (
	MethodReboot         = "reboot"
	MethodFirmwareUpdate = "firmwareUpdate"
	// MethodDefault is the Methods key that matches any other method name.
	MethodDefault = "*"
)

// WeightedStatus is one entry of a status-code mix: Status is answered with
// probability Weight / sum of all weights.
type WeightedStatus struct {
	Status int
	Weight float64
}

// MethodBehavior is how a device answers one direct method.
type MethodBehavior struct {
	// Latency is the time between receiving the request and answering.
	Latency Distribution
	// Statuses is the mix of status codes answered; empty means 200.
	Statuses []WeightedStatus
	// Payload is the JSON answered. It may contain {{deviceId}}, {{method}},
	// {{status}} (a number) and {{requestPayload}} (the request's raw JSON),
	// for example {"echo":{{requestPayload}},"from":"{{deviceId}}"}. Empty
	// answers null.
	Payload json.RawMessage
	// NoAnswerProbability is the chance the device never answers, so the hub
	// times out (504).
	NoAnswerProbability float64
	// DisconnectProbability is the chance the device drops its connection
	// (no DISCONNECT packet) instead of answering, then reconnects after
	// Connectivity.Backoff.
	DisconnectProbability float64
}

// RebootBehavior models the built-in "reboot" method.
type RebootBehavior struct {
	// Status answered before going down; 0 means 200.
	Status int
	// Latency before the answer.
	Latency Distribution
	// Payload answered; empty answers null. Same substitutions as MethodBehavior.
	Payload json.RawMessage
	// Delay between the answer and dropping the connection (the time to shut
	// down); nil drops at once.
	Delay Distribution
	// Offline is how long the device stays down before reconnecting.
	Offline Distribution
	// ReportLastReboot reports {"lastReboot": RFC 3339 time} after coming back.
	ReportLastReboot bool
}

// FirmwarePhase is one state of the firmware-update state machine, reported
// as reported.firmware.status.
type FirmwarePhase string

// Firmware phases in the order an update walks through them.
const (
	FirmwareIdle        FirmwarePhase = "current"
	FirmwareDownloading FirmwarePhase = "downloading"
	FirmwareVerifying   FirmwarePhase = "verifying"
	FirmwareApplying    FirmwarePhase = "applying"
	FirmwareRebooting   FirmwarePhase = "rebooting"
	FirmwareFailed      FirmwarePhase = "failed"
	FirmwareRollingBack FirmwarePhase = "rollingBack"
	FirmwareRolledBack  FirmwarePhase = "rolledBack"
)

// FirmwareBehavior models the built-in "firmwareUpdate" method. The request
// payload is {"version":"2.0.0", ...}. The device answers Status at once
// (409 if an update is already running), then walks the phases, reporting
// reported.firmware = {status, currentVersion, pendingVersion, progress,
// lastError} at every phase change and every download progress step. A phase
// may fail with its FailureProbability; a failure in applying or rebooting
// rolls back to the old version when Rollback is set.
type FirmwareBehavior struct {
	// Status answered when an update is accepted; 0 means 200.
	Status int
	// Latency before the answer.
	Latency Distribution
	// InitialVersion is reported as currentVersion before any update; empty
	// means "1.0.0".
	InitialVersion string
	// Download, Verify, Apply are the phase durations; Reboot is the time
	// the device is offline while rebooting into the new image.
	Download, Verify, Apply, Reboot Distribution
	// ProgressSteps is the number of progress reports during the download
	// (0 means 4: 25, 50, 75, 100 %).
	ProgressSteps int
	// Failure maps a phase (downloading, verifying, applying, rebooting) to
	// the probability that it fails.
	Failure map[FirmwarePhase]float64
	// Rollback restores the old version after a failure in applying or
	// rebooting, taking RollbackTime.
	Rollback     bool
	RollbackTime Distribution
}

// AckFormat selects how desired properties are acknowledged in reported.
type AckFormat int

const (
	// AckValue reports {"<key>": {"value": v, "ackVersion": n, "status": "applied"|"failed"}}.
	AckValue AckFormat = iota
	// AckPnP reports IoT Plug and Play's writable-property response
	// {"<key>": {"value": v, "ac": 200|500, "av": n, "ad": "..."}}.
	AckPnP
	// AckNone applies desired changes without reporting anything.
	AckNone
)

// DesiredBehavior is how a device handles desired-property changes: it
// applies every patch to its local copy, then after Delay reports an
// acknowledgement for each changed key in one reported patch.
type DesiredBehavior struct {
	// Format of the acknowledgement; AckValue by default.
	Format AckFormat
	// Delay before the acknowledgement is reported.
	Delay Distribution
	// NoAckProbability is the chance the device applies a change but never
	// acknowledges it.
	NoAckProbability float64
	// FailProbability is the chance the acknowledgement says the change
	// failed (status "failed" / ac 500).
	FailProbability float64
}

// Connectivity covers how a device's connection comes and goes.
type Connectivity struct {
	// StartSpread spreads first connects over [0, StartSpread) by a fraction
	// taken from hash(deviceID) ^ seed.
	StartSpread time.Duration
	// OfflineAtStart is the chance the device does not connect at start;
	// it stays away for OfflineFor (nil: for the whole run).
	OfflineAtStart float64
	OfflineFor     Distribution
	// Flapping, when set, drops the connection (no DISCONNECT) after an
	// up-time drawn from MTBF and reconnects after a down-time drawn from MTTR.
	Flapping *Flapping
	// TokenLifetime is the SAS lifetime (default 1 h); the device renews
	// RenewalMargin (default 15 min, or a quarter of a shorter lifetime)
	// before expiry by DISCONNECT and a new CONNECT with a new se, like the
	// Node SDK.
	TokenLifetime time.Duration
	RenewalMargin time.Duration
	// Backoff between failed connects: exponential from Initial (default 1 s)
	// to Max (default 10 s, the cap of the Azure device SDKs' retry
	// policies) with full jitter. A device that lost its hub is back within
	// Max of the hub's return, well inside a job's connect timeout.
	Backoff Backoff
	// KeepAlive is the MQTT keep-alive (default 180 s as the Node SDK;
	// negative disables it, which saves paho a goroutine per device).
	KeepAlive time.Duration
	// ConnectTimeout bounds dial + CONNECT/CONNACK (default 30 s).
	ConnectTimeout time.Duration
	// Subscribe says when the device subscribes (default SubscribeNoSession).
	Subscribe SubscribeMode
}

// Flapping models an unreliable link.
type Flapping struct {
	MTBF Distribution // connected time before a drop
	MTTR Distribution // offline time before reconnecting
}

// Backoff is an exponential retry policy with full jitter.
type Backoff struct {
	Initial, Max time.Duration
}

// SubscribeMode says when a device sends SUBSCRIBE after a connect.
type SubscribeMode int

const (
	// SubscribeNoSession subscribes after every CONNACK with session present
	// 0 (a first connect, or a broker that lost the session), and until the
	// device has once completed its subscriptions: a connect attempt that
	// failed after the broker accepted it leaves a session with none.
	SubscribeNoSession SubscribeMode = iota
	// SubscribeAlways subscribes after every connect.
	SubscribeAlways
	// SubscribeNodeSDK copies the Node SDK (docs/sdk-notes.md §2.6): all three
	// filters on the first connect, nothing after a token renewal, only the
	// methods filter after a lost connection. It relies on the broker's
	// persistent session.
	SubscribeNodeSDK
)

// TelemetryBehavior sends device-to-cloud messages.
type TelemetryBehavior struct {
	// Interval between messages.
	Interval Distribution
	// PayloadSize is the approximate JSON body size in bytes (minimum ~40).
	PayloadSize int
	// QoS of the publish; the Node SDK uses 1.
	QoS byte
	// Template, when set, generates the payloads (PayloadSize is then
	// unused) and gives the messages' properties.
	Template *TelemetryTemplate
}

// Validate reports the problems of b, all at once.
func (b Behavior) Validate() error {
	var errs []error
	if b.C2D != nil {
		if err := b.C2D.Validate(); err != nil {
			errs = append(errs, err)
		}
	}
	prob := func(what string, p float64) {
		if p < 0 || p > 1 || p != p {
			errs = append(errs, fmt.Errorf("%s: probability %v is outside 0..1", what, p))
		}
	}
	for name, m := range b.Methods {
		prob("method "+name+": noAnswerProbability", m.NoAnswerProbability)
		prob("method "+name+": disconnectProbability", m.DisconnectProbability)
		var sum float64
		for _, s := range m.Statuses {
			if s.Weight < 0 {
				errs = append(errs, fmt.Errorf("method %s: status %d has negative weight", name, s.Status))
			}
			sum += s.Weight
		}
		if len(m.Statuses) > 0 && sum <= 0 {
			errs = append(errs, fmt.Errorf("method %s: status weights sum to zero", name))
		}
		if len(m.Payload) > 0 && !json.Valid(expandTemplate(m.Payload, templateVars{deviceID: "d", method: "m", status: 200, request: []byte("null")})) {
			errs = append(errs, fmt.Errorf("method %s: payload template does not give JSON", name))
		}
		if p, ok := m.Latency.(Percentiles); ok {
			if err := p.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("method %s: latency: %w", name, err))
			}
		}
	}
	prob("desired: noAckProbability", b.Desired.NoAckProbability)
	prob("desired: failProbability", b.Desired.FailProbability)
	prob("connectivity: offlineAtStart", b.Connectivity.OfflineAtStart)
	if f := b.Connectivity.Flapping; f != nil && (f.MTBF == nil || f.MTTR == nil) {
		errs = append(errs, errors.New("connectivity: flapping needs both MTBF and MTTR"))
	}
	c := b.Connectivity.withDefaults()
	if c.RenewalMargin >= c.TokenLifetime {
		errs = append(errs, fmt.Errorf("connectivity: renewal margin %s is not below the token lifetime %s", c.RenewalMargin, c.TokenLifetime))
	}
	if fw := b.FirmwareUpdate; fw != nil {
		for ph, p := range fw.Failure {
			switch ph {
			case FirmwareDownloading, FirmwareVerifying, FirmwareApplying, FirmwareRebooting:
			default:
				errs = append(errs, fmt.Errorf("firmwareUpdate: failure in phase %q: only downloading, verifying, applying and rebooting can fail", ph))
			}
			prob("firmwareUpdate: failure "+string(ph), p)
		}
	}
	if t := b.Telemetry; t != nil {
		if t.Interval == nil {
			errs = append(errs, errors.New("telemetry: interval is required"))
		}
		if t.QoS > 1 {
			errs = append(errs, fmt.Errorf("telemetry: QoS %d: IoT Hub allows 0 or 1", t.QoS))
		}
		if t.Template != nil {
			if err := t.Template.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("telemetry: template: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}

func (c Connectivity) withDefaults() Connectivity {
	if c.TokenLifetime <= 0 {
		c.TokenLifetime = time.Hour
	}
	if c.RenewalMargin <= 0 {
		c.RenewalMargin = min(15*time.Minute, c.TokenLifetime/4)
	}
	if c.Backoff.Initial <= 0 {
		c.Backoff.Initial = time.Second
	}
	if c.Backoff.Max <= 0 {
		c.Backoff.Max = 10 * time.Second
	}
	if c.Backoff.Max < c.Backoff.Initial {
		c.Backoff.Max = c.Backoff.Initial
	}
	if c.KeepAlive == 0 {
		c.KeepAlive = 180 * time.Second
	}
	if c.ConnectTimeout <= 0 {
		c.ConnectTimeout = 30 * time.Second
	}
	return c
}

// pickStatus draws a status from the mix (200 when empty).
func pickStatus(mix []WeightedStatus, r *rand.Rand) int {
	if len(mix) == 0 {
		return 200
	}
	if len(mix) == 1 {
		return mix[0].Status
	}
	var sum float64
	for _, s := range mix {
		sum += max(s.Weight, 0)
	}
	u := r.Float64() * sum
	for _, s := range mix {
		u -= max(s.Weight, 0)
		if u < 0 {
			return s.Status
		}
	}
	return mix[len(mix)-1].Status
}

// chance returns true with probability p, drawing only when 0 < p < 1 so a
// behaviour without randomness does not shift the sequence of later draws.
func chance(p float64, r *rand.Rand) bool {
	switch {
	case p <= 0:
		return false
	case p >= 1:
		return true
	}
	return r.Float64() < p
}

// templateVars are the substitutions in a payload template.
type templateVars struct {
	deviceID string
	method   string
	status   int
	request  []byte
}

// expandTemplate replaces {{deviceId}}, {{method}}, {{status}} and
// {{requestPayload}} in tmpl. Unknown placeholders are left alone. An empty
// template gives null.
func expandTemplate(tmpl []byte, v templateVars) []byte {
	if len(tmpl) == 0 {
		return []byte("null")
	}
	out := make([]byte, 0, len(tmpl)+len(v.request))
	for len(tmpl) > 0 {
		i := bytes.Index(tmpl, []byte("{{"))
		if i < 0 {
			out = append(out, tmpl...)
			break
		}
		out = append(out, tmpl[:i]...)
		tmpl = tmpl[i:]
		j := bytes.Index(tmpl, []byte("}}"))
		if j < 0 {
			out = append(out, tmpl...)
			break
		}
		switch string(tmpl[2:j]) {
		case "deviceId":
			out = append(out, v.deviceID...)
		case "method":
			out = append(out, v.method...)
		case "status":
			out = fmt.Appendf(out, "%d", v.status)
		case "requestPayload":
			if len(v.request) == 0 {
				out = append(out, "null"...)
			} else {
				out = append(out, v.request...)
			}
		default:
			out = append(out, tmpl[:j+2]...)
		}
		tmpl = tmpl[j+2:]
	}
	return out
}
