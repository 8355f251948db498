package devicesim

import (
	"context"
	"testing"
	"testing/synctest"
	"time"
)

// TestOutcomesAndOutstanding checks the device-side outcomes a device
// records, their measured times, and that its outstanding work returns to
// zero once each piece of work is finished.
func TestOutcomesAndOutstanding(t *testing.T) {
	fw := FirmwareBehavior{
		Download:     Constant(40 * time.Second),
		Verify:       Constant(5 * time.Second),
		Apply:        Constant(10 * time.Second),
		Reboot:       Constant(20 * time.Second),
		RollbackTime: Constant(15 * time.Second),
		Rollback:     true,
	}
	failIn := func(ph FirmwarePhase) *FirmwareBehavior {
		f := fw
		f.Failure = map[FirmwarePhase]float64{ph: 1}
		return &f
	}
	for _, tc := range []struct {
		name   string
		b      Behavior
		method string
		patch  map[string]any
		want   Outcome // Start and End as offsets from the call in End
		took   time.Duration
	}{
		{"firmware ok", Behavior{FirmwareUpdate: &fw}, "firmwareUpdate", nil, Outcome{Kind: OutcomeFirmware, OK: true}, 75 * time.Second},
		{"firmware download fails", Behavior{FirmwareUpdate: failIn(FirmwareDownloading)}, "firmwareUpdate", nil,
			Outcome{Kind: OutcomeFirmware, FailedPhase: FirmwareDownloading}, 40 * time.Second},
		{"firmware apply rolls back", Behavior{FirmwareUpdate: failIn(FirmwareApplying)}, "firmwareUpdate", nil,
			Outcome{Kind: OutcomeFirmware, FailedPhase: FirmwareApplying, RolledBack: true}, 70 * time.Second},
		{"reboot", Behavior{Reboot: &RebootBehavior{Delay: Constant(time.Second), Offline: Constant(30 * time.Second)}}, "reboot", nil,
			Outcome{Kind: OutcomeReboot, OK: true}, 30 * time.Second},
		{"twin ack", Behavior{Desired: DesiredBehavior{Delay: Constant(2 * time.Second)}}, "", map[string]any{"interval": 10},
			Outcome{Kind: OutcomeTwinAck, OK: true, Version: 2}, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				hub, _ := newTestHub(t, false)
				f := NewFleet(FleetConfig{Devices: []DeviceConfig{hub.config("dev-1", tc.b)}})
				d := f.Devices()[0]
				runFleet(t, f)
				waitUntil(t, "twin", func() bool { return d.Stats().TwinGets == 1 })
				waitUntil(t, "initial reports answered", func() bool { return f.Outstanding() == 0 })
				if tc.method != "" {
					if _, ok, err := hub.call("dev-1", tc.method, []byte(`{"version":"2.0.0"}`), time.Minute); !ok || err != nil {
						t.Fatalf("call: ok=%v err=%v", ok, err)
					}
				} else if _, err := hub.patchDesired("dev-1", tc.patch); err != nil {
					t.Fatal(err)
				}
				synctest.Wait()
				if n := f.Outstanding(); n != 1 {
					t.Errorf("outstanding after the call = %d, want 1", n)
				}
				for deadline := time.Now().Add(10 * time.Minute); f.Outstanding() != 0; time.Sleep(time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("still %d outstanding", f.Outstanding())
					}
				}
				var got []Outcome
				for _, o := range d.Outcomes() {
					if o.Kind == tc.want.Kind {
						got = append(got, o)
					}
				}
				if len(got) != 1 {
					t.Fatalf("outcomes %+v, want one %s", d.Outcomes(), tc.want.Kind)
				}
				o := got[0]
				if took := o.End.Sub(o.Start); took != tc.took {
					t.Errorf("took %s, want %s", took, tc.took)
				}
				o.Start, o.End = time.Time{}, time.Time{}
				if o != tc.want {
					t.Errorf("outcome %+v, want %+v", o, tc.want)
				}
				s := f.Stats()
				switch tc.want.Kind {
				case OutcomeTwinAck:
					if s.TwinAcks != 1 || s.TwinAckFailures != 0 {
						t.Errorf("acks %d, failures %d", s.TwinAcks, s.TwinAckFailures)
					}
				case OutcomeReboot:
					if s.RebootsBack != 1 {
						t.Errorf("reboots back %d", s.RebootsBack)
					}
				case OutcomeFirmware:
					if ph := tc.want.FailedPhase; ph != "" && s.FirmwareFailedIn[ph] != 1 {
						t.Errorf("failed in %v, want 1 in %s", s.FirmwareFailedIn, ph)
					}
					if tc.want.RolledBack != (s.FirmwareRollbacks == 1) {
						t.Errorf("rollbacks %d", s.FirmwareRollbacks)
					}
				}
			})
		})
	}
}

// runFleet runs f until the test ends.
func runFleet(t *testing.T, f *Fleet) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}
