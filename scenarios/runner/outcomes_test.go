package runner

import (
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/devicesim"
)

// TestDeviceSideFigures feeds known outcomes through attribution and the
// figures and checks every number.
func TestDeviceSideFigures(t *testing.T) {
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }
	ack := func(start, took float64, ok bool) devicesim.Outcome {
		return devicesim.Outcome{Kind: devicesim.OutcomeTwinAck, Start: at(start), End: at(start + took), OK: ok}
	}
	notApplied := func(o devicesim.Outcome) devicesim.Outcome { o.NotApplied = true; return o }
	fw := func(start, took float64, failed devicesim.FirmwarePhase, rolledBack bool) devicesim.Outcome {
		return devicesim.Outcome{Kind: devicesim.OutcomeFirmware, Start: at(start), End: at(start + took), OK: failed == "", FailedPhase: failed, RolledBack: rolledBack}
	}
	reboot := func(start, took float64) devicesim.Outcome {
		return devicesim.Outcome{Kind: devicesim.OutcomeReboot, Start: at(start), End: at(start + took), OK: true}
	}
	byDevice := map[string][]devicesim.Outcome{
		"a": {ack(1.1, 0.2, true), ack(5.1, 0.4, true), fw(10.2, 30, "", false), reboot(35, 4)},
		"b": {notApplied(ack(1.2, 0.3, true)), ack(5.2, 1, false), fw(10.1, 12, devicesim.FirmwareApplying, true)},
		"c": {ack(0.5, 1, true) /* before any job: nobody's */, fw(10.3, 5, devicesim.FirmwareDownloading, false)},
	}
	starts := []map[string]time.Time{
		{"a": at(1), "b": at(1)},                // twin job 1
		{"a": at(5), "b": at(5), "c": at(5)},    // twin job 2
		{"a": at(10), "b": at(10), "c": at(10)}, // firmware job
		{"a": time.Time{}, "zz": at(1)},         // a job whose devices never started here
	}
	kinds := [][]devicesim.OutcomeKind{jobKinds("scheduleUpdateTwin", ""), jobKinds("scheduleUpdateTwin", ""),
		jobKinds("scheduleDeviceMethod", "firmwareUpdate"), jobKinds("scheduleDeviceMethod", "reboot")}
	per := attribute(byDevice, starts, kinds)
	got := make([]DeviceSide, len(per))
	for i, o := range per {
		got[i] = deviceSideFigures(o)
	}
	want := []DeviceSide{
		{TwinAcks: &AckFigures{Acknowledged: 2, NotApplied: 1, LatencyMs: MsSummary{P50: 200, P95: 300, P99: 300, Max: 300}}},
		{TwinAcks: &AckFigures{Acknowledged: 1, Failed: 1, LatencyMs: MsSummary{P50: 400, P95: 400, P99: 400, Max: 400}}},
		{
			Firmware: &FirmwareFigures{Updated: 1, Failed: 2, RolledBack: 1, TimeToVersionMs: MsSummary{P50: 30000, P95: 30000, P99: 30000, Max: 30000},
				Phases: []PhaseFigures{{"downloading", 2, 1}, {"verifying", 2, 0}, {"applying", 1, 1}, {"rebooting", 1, 0}}},
			Reboots: &RebootFigures{Count: 1, OfflineMs: MsSummary{P50: 4000, P95: 4000, P99: 4000, Max: 4000}},
		},
		{},
	}
	for i := range want {
		if !reflect.DeepEqual(roundMs(got[i]), want[i]) {
			t.Errorf("job %d: got %s, want %s", i, show(got[i]), show(want[i]))
		}
	}

	fs := devicesim.FleetStats{Counters: devicesim.Counters{TwinAcks: 7, TwinAckFailures: 1, TwinAcksNotApplied: 2, FirmwareUpdates: 3, FirmwareFailures: 2,
		FirmwareRollbacks: 1, FirmwareFailedIn: map[devicesim.FirmwarePhase]int64{"verifying": 2}, RebootsBack: 4, TelemetrySent: 9}}
	run := runDeviceSide(fs, nil)
	if a := run.TwinAcks; a == nil || a.Acknowledged != 7 || a.Failed != 1 || a.NotApplied != 2 {
		t.Errorf("run acks %+v", a)
	}
	if f := run.Firmware; f == nil || f.Updated != 3 || f.Failed != 2 || f.RolledBack != 1 ||
		!reflect.DeepEqual(f.Phases, []PhaseFigures{{"downloading", 5, 0}, {"verifying", 3, 2}, {"applying", 3, 0}, {"rebooting", 3, 0}}) {
		t.Errorf("run firmware %+v", f)
	}
	if run.Reboots == nil || run.Reboots.Count != 4 || run.TelemetrySent != 9 {
		t.Errorf("run reboots %+v, telemetry %d", run.Reboots, run.TelemetrySent)
	}
}

// roundMs rounds the millisecond figures to whole milliseconds, as the
// inputs are, so float sums compare exactly.
func roundMs(ds DeviceSide) DeviceSide {
	r := func(m *MsSummary) {
		for _, f := range []*float64{&m.P50, &m.P95, &m.P99, &m.Max} {
			*f = float64(int64(*f + 0.5))
		}
	}
	if ds.TwinAcks != nil {
		r(&ds.TwinAcks.LatencyMs)
	}
	if ds.Firmware != nil {
		r(&ds.Firmware.TimeToVersionMs)
	}
	if ds.Reboots != nil {
		r(&ds.Reboots.OfflineMs)
	}
	return ds
}

func show(ds DeviceSide) string {
	s := ""
	if ds.TwinAcks != nil {
		s += " acks " + fmtAny(*ds.TwinAcks)
	}
	if ds.Firmware != nil {
		s += " firmware " + fmtAny(*ds.Firmware)
	}
	if ds.Reboots != nil {
		s += " reboots " + fmtAny(*ds.Reboots)
	}
	return s
}

func fmtAny(v any) string { return fmt.Sprintf("%+v", v) }
