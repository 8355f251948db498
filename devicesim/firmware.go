package devicesim

import (
	"encoding/json"
	"slices"
	"time"
)

// firmwareState is the firmware-update state machine of one device; it is
// allocated only for devices with a FirmwareBehavior.
type firmwareState struct {
	phase     FirmwarePhase
	current   string
	pending   string
	progress  int
	lastError string
	started   time.Time // when the running update was accepted
}

func (f *firmwareState) busy() bool {
	switch f.phase {
	case FirmwareDownloading, FirmwareVerifying, FirmwareApplying, FirmwareRebooting, FirmwareRollingBack:
		return true
	}
	return false
}

func (d *Device) firmware() *firmwareState {
	if d.fw == nil {
		v := d.cfg.Behavior.FirmwareUpdate.InitialVersion
		if v == "" {
			v = "1.0.0"
		}
		d.fw = &firmwareState{phase: FirmwareIdle, current: v}
	}
	return d.fw
}

// reportFirmware sends reported.firmware as a whole object, so every patch
// the hub sees is self-contained.
func (d *Device) reportFirmware(wait ...reportWaiter) {
	f := d.fw
	d.reportPatch(map[string]any{"firmware": map[string]any{
		"status":         string(f.phase),
		"currentVersion": f.current,
		"pendingVersion": f.pending,
		"progress":       f.progress,
		"lastError":      f.lastError,
	}}, wait...)
}

// firmwarePhase moves to phase and reports it.
func (d *Device) firmwarePhase(phase FirmwarePhase, wait ...reportWaiter) {
	d.fw.phase = phase
	d.reportFirmware(wait...)
	d.emit(EventFirmwarePhase, MethodFirmwareUpdate, d.fw.progress, string(phase))
}

// firmwareFinal moves to a final phase (current, failed, rolledBack) and
// reports it; the update is finished, and recorded, once the hub has
// answered that report, so the hub's twin shows the final state.
func (d *Device) firmwareFinal(phase FirmwarePhase, o Outcome) {
	o.Kind, o.Start = OutcomeFirmware, d.fw.started
	d.firmwarePhase(phase, func(bool) {
		o.End = time.Now()
		d.record(o)
		d.busy(-1)
	})
}

// onFirmwareUpdate handles the built-in firmwareUpdate method.
func (d *Device) onFirmwareUpdate(rid string, req []byte) {
	fb := d.cfg.Behavior.FirmwareUpdate
	fw := d.firmware()
	latency := sample(fb.Latency, d.rng)
	var p struct {
		Version string `json:"version"`
	}
	if err := json.Unmarshal(req, &p); err != nil || p.Version == "" {
		d.answerAfter(latency, MethodFirmwareUpdate, rid, 400,
			[]byte(`{"error":"the payload must be {\"version\":\"...\"}"}`), req, nil)
		return
	}
	if fw.busy() {
		body, _ := json.Marshal(map[string]string{"error": "an update is in progress", "status": string(fw.phase), "pendingVersion": fw.pending})
		d.answerAfter(latency, MethodFirmwareUpdate, rid, 409, body, req, nil)
		return
	}
	status := fb.Status
	if status == 0 {
		status = 200
	}
	body, _ := json.Marshal(map[string]string{"status": "accepted", "currentVersion": fw.current, "pendingVersion": p.Version})
	fw.phase = FirmwareDownloading // busy from now on
	fw.pending = p.Version
	fw.progress = 0
	fw.lastError = ""
	fw.started = time.Now()
	d.busy(1)
	d.answerAfter(latency, MethodFirmwareUpdate, rid, status, body, req, nil)
	// The update goes on even if the answer is lost: the device got the command.
	d.after(latency, d.firmwareDownload)
}

func (d *Device) firmwareDownload() {
	fb := d.cfg.Behavior.FirmwareUpdate
	d.firmwarePhase(FirmwareDownloading)
	steps := fb.ProgressSteps
	if steps <= 0 {
		steps = 4
	}
	step := sample(fb.Download, d.rng) / time.Duration(steps)
	var next func(i int)
	next = func(i int) {
		d.after(step, func() {
			d.fw.progress = 100 * i / steps
			if i < steps {
				d.reportFirmware()
				next(i + 1)
				return
			}
			if d.firmwareFails(FirmwareDownloading) {
				return
			}
			d.firmwareVerify()
		})
	}
	next(1)
}

func (d *Device) firmwareVerify() {
	fb := d.cfg.Behavior.FirmwareUpdate
	d.firmwarePhase(FirmwareVerifying)
	d.after(sample(fb.Verify, d.rng), func() {
		if d.firmwareFails(FirmwareVerifying) {
			return
		}
		d.firmwarePhase(FirmwareApplying)
		d.after(sample(fb.Apply, d.rng), func() {
			if d.firmwareFails(FirmwareApplying) {
				return
			}
			d.firmwareReboot()
		})
	})
}

// firmwareReboot reports "rebooting", makes sure the report is on the wire,
// then takes the device down; firmwareBooted continues after the reconnect.
func (d *Device) firmwareReboot() {
	fb := d.cfg.Behavior.FirmwareUpdate
	d.firmwarePhase(FirmwareRebooting)
	offline := max(sample(fb.Reboot, d.rng), time.Millisecond)
	if d.conn != nil {
		// The report above was published without waiting; a drop without
		// DISCONNECT right after could lose it, so wait until it is written.
		d.drainWrites()
		d.reboot("firmware", offline)
		return
	}
	// Offline already: the reboot happens where the device is.
	d.stats.reboots.Add(1)
	d.emit(EventReboot, "", 0, "firmware")
	d.rebootedAt = time.Now()
	if d.downAt.IsZero() {
		d.downAt = d.rebootedAt
		d.busy(1)
	}
	d.afterReboot()
}

// drainWrites waits until everything published on the current connection
// has been written: paho writes publishes in order, so the last token is
// enough.
func (d *Device) drainWrites() {
	if d.lastPub != nil {
		_ = d.waitToken(d.lastPub, d.cfg.Behavior.Connectivity.withDefaults().ConnectTimeout)
	}
}

// firmwareBooted runs after the reconnect that follows the update's reboot.
func (d *Device) firmwareBooted() {
	if d.firmwareFails(FirmwareRebooting) {
		return
	}
	f := d.fw
	f.current, f.pending, f.progress, f.lastError = f.pending, "", 100, ""
	d.stats.firmwareUpdates.Add(1)
	d.firmwareFinal(FirmwareIdle, Outcome{OK: true})
}

// firmwareFails draws whether phase fails and, if so, walks the failure or
// rollback path and returns true.
func (d *Device) firmwareFails(phase FirmwarePhase) bool {
	fb := d.cfg.Behavior.FirmwareUpdate
	if !chance(fb.Failure[phase], d.rng) {
		return false
	}
	f := d.fw
	f.lastError = string(phase) + " failed"
	d.stats.firmwareFailures.Add(1)
	if i := slices.Index(FirmwarePhases, phase); i >= 0 {
		d.stats.fwFailedIn[i].Add(1)
	}
	if fb.Rollback && (phase == FirmwareApplying || phase == FirmwareRebooting) {
		d.firmwarePhase(FirmwareRollingBack)
		d.after(sample(fb.RollbackTime, d.rng), func() {
			f.pending = ""
			d.stats.fwRollbacks.Add(1)
			d.firmwareFinal(FirmwareRolledBack, Outcome{FailedPhase: phase, RolledBack: true})
		})
		return true
	}
	d.firmwareFinal(FirmwareFailed, Outcome{FailedPhase: phase})
	return true
}
