package runner

import (
	"slices"
	"sort"
	"time"

	"github.com/fleetsim/fleetsim/devicesim"
)

// DeviceSide is what the devices did because of the jobs, measured at the
// devices. Durations are milliseconds.
type DeviceSide struct {
	// TwinAcks are the acknowledgements of desired changes in reported
	// properties.
	TwinAcks *AckFigures `json:"twinAcks,omitempty"`
	// Firmware are the firmwareUpdate state machines that reached a final state.
	Firmware *FirmwareFigures `json:"firmware,omitempty"`
	// Reboots are the devices that went down and came back.
	Reboots *RebootFigures `json:"reboots,omitempty"`
	// TelemetrySent counts device-to-cloud messages (run only).
	TelemetrySent int64 `json:"telemetrySent,omitempty"`
	// C2DReceived counts cloud-to-device messages the devices received,
	// redeliveries included (run only).
	C2DReceived int64 `json:"c2dReceived,omitempty"`
	// C2DAcked counts the cloud-to-device messages they acknowledged (run only).
	C2DAcked int64 `json:"c2dAcked,omitempty"`
	// Succeeded counts the job's succeeded devices that this process
	// simulates (job only): with shards, each shard sees its own devices.
	Succeeded int `json:"succeededHere,omitempty"`
}

// AckFigures count acknowledgements and their latency, from the device
// receiving a desired change to the hub answering the reported patch that
// acknowledged it.
type AckFigures struct {
	Acknowledged int `json:"acknowledged"` // the hub accepted the acknowledgement
	Failed       int `json:"failed"`       // the hub refused it or never answered
	// NotApplied counts the acknowledgements the hub accepted that report
	// the device failed to apply the change.
	NotApplied int       `json:"notApplied"`
	LatencyMs  MsSummary `json:"latencyMs"`
}

// FirmwareFigures count firmware updates by outcome and phase.
type FirmwareFigures struct {
	Updated    int `json:"updated"` // reached the new version
	Failed     int `json:"failed"`  // failed in some phase (rolled back or not)
	RolledBack int `json:"rolledBack"`
	// Phases say, for each phase in order, how many updates passed it and
	// how many failed in it.
	Phases []PhaseFigures `json:"phases"`
	// TimeToVersionMs is from accepting the update to reporting the new
	// version, over the updates that reached it.
	TimeToVersionMs MsSummary `json:"timeToVersionMs"`
}

// PhaseFigures is one firmware phase's successes and failures.
type PhaseFigures struct {
	Phase     string `json:"phase"`
	Succeeded int    `json:"succeeded"`
	Failed    int    `json:"failed"`
}

// RebootFigures count reboots and the time devices were offline.
type RebootFigures struct {
	Count     int       `json:"count"`
	OfflineMs MsSummary `json:"offlineMs"`
}

// MsSummary is a distribution of durations in milliseconds.
type MsSummary struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Settle says how the run ended.
type Settle struct {
	// Settled is true when the device-side work the jobs started finished
	// before the scenario's duration ended.
	Settled bool `json:"settled"`
	// JobsDoneMs is when every timeline action had played and every job
	// was terminal, from the start of the run; 0 when that never happened.
	JobsDoneMs float64 `json:"jobsDoneMs"`
	// SettledMs is when the device-side work had finished, from the start
	// of the run; 0 when it never did.
	SettledMs float64 `json:"settledMs"`
	// Outstanding is the device-side work not finished at the end.
	Outstanding int64 `json:"outstanding"`
	// Note says the same in a sentence.
	Note string `json:"note"`
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func msSummary(ds []time.Duration) MsSummary {
	if len(ds) == 0 {
		return MsSummary{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return MsSummary{P50: ms(percentile(s, 50)), P95: ms(percentile(s, 95)), P99: ms(percentile(s, 99)), Max: ms(s[len(s)-1])}
}

// deviceSideFigures sums outcomes into figures; kinds without an outcome
// stay nil.
func deviceSideFigures(outcomes []devicesim.Outcome) DeviceSide {
	var ds DeviceSide
	var ackLat, fwLat, offline []time.Duration
	failedIn := map[devicesim.FirmwarePhase]int{}
	for _, o := range outcomes {
		switch o.Kind {
		case devicesim.OutcomeTwinAck:
			if ds.TwinAcks == nil {
				ds.TwinAcks = &AckFigures{}
			}
			if !o.OK {
				ds.TwinAcks.Failed++
				continue
			}
			ds.TwinAcks.Acknowledged++
			if o.NotApplied {
				ds.TwinAcks.NotApplied++
			}
			ackLat = append(ackLat, o.End.Sub(o.Start))
		case devicesim.OutcomeFirmware:
			if ds.Firmware == nil {
				ds.Firmware = &FirmwareFigures{}
			}
			if o.OK {
				ds.Firmware.Updated++
				fwLat = append(fwLat, o.End.Sub(o.Start))
				continue
			}
			ds.Firmware.Failed++
			failedIn[o.FailedPhase]++
			if o.RolledBack {
				ds.Firmware.RolledBack++
			}
		case devicesim.OutcomeReboot:
			if ds.Reboots == nil {
				ds.Reboots = &RebootFigures{}
			}
			ds.Reboots.Count++
			offline = append(offline, o.End.Sub(o.Start))
		}
	}
	if ds.TwinAcks != nil {
		ds.TwinAcks.LatencyMs = msSummary(ackLat)
	}
	if ds.Firmware != nil {
		ds.Firmware.Phases = phaseFigures(ds.Firmware.Updated, failedIn)
		ds.Firmware.TimeToVersionMs = msSummary(fwLat)
	}
	if ds.Reboots != nil {
		ds.Reboots.OfflineMs = msSummary(offline)
	}
	return ds
}

// phaseFigures derives each phase's successes: an update passed a phase
// when it reached the new version or failed in a later phase.
func phaseFigures(updated int, failedIn map[devicesim.FirmwarePhase]int) []PhaseFigures {
	out := make([]PhaseFigures, len(devicesim.FirmwarePhases))
	passed := updated
	for i := len(devicesim.FirmwarePhases) - 1; i >= 0; i-- {
		ph := devicesim.FirmwarePhases[i]
		out[i] = PhaseFigures{Phase: string(ph), Succeeded: passed, Failed: failedIn[ph]}
		passed += failedIn[ph]
	}
	return out
}

// runDeviceSide is the run's device-side figures: counts from the fleet's
// counters, which see every outcome, and distributions from the outcomes
// the devices kept.
func runDeviceSide(fs devicesim.FleetStats, outcomes []devicesim.Outcome) DeviceSide {
	ds := deviceSideFigures(outcomes)
	if fs.TwinAcks+fs.TwinAckFailures > 0 {
		if ds.TwinAcks == nil {
			ds.TwinAcks = &AckFigures{}
		}
		ds.TwinAcks.Acknowledged, ds.TwinAcks.Failed = int(fs.TwinAcks), int(fs.TwinAckFailures)
		ds.TwinAcks.NotApplied = int(fs.TwinAcksNotApplied)
	}
	if fs.FirmwareUpdates+fs.FirmwareFailures > 0 {
		if ds.Firmware == nil {
			ds.Firmware = &FirmwareFigures{}
		}
		f := ds.Firmware
		f.Updated, f.Failed, f.RolledBack = int(fs.FirmwareUpdates), int(fs.FirmwareFailures), int(fs.FirmwareRollbacks)
		failedIn := map[devicesim.FirmwarePhase]int{}
		for ph, n := range fs.FirmwareFailedIn {
			failedIn[ph] = int(n)
		}
		f.Phases = phaseFigures(f.Updated, failedIn)
	}
	if fs.RebootsBack > 0 {
		if ds.Reboots == nil {
			ds.Reboots = &RebootFigures{}
		}
		ds.Reboots.Count = int(fs.RebootsBack)
	}
	ds.TelemetrySent = fs.TelemetrySent
	ds.C2DReceived, ds.C2DAcked = fs.C2DReceived, fs.C2DAcked
	return ds
}

// jobKinds returns the outcome kinds a job causes on its devices.
func jobKinds(jobType, method string) []devicesim.OutcomeKind {
	switch {
	case jobType == "scheduleUpdateTwin":
		return []devicesim.OutcomeKind{devicesim.OutcomeTwinAck}
	case method == devicesim.MethodFirmwareUpdate:
		return []devicesim.OutcomeKind{devicesim.OutcomeFirmware, devicesim.OutcomeReboot}
	case method == devicesim.MethodReboot:
		return []devicesim.OutcomeKind{devicesim.OutcomeReboot}
	}
	return nil
}

// jobStart is when a job began work on one device.
type jobStart struct {
	job int // index into the jobs
	at  time.Time
}

// attribute gives each device outcome to the job that caused it: the job
// of a kind that causes it whose work on that device began last at or
// before the outcome began. byDevice maps a device id to its outcomes;
// starts[i] are job i's device records (device id → start); kinds[i] are
// the outcome kinds job i causes. It returns each job's outcomes.
func attribute(byDevice map[string][]devicesim.Outcome, starts []map[string]time.Time, kinds [][]devicesim.OutcomeKind) [][]devicesim.Outcome {
	out := make([][]devicesim.Outcome, len(starts))
	perDevice := map[string]map[devicesim.OutcomeKind][]jobStart{}
	for i, rows := range starts {
		for id, at := range rows {
			if at.IsZero() {
				continue
			}
			m := perDevice[id]
			if m == nil {
				m = map[devicesim.OutcomeKind][]jobStart{}
				perDevice[id] = m
			}
			for _, k := range kinds[i] {
				m[k] = append(m[k], jobStart{i, at})
			}
		}
	}
	for id, m := range perDevice {
		for _, js := range m {
			sort.Slice(js, func(a, b int) bool { return js[a].at.Before(js[b].at) })
		}
		for _, o := range byDevice[id] {
			js := m[o.Kind]
			n := sort.Search(len(js), func(i int) bool { return js[i].at.After(o.Start) })
			if n == 0 {
				continue
			}
			j := js[n-1].job
			out[j] = append(out[j], o)
		}
	}
	return out
}
