package devicesim

import "time"

// OutcomeKind says what device-side work an Outcome records.
type OutcomeKind uint8

// Outcome kinds.
const (
	// OutcomeTwinAck is a desired-property change acknowledged in reported
	// properties: Start is when the device received the change, End when
	// the hub answered the reported patch that carried the acknowledgement.
	OutcomeTwinAck OutcomeKind = iota + 1
	// OutcomeFirmware is one firmware update: Start is when the device
	// accepted it, End when the state machine reached its final state and
	// the hub answered the report of that state.
	OutcomeFirmware
	// OutcomeReboot is one reboot: Start is when the device went down, End
	// when it was connected again.
	OutcomeReboot
)

var outcomeNames = [...]string{OutcomeTwinAck: "twin-ack", OutcomeFirmware: "firmware", OutcomeReboot: "reboot"}

// String names the kind.
func (k OutcomeKind) String() string {
	if int(k) < len(outcomeNames) && outcomeNames[k] != "" {
		return outcomeNames[k]
	}
	return "unknown"
}

// Outcome is one finished piece of device-side work, measured at the device.
type Outcome struct {
	Kind       OutcomeKind
	Start, End time.Time
	// OK is true for an acknowledgement the hub accepted, an update that
	// reached its new version, and every reboot.
	OK bool
	// FailedPhase is the firmware phase that failed (downloading,
	// verifying, applying or rebooting); empty when the update succeeded.
	FailedPhase FirmwarePhase
	// RolledBack is true when a failed update rolled back to the old version.
	RolledBack bool
	// NotApplied is true for an acknowledgement that reports the device
	// failed to apply the change (OutcomeTwinAck).
	NotApplied bool
	// Version is the desired $version acknowledged (OutcomeTwinAck).
	Version int64
}

// maxOutcomes bounds the outcomes a device keeps; older ones are dropped
// first. A scenario's report needs only the few its jobs caused.
const maxOutcomes = 32

// FirmwarePhases are the phases of an update that may fail, in order.
var FirmwarePhases = []FirmwarePhase{FirmwareDownloading, FirmwareVerifying, FirmwareApplying, FirmwareRebooting}

// record keeps an outcome for Outcomes. Executor only.
func (d *Device) record(o Outcome) {
	d.mu.Lock()
	if len(d.outcomes) == maxOutcomes {
		copy(d.outcomes, d.outcomes[1:])
		d.outcomes = d.outcomes[:maxOutcomes-1]
	}
	d.outcomes = append(d.outcomes, o)
	d.mu.Unlock()
}

// Outcomes returns the device's recent finished device-side work, oldest
// first.
func (d *Device) Outcomes() []Outcome {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Outcome(nil), d.outcomes...)
}

// busy counts device-side work started (+1) or finished (-1): an
// acknowledgement not yet answered by the hub, a firmware update not at its
// final state, a device down for a reboot. The fleet sums it for
// Fleet.Outstanding.
func (d *Device) busy(delta int64) {
	d.work.Add(delta)
	if d.fleet != nil {
		d.fleet.outstanding.Add(delta)
	}
}

// Outstanding returns the device-side work the device has started and not
// finished.
func (d *Device) Outstanding() int64 { return d.work.Load() }

// Outstanding returns the device-side work the fleet's devices have started
// and not finished: acknowledgements of desired changes not yet answered by
// the hub, firmware updates not at a final state (or whose final report the
// hub has not answered), devices down for a reboot. Zero means the fleet has
// settled.
func (f *Fleet) Outstanding() int64 { return f.outstanding.Load() }

// reportWaiter runs when the reported patch it rides on is answered by the
// hub (ok) or refused or timed out (!ok). Executor only.
type reportWaiter func(ok bool)
