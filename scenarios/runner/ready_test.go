package runner_test

import (
	"strings"
	"testing"

	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// TestReadyScenariosShowDeviceSide runs the ready scenarios whose point is
// device-side work, at small scale, and checks that their reports show it:
// every acknowledgement, the firmware phases' failures and rollbacks, and a
// run that waited for the devices.
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
			total := 0
			for _, j := range rep.Jobs {
				ds := j.DeviceSide
				if ds == nil || ds.TwinAcks == nil || ds.TwinAcks.Acknowledged != j.Succeeded || j.Succeeded == 0 {
					t.Errorf("job %s: device side %+v, succeeded %d", j.JobID, ds, j.Succeeded)
					continue
				}
				total += ds.TwinAcks.Acknowledged
			}
			if acks := rep.DeviceSide.TwinAcks; acks == nil || acks.Acknowledged != total {
				t.Errorf("run acknowledgements %+v, jobs' %d", acks, total)
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
