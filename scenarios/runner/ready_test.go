package runner_test

import (
	"strings"
	"testing"

	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// TestReadyScenariosShowDeviceSide runs the ready scenarios at small scale
// and checks that their reports show the device-side work: every
// acknowledgement, the firmware phases' failures and rollbacks, every
// rebooted device back with its offline time, and a run that waited for
// the devices. (load-100k's jobs are quickstart's kinds at a scale, and its
// timeline takes minutes.)
func TestReadyScenariosShowDeviceSide(t *testing.T) {
	for _, tc := range []struct {
		name  string
		scale int
		check func(t *testing.T, rep *runner.Report)
	}{
		{"quickstart", 200, func(t *testing.T, rep *runner.Report) {
			acks := rep.DeviceSide.TwinAcks
			if acks == nil || acks.Acknowledged != int(rep.Fleet.DesiredPatches) || acks.Acknowledged != 100 || acks.Failed != 0 {
				t.Errorf("acknowledgements %+v, desired patches delivered %d, want 100 each", acks, rep.Fleet.DesiredPatches)
			}
			twin := rep.Jobs[1]
			if twin.DeviceSide == nil || twin.DeviceSide.TwinAcks == nil || twin.DeviceSide.TwinAcks.Acknowledged != twin.Succeeded {
				t.Errorf("twin job's device side %+v, succeeded %d", twin.DeviceSide, twin.Succeeded)
			}
			if l := acks.LatencyMs; l.P50 < 100 || l.P99 < l.P50 || l.Max < l.P99 {
				t.Errorf("acknowledgement latency %+v: the devices wait 100 to 500 ms before acknowledging", l)
			}
		}},
		{"twin-config-push", 100, func(t *testing.T, rep *runner.Report) {
			total, notApplied := 0, 0
			for _, j := range rep.Jobs {
				ds := j.DeviceSide
				if ds == nil || ds.TwinAcks == nil || ds.TwinAcks.Acknowledged != j.Succeeded || j.Succeeded == 0 {
					t.Errorf("job %s: device side %+v, succeeded %d", j.JobID, ds, j.Succeeded)
					continue
				}
				total += ds.TwinAcks.Acknowledged
				notApplied += ds.TwinAcks.NotApplied
			}
			if acks := rep.DeviceSide.TwinAcks; acks == nil || acks.Acknowledged != total || acks.NotApplied != notApplied {
				t.Errorf("run acknowledgements %+v, jobs' %d (%d not applied)", acks, total, notApplied)
			}
		}},
		{"firmware-rollout", 200, func(t *testing.T, rep *runner.Report) {
			fw := rep.DeviceSide.Firmware
			if fw == nil || fw.Updated == 0 || fw.Failed == 0 || fw.RolledBack == 0 {
				t.Fatalf("firmware %+v: want updates, failures and rollbacks", fw)
			}
			failed := 0
			for _, p := range fw.Phases {
				failed += p.Failed
			}
			if failed != fw.Failed || fw.Phases[len(fw.Phases)-1].Succeeded != fw.Updated {
				t.Errorf("phases %+v do not add up to %d failed, %d updated", fw.Phases, fw.Failed, fw.Updated)
			}
			jobs := 0
			for _, j := range rep.Jobs {
				if j.DeviceSide != nil && j.DeviceSide.Firmware != nil {
					jobs += j.DeviceSide.Firmware.Updated + j.DeviceSide.Firmware.Failed
				}
			}
			if jobs != fw.Updated+fw.Failed {
				t.Errorf("jobs account for %d updates, the fleet for %d", jobs, fw.Updated+fw.Failed)
			}
			budget := 0
			for _, e := range rep.Expectations {
				if strings.Contains(e.Description, "fails in ") {
					budget++
				}
			}
			if budget != 4 {
				t.Errorf("%d per-phase budget expectations judged, want 4: %+v", budget, rep.Expectations)
			}
		}},
		{"building43-reboot", 100, func(t *testing.T, rep *runner.Report) {
			reboot, ping := rep.Jobs[0], rep.Jobs[1]
			rb := rep.DeviceSide.Reboots
			if rb == nil || rb.Count == 0 || rb.Count != reboot.Succeeded {
				t.Fatalf("reboots %+v, reboot job succeeded on %d: every device that answered must be back", rb, reboot.Succeeded)
			}
			if jr := reboot.DeviceSide; jr == nil || jr.Reboots == nil || jr.Reboots.Count != rb.Count {
				t.Errorf("reboot job's device side %+v, run's reboots %d", jr, rb.Count)
			}
			// The devices stay offline 5 to 15 s, as the scenario says.
			if o := rb.OfflineMs; o.P50 < 5000 || o.P99 < o.P50 || o.Max < o.P99 {
				t.Errorf("offline time %+v", o)
			}
			if ping.DeviceSide != nil {
				t.Errorf("a ping job causes no device-side work: %+v", ping.DeviceSide)
			}
		}},
		{"x509-fleet", 40, func(t *testing.T, rep *runner.Report) {
			ping, twin := rep.Jobs[0], rep.Jobs[1]
			if ping.Succeeded != 40 || twin.Succeeded != 20 {
				t.Errorf("ping succeeded on %d of 40, twin on %d of 20: every certificate device must connect", ping.Succeeded, twin.Succeeded)
			}
			if acks := rep.DeviceSide.TwinAcks; acks == nil || acks.Acknowledged != 20 {
				t.Errorf("acknowledgements %+v, want 20", acks)
			}
		}},
		{"s1-throttled", 150, func(t *testing.T, rep *runner.Report) {
			ping, twin := rep.Jobs[0], rep.Jobs[1]
			acks := rep.DeviceSide.TwinAcks
			if acks == nil || twin.DeviceSide == nil || twin.DeviceSide.TwinAcks == nil ||
				acks.Acknowledged != twin.Succeeded || twin.DeviceSide.TwinAcks.Acknowledged != twin.Succeeded || int64(twin.Succeeded) != rep.Fleet.DesiredPatches {
				t.Errorf("acknowledgements %+v, twin job %+v succeeded on %d, desired patches delivered %d", acks, twin.DeviceSide, twin.Succeeded, rep.Fleet.DesiredPatches)
			}
			if ping.DeviceSide != nil {
				t.Errorf("a ping job causes no device-side work: %+v", ping.DeviceSide)
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			sc := load(t, tc.name).Scaled(tc.scale)
			rep, err := runner.Run(t.Context(), sc, runner.Options{})
			if err != nil {
				t.Fatal(err)
			}
			if !rep.Settle.Settled || rep.Settle.Outstanding != 0 {
				t.Errorf("settle %+v", rep.Settle)
			}
			for _, e := range rep.Expectations {
				if !e.Passed {
					t.Logf("expectation failed: %s: %s", e.Description, e.Detail)
				}
			}
			t.Logf("%s; device side %+v", rep.Settle.Note, rep.DeviceSide)
			tc.check(t, rep)
		})
	}
}
