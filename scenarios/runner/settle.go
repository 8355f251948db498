package runner

import (
	"fmt"
	"time"

	"github.com/fleetsim/fleetsim/devicesim"
)

// settleQuiet is how long the fleet must have no outstanding work and no
// new job-driven activity before the run counts as settled: a desired
// push or method call the hub sent just before its job ended may still be
// on its way to a device.
const settleQuiet = 500 * time.Millisecond

// settleState follows the end of a run: every job terminal, then every
// device-side piece of work finished.
type settleState struct {
	jobsDone  time.Time // every action played and every job terminal
	settled   time.Time // and the devices' work finished
	quietFrom time.Time
	activity  int64
	jobsAt    time.Duration
	settledAt time.Duration
}

// activityOf sums the fleet's counters that move when jobs reach devices
// or devices finish work for them.
func activityOf(fs devicesim.FleetStats) int64 {
	return fs.MethodCalls + fs.DesiredPatches + fs.TwinAcks + fs.TwinAckFailures +
		fs.FirmwareUpdates + fs.FirmwareFailures + fs.Reboots + fs.RebootsBack
}

// notDone forgets a jobs-done time when a job is running again (a job
// scheduled later in the timeline).
func (s *settleState) notDone() {
	s.jobsDone, s.quietFrom, s.jobsAt = time.Time{}, time.Time{}, 0
}

// devices is called while every job is terminal: it reports whether the
// fleet has settled, with a progress note when something changed.
func (s *settleState) devices(f *devicesim.Fleet, elapsed time.Duration) (string, bool) {
	now := time.Now()
	note := ""
	if s.jobsDone.IsZero() {
		s.jobsDone, s.jobsAt = now, elapsed
		note = fmt.Sprintf("T+%s: every job is terminal; waiting for the devices to finish (%d outstanding)", elapsed.Round(time.Millisecond), f.Outstanding())
	}
	act := activityOf(f.Stats())
	if f.Outstanding() > 0 || act != s.activity {
		s.activity, s.quietFrom = act, time.Time{}
		return note, false
	}
	if s.quietFrom.IsZero() {
		s.quietFrom = now
	}
	if now.Sub(s.quietFrom) < settleQuiet {
		return note, false
	}
	s.settled, s.settledAt = now, elapsed
	return fmt.Sprintf("T+%s: settled: the devices finished the work the jobs started", elapsed.Round(time.Millisecond)), true
}

// summary describes how the run ended.
func (s *settleState) summary(outstanding int64, duration time.Duration) Settle {
	out := Settle{Settled: !s.settled.IsZero(), JobsDoneMs: ms(s.jobsAt), SettledMs: ms(s.settledAt), Outstanding: outstanding}
	switch {
	case out.Settled:
		out.Note = fmt.Sprintf("settled: the devices finished the work the jobs started %s after the jobs ended",
			(s.settledAt - s.jobsAt).Round(time.Millisecond))
	case s.jobsDone.IsZero():
		out.Note = fmt.Sprintf("not settled: the scenario's duration (%s) ended before every job was terminal", duration)
	default:
		out.Note = fmt.Sprintf("not settled: the scenario's duration (%s) ended with %d device-side operations unfinished", duration, outstanding)
	}
	return out
}

// deviceSide fills in the run's and each job's device-side figures, and
// the warnings about jobs that selected no devices.
func (p *player) deviceSide(rep *Report, fs devicesim.FleetStats) {
	byDevice := map[string][]devicesim.Outcome{}
	var all []devicesim.Outcome
	for _, d := range p.fleet.Devices() {
		if o := d.Outcomes(); len(o) > 0 {
			byDevice[d.ID()] = o
			all = append(all, o...)
		}
	}
	rep.DeviceSide = runDeviceSide(fs, all)
	starts := make([]map[string]time.Time, len(rep.Jobs))
	kinds := make([][]devicesim.OutcomeKind, len(rep.Jobs))
	for i, j := range rep.Jobs {
		starts[i], kinds[i] = p.jobStarts[j.JobID], jobKinds(j.Type, j.Method)
	}
	for i, o := range attribute(byDevice, starts, kinds) {
		j := &rep.Jobs[i]
		if len(kinds[i]) > 0 {
			ds := deviceSideFigures(o)
			switch kinds[i][0] {
			case devicesim.OutcomeTwinAck:
				if ds.TwinAcks == nil {
					ds.TwinAcks = &AckFigures{}
				}
			case devicesim.OutcomeFirmware:
				if ds.Firmware == nil {
					ds.Firmware = &FirmwareFigures{Phases: phaseFigures(0, nil)}
				}
			case devicesim.OutcomeReboot:
				if ds.Reboots == nil {
					ds.Reboots = &RebootFigures{}
				}
			}
			ds.Succeeded = p.jobLocalOK[j.JobID]
			j.DeviceSide = &ds
		}
	}
}
