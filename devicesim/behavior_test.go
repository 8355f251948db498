package devicesim

import (
	"context"
	"encoding/json"
	"math"
	"net"
	"net/url"
	"slices"
	"sort"
	"testing"
	"testing/synctest"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// TestMethodLatencyAndStatusMix checks over a seeded run that the answered
// status mix and the latency quantiles follow the behaviour model.
func TestMethodLatencyAndStatusMix(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, _ := newTestHub(t, false)
		lat := Percentiles{Points: []Percentile{{0.5, 100 * time.Millisecond}, {0.9, 300 * time.Millisecond}, {0.99, time.Second}}}
		b := Behavior{Methods: map[string]MethodBehavior{"op": {
			Latency:  lat,
			Statuses: []WeightedStatus{{200, 7}, {500, 2}, {429, 1}},
		}}}
		d := NewDevice(hub.config("dev-1", b))
		runDevice(t, d)
		waitUntil(t, "connect", d.Connected)

		const n = 2000
		counts := map[int]int{}
		var lats []time.Duration
		for range n {
			start := time.Now()
			a, ok, err := hub.call("dev-1", "op", nil, time.Minute)
			if err != nil || !ok {
				t.Fatalf("call: ok=%v err=%v", ok, err)
			}
			counts[a.status]++
			lats = append(lats, time.Since(start))
		}
		for status, want := range map[int]float64{200: 0.7, 500: 0.2, 429: 0.1} {
			if got := float64(counts[status]) / n; math.Abs(got-want) > 0.03 {
				t.Errorf("status %d: fraction %.3f, want %.2f±0.03", status, got, want)
			}
		}
		sort.Slice(lats, func(i, j int) bool { return lats[i] < lats[j] })
		for _, p := range lat.Points {
			got := lats[int(p.P*n)]
			if ratio := float64(got) / float64(p.D); ratio < 0.85 || ratio > 1.15 {
				t.Errorf("p%v latency = %s, want about %s", p.P*100, got, p.D)
			}
		}
	})
}

func TestMethodNoAnswerAndDisconnect(t *testing.T) {
	for _, tc := range []struct {
		name       string
		mb         MethodBehavior
		reconnects bool
	}{
		{"no answer", MethodBehavior{NoAnswerProbability: 1}, false},
		{"disconnect mid-call", MethodBehavior{DisconnectProbability: 1, Latency: Constant(time.Second)}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				hub, _ := newTestHub(t, false)
				d := NewDevice(hub.config("dev-1", Behavior{Methods: map[string]MethodBehavior{"op": tc.mb}}))
				runDevice(t, d)
				waitUntil(t, "connect", d.Connected)
				_, ok, err := hub.call("dev-1", "op", nil, 30*time.Second)
				if err != nil || ok {
					t.Fatalf("call answered (ok=%v err=%v), want a timeout", ok, err)
				}
				if s := d.Stats(); s.MethodsUnanswered != 1 || s.MethodAnswers != 0 {
					t.Errorf("stats = %+v", s.Counters)
				}
				if tc.reconnects {
					waitUntil(t, "reconnect", func() bool { return d.Stats().Connects == 2 && d.Connected() })
					if s := d.Stats(); s.Disconnects != 1 {
						t.Errorf("disconnects = %d, want 1", s.Disconnects)
					}
				} else if s := d.Stats(); s.Connects != 1 || s.Disconnects != 0 {
					t.Errorf("the device reconnected: %+v", s.Counters)
				}
			})
		})
	}
}

// TestAnswerAbandonedByDisconnect: an answer due after the connection ended
// is never sent on the next connection.
func TestAnswerAbandonedByDisconnect(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, _ := newTestHub(t, false)
		b := Behavior{
			Methods: map[string]MethodBehavior{
				"slow":  {Latency: Constant(10 * time.Second)},
				"crash": {DisconnectProbability: 1, Latency: Constant(time.Second)},
			},
			Connectivity: Connectivity{Backoff: Backoff{Initial: time.Second, Max: time.Second}},
		}
		d := NewDevice(hub.config("dev-1", b))
		runDevice(t, d)
		waitUntil(t, "connect", d.Connected)
		slow, err := hub.startCall("dev-1", "slow", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := hub.startCall("dev-1", "crash", nil); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "reconnect", func() bool { return d.Stats().Connects == 2 && d.Connected() })
		time.Sleep(20 * time.Second)
		select {
		case a := <-slow:
			t.Fatalf("abandoned call answered after reconnect: %+v", a)
		default:
		}
		if s := d.Stats(); s.MethodsUnanswered != 2 || s.MethodAnswers != 0 {
			t.Errorf("stats = %+v", s.Counters)
		}
	})
}

func TestRebootGoesOfflineAndComesBack(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, _ := newTestHub(t, false)
		b := Behavior{Reboot: &RebootBehavior{
			Latency:          Constant(100 * time.Millisecond),
			Delay:            Constant(time.Second),
			Offline:          Constant(30 * time.Second),
			Payload:          json.RawMessage(`{"rebooting":true}`),
			ReportLastReboot: true,
		}}
		d := NewDevice(hub.config("dev-1", b))
		runDevice(t, d)
		waitUntil(t, "connect", d.Connected)
		t0 := time.Now()
		a, ok, err := hub.call("dev-1", "reboot", nil, time.Minute)
		if err != nil || !ok || a.status != 200 || string(a.body) != `{"rebooting":true}` {
			t.Fatalf("reboot answer %d %s ok=%v err=%v", a.status, a.body, ok, err)
		}
		waitUntil(t, "offline", func() bool { return !d.Connected() })
		if took := time.Since(t0).Truncate(10 * time.Millisecond); took != 1100*time.Millisecond {
			t.Errorf("went down after %s, want 1.1s", took)
		}
		waitUntil(t, "back online", d.Connected)
		cr := hub.connectsOf("dev-1")
		if len(cr) != 2 {
			t.Fatalf("connects = %d, want 2", len(cr))
		}
		if off := cr[1].at.Sub(t0); off != 31100*time.Millisecond {
			t.Errorf("reconnected %s after the call, want 31.1s", off)
		}
		waitUntil(t, "lastReboot reported", func() bool { return hub.twinReported("dev-1")["lastReboot"] != nil })
		if s := d.Stats(); s.Reboots != 1 || s.Connects != 2 {
			t.Errorf("stats = %+v", s.Counters)
		}
	})
}

// firmwareStatuses returns the sequence of reported.firmware.status values
// the hub received, without repeats.
func firmwareStatuses(patches []map[string]any) (statuses []string, last map[string]any) {
	for _, p := range patches {
		fw, ok := p["firmware"].(map[string]any)
		if !ok {
			continue
		}
		last = fw
		s := fw["status"].(string)
		if len(statuses) == 0 || statuses[len(statuses)-1] != s {
			statuses = append(statuses, s)
		}
	}
	return statuses, last
}

func TestFirmwareUpdate(t *testing.T) {
	base := FirmwareBehavior{
		InitialVersion: "1.0.0",
		Download:       Constant(40 * time.Second),
		Verify:         Constant(5 * time.Second),
		Apply:          Constant(10 * time.Second),
		Reboot:         Constant(20 * time.Second),
		RollbackTime:   Constant(15 * time.Second),
	}
	withFailure := func(phase FirmwarePhase, rollback bool) *FirmwareBehavior {
		fb := base
		fb.Failure = map[FirmwarePhase]float64{phase: 1}
		fb.Rollback = rollback
		return &fb
	}
	for _, tc := range []struct {
		name      string
		fb        *FirmwareBehavior
		want      []string
		version   string
		lastError string
		progress  []float64
	}{
		{"success", &base, []string{"current", "downloading", "verifying", "applying", "rebooting", "current"}, "2.0.0", "", []float64{0, 25, 50, 75}},
		{"download fails", withFailure(FirmwareDownloading, true), []string{"current", "downloading", "failed"}, "1.0.0", "downloading failed", nil},
		{"apply fails, rollback", withFailure(FirmwareApplying, true), []string{"current", "downloading", "verifying", "applying", "rollingBack", "rolledBack"}, "1.0.0", "applying failed", nil},
		{"apply fails, no rollback", withFailure(FirmwareApplying, false), []string{"current", "downloading", "verifying", "applying", "failed"}, "1.0.0", "applying failed", nil},
		{"boot fails, rollback", withFailure(FirmwareRebooting, true), []string{"current", "downloading", "verifying", "applying", "rebooting", "rollingBack", "rolledBack"}, "1.0.0", "rebooting failed", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				hub, _ := newTestHub(t, false)
				d := NewDevice(hub.config("dev-1", Behavior{FirmwareUpdate: tc.fb}))
				runDevice(t, d)
				waitUntil(t, "connect", d.Connected)
				a, ok, err := hub.call("dev-1", "firmwareUpdate", []byte(`{"version":"2.0.0"}`), time.Minute)
				if err != nil || !ok || a.status != 200 {
					t.Fatalf("answer %d %s ok=%v err=%v", a.status, a.body, ok, err)
				}
				busy, ok, _ := hub.call("dev-1", "firmwareUpdate", []byte(`{"version":"3.0.0"}`), time.Minute)
				if !ok || busy.status != 409 {
					t.Errorf("second update while busy: %d %s, want 409", busy.status, busy.body)
				}
				final := tc.want[len(tc.want)-1]
				time.Sleep(5 * time.Minute)
				got, last := firmwareStatuses(hub.reportedOf("dev-1"))
				if !slices.Equal(got, tc.want) {
					t.Errorf("phases = %v, want %v", got, tc.want)
				}
				if last["currentVersion"] != tc.version || last["lastError"] != tc.lastError {
					t.Errorf("final firmware = %v, want version %s lastError %q", last, tc.version, tc.lastError)
				}
				if tc.progress != nil {
					var prog []float64
					for _, p := range hub.reportedOf("dev-1") {
						if fw, ok := p["firmware"].(map[string]any); ok && fw["status"] == "downloading" {
							prog = append(prog, fw["progress"].(float64))
						}
					}
					if !slices.Equal(prog, tc.progress) {
						t.Errorf("download progress = %v, want %v", prog, tc.progress)
					}
				}
				if fw := d.Reported()["firmware"].(map[string]any); fw["status"] != final {
					t.Errorf("device's own view = %v", fw)
				}
			})
		})
	}
}

func TestFirmwareUpdateBadPayload(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, _ := newTestHub(t, false)
		d := NewDevice(hub.config("dev-1", Behavior{FirmwareUpdate: &FirmwareBehavior{}}))
		runDevice(t, d)
		waitUntil(t, "connect", d.Connected)
		a, ok, _ := hub.call("dev-1", "firmwareUpdate", []byte(`{}`), time.Minute)
		if !ok || a.status != 400 {
			t.Errorf("answer %d %s, want 400", a.status, a.body)
		}
	})
}

func TestDesiredAcknowledgement(t *testing.T) {
	for _, tc := range []struct {
		name string
		db   DesiredBehavior
		want map[string]any // the reported patch; nil: none
	}{
		{"ack", DesiredBehavior{Delay: Constant(2 * time.Second)},
			map[string]any{"interval": map[string]any{"value": 10.0, "ackVersion": 2.0, "status": "applied"}}},
		{"fail", DesiredBehavior{Delay: Constant(2 * time.Second), FailProbability: 1},
			map[string]any{"interval": map[string]any{"value": 10.0, "ackVersion": 2.0, "status": "failed"}}},
		{"pnp", DesiredBehavior{Delay: Constant(2 * time.Second), Format: AckPnP},
			map[string]any{"interval": map[string]any{"value": 10.0, "av": 2.0, "ac": 200.0, "ad": "applied"}}},
		{"no ack", DesiredBehavior{Delay: Constant(2 * time.Second), NoAckProbability: 1}, nil},
		{"none", DesiredBehavior{Format: AckNone}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				hub, _ := newTestHub(t, false)
				d := NewDevice(hub.config("dev-1", Behavior{Desired: tc.db}))
				runDevice(t, d)
				waitUntil(t, "twin", func() bool { return d.Stats().TwinGets == 1 })
				t0 := time.Now()
				if _, err := hub.patchDesired("dev-1", map[string]any{"interval": 10}); err != nil {
					t.Fatal(err)
				}
				waitUntil(t, "desired applied", func() bool { return d.Desired()["interval"] == 10.0 })
				if tc.want == nil {
					time.Sleep(time.Minute)
					if got := hub.reportedOf("dev-1"); len(got) != 0 {
						t.Errorf("reported %v, want nothing", got)
					}
					return
				}
				waitUntil(t, "ack", func() bool { return len(hub.reportedOf("dev-1")) == 1 })
				if took := time.Since(t0).Truncate(10 * time.Millisecond); took != 2*time.Second {
					t.Errorf("acknowledged after %s, want 2s", took)
				}
				got, _ := json.Marshal(hub.reportedOf("dev-1")[0])
				want, _ := json.Marshal(tc.want)
				if string(got) != string(want) {
					t.Errorf("reported %s, want %s", got, want)
				}
				waitUntil(t, "204", func() bool { return d.Stats().ReportedAcked == 1 })
				notApplied := int64(0)
				if tc.db.FailProbability == 1 {
					notApplied = 1
				}
				if s := d.Stats(); s.TwinAcks != 1 || s.TwinAcksNotApplied != notApplied {
					t.Errorf("acknowledgements %d, not applied %d; want 1, %d", s.TwinAcks, s.TwinAcksNotApplied, notApplied)
				}
				if o := d.Outcomes(); len(o) != 1 || o[0].NotApplied != (notApplied == 1) || !o[0].OK {
					t.Errorf("outcomes %+v", o)
				}
				if _, rv := d.TwinVersions(); rv != 2 {
					t.Errorf("reported version = %d, want 2", rv)
				}
			})
		})
	}
}

// TestStaleDesiredIgnored: a patch not newer than the twin GET is dropped.
func TestStaleDesiredIgnored(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, _ := newTestHub(t, false)
		hub.key("dev-1")
		hub.twins["dev-1"].dv = 5
		d := NewDevice(hub.config("dev-1", Behavior{}))
		runDevice(t, d)
		waitUntil(t, "twin", func() bool { return d.Stats().TwinGets == 1 })
		if err := hub.send("dev-1", "$iothub/twin/PATCH/properties/desired/#", "$iothub/twin/PATCH/properties/desired/?$version=4", []byte(`{"x":1,"$version":4}`)); err != nil {
			t.Fatal(err)
		}
		if _, err := hub.patchDesired("dev-1", map[string]any{"y": 2}); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "patch 6", func() bool { dv, _ := d.TwinVersions(); return dv == 6 })
		if got := d.Desired(); got["x"] != nil || got["y"] != 2.0 {
			t.Errorf("desired = %v", got)
		}
	})
}

func TestFlappingFollowsModel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, _ := newTestHub(t, false)
		b := Behavior{Connectivity: Connectivity{
			Flapping:      &Flapping{MTBF: Constant(10 * time.Minute), MTTR: Constant(time.Minute)},
			TokenLifetime: 24 * time.Hour,
		}}
		d := NewDevice(hub.config("dev-1", b))
		t0 := time.Now()
		stop := runDevice(t, d)
		time.Sleep(time.Hour)
		stop()
		cr := hub.connectsOf("dev-1")
		var got []time.Duration
		for _, c := range cr {
			got = append(got, c.at.Sub(t0))
		}
		want := []time.Duration{0, 11 * time.Minute, 22 * time.Minute, 33 * time.Minute, 44 * time.Minute, 55 * time.Minute}
		if !slices.Equal(got, want) {
			t.Errorf("connect times %v, want %v", got, want)
		}
		if s := d.Stats(); s.Disconnects != 6 || s.Connects != 6 {
			t.Errorf("stats = %+v", s.Counters)
		}
	})
}

// TestFlappingStatistics checks random up and down times against their means.
func TestFlappingStatistics(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, _ := newTestHub(t, false)
		b := Behavior{Connectivity: Connectivity{
			Flapping:      &Flapping{MTBF: Exponential{Mean: 30 * time.Second}, MTTR: Uniform{Min: 5 * time.Second, Max: 15 * time.Second}},
			TokenLifetime: 1000 * time.Hour,
			KeepAlive:     -1,
		}}
		events := make(chan Event, 10000)
		cfg := hub.config("dev-1", b)
		cfg.Events = events
		d := NewDevice(cfg)
		stop := runDevice(t, d)
		time.Sleep(5 * time.Hour)
		stop()
		close(events)
		var up, down time.Duration
		var ups, downs int
		var last Event
		for ev := range events {
			switch ev.Kind {
			case EventConnected:
				if last.Kind == EventDisconnected {
					down += ev.Time.Sub(last.Time)
					downs++
				}
			case EventDisconnected:
				if last.Kind == EventConnected && ev.Detail == "flap" {
					up += ev.Time.Sub(last.Time)
					ups++
				}
			default:
				continue
			}
			last = ev
		}
		if ups < 400 {
			t.Fatalf("only %d up periods", ups)
		}
		// Standard errors of the means: 5% (exponential) and 1.5% (uniform).
		if mean := up / time.Duration(ups); mean < 27*time.Second || mean > 33*time.Second {
			t.Errorf("mean up time %s over %d periods, want 30s±10%%", mean, ups)
		}
		if mean := down / time.Duration(downs); mean < 9500*time.Millisecond || mean > 10500*time.Millisecond {
			t.Errorf("mean down time %s over %d periods, want 10s±5%%", mean, downs)
		}
	})
}

func TestTokenRenewalKeepsSession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, _ := newTestHub(t, false)
		b := Behavior{
			Methods:      map[string]MethodBehavior{"*": {}},
			Connectivity: Connectivity{TokenLifetime: 20 * time.Second, RenewalMargin: 5 * time.Second},
		}
		d := NewDevice(hub.config("dev-1", b))
		runDevice(t, d)
		waitUntil(t, "connect", d.Connected)
		time.Sleep(40 * time.Second)
		cr := hub.connectsOf("dev-1")
		t0 := cr[0].at
		if len(cr) != 3 {
			t.Fatalf("connects = %d, want 3 (renewals at 15s and 30s)", len(cr))
		}
		for i := 1; i < len(cr); i++ {
			if cr[i].clean {
				t.Errorf("connect %d used clean session", i)
			}
			if seOf(cr[i].password) == seOf(cr[i-1].password) {
				t.Errorf("connect %d reused se %s", i, seOf(cr[i].password))
			}
			if got := cr[i].at.Sub(t0); got != time.Duration(15*i)*time.Second {
				t.Errorf("renewal %d at %s, want %ds", i, got, 15*i)
			}
		}
		if got := hub.subsOf("dev-1"); len(got) != 3 {
			t.Errorf("subscriptions %v: a renewal must not subscribe again when the session is kept", got)
		}
		a, ok, err := hub.call("dev-1", "ping", nil, time.Minute)
		if err != nil || !ok || a.status != 200 {
			t.Errorf("method after renewal: %d ok=%v err=%v", a.status, ok, err)
		}
		if s := d.Stats(); s.TokenRenewals != 2 || s.TwinGets != 1 {
			t.Errorf("stats = %+v", s.Counters)
		}
	})
}

func TestSubscribeModes(t *testing.T) {
	m, r, ds := "$iothub/methods/POST/#", "$iothub/twin/res/#", "$iothub/twin/PATCH/properties/desired/#"
	for _, tc := range []struct {
		mode SubscribeMode
		want []string // after: first connect, renewal, lost connection
	}{
		{SubscribeNoSession, []string{m, r, ds}},
		{SubscribeAlways, []string{m, r, ds, m, r, ds, m, r, ds}},
		{SubscribeNodeSDK, []string{m, r, ds, m}},
	} {
		synctest.Test(t, func(t *testing.T) {
			hub, _ := newTestHub(t, false)
			b := Behavior{
				Methods: map[string]MethodBehavior{"crash": {DisconnectProbability: 1}},
				Connectivity: Connectivity{TokenLifetime: 20 * time.Second, RenewalMargin: 5 * time.Second,
					Subscribe: tc.mode, Backoff: Backoff{Initial: time.Second, Max: time.Second}},
			}
			d := NewDevice(hub.config("dev-1", b))
			runDevice(t, d)
			waitUntil(t, "connect", d.Connected)
			time.Sleep(16 * time.Second)
			if _, err := hub.startCall("dev-1", "crash", nil); err != nil {
				t.Fatal(err)
			}
			waitUntil(t, "third connect", func() bool { return d.Stats().Connects == 3 && d.Connected() })
			time.Sleep(time.Second)
			if got := hub.subsOf("dev-1"); !slices.Equal(got, tc.want) {
				t.Errorf("mode %d: subscriptions %v, want %v", tc.mode, got, tc.want)
			}
		})
	}
}

// TestSubscribeDespiteEmptySession: a connect attempt that the broker
// accepted but the device gave up on leaves a persistent session with no
// subscriptions. The device's next CONNACK says session present; a device
// that never completed its subscriptions must subscribe anyway, or it is
// connected but deaf to method calls.
func TestSubscribeDespiteEmptySession(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, _ := newTestHub(t, false)
		cfg := hub.config("dev-1", Behavior{Methods: map[string]MethodBehavior{"ping": {}}})
		o := mqtt.NewClientOptions()
		o.Servers = []*url.URL{{Scheme: "mem", Host: "testhub"}}
		o.ClientID = "dev-1"
		o.Username = iothub.DeviceUsername(hub.host, "dev-1", DefaultClientType)
		o.Password = iothub.NewSAS(iothub.DeviceResource(hub.host, "dev-1"), cfg.Identity.Key, "", time.Now().Add(time.Hour))
		o.CleanSession = false
		o.AutoReconnect = false
		o.CustomOpenConnectionFn = func(*url.URL, mqtt.ClientOptions) (net.Conn, error) { return hub.mem.Dial(context.Background()) }
		aborted := mqtt.NewClient(o)
		if tok := aborted.Connect(); tok.Wait() && tok.Error() != nil {
			t.Fatal(tok.Error())
		}
		aborted.Disconnect(0)

		d := NewDevice(cfg)
		runDevice(t, d)
		waitUntil(t, "connect", d.Connected)
		want := []string{iothub.FilterMethods, iothub.FilterTwinResponses, iothub.FilterDesired}
		if got := hub.subsOf("dev-1"); !slices.Equal(got, want) {
			t.Errorf("subscriptions %v, want %v", got, want)
		}
		if _, ok, err := hub.call("dev-1", "ping", nil, time.Minute); err != nil || !ok {
			t.Errorf("method: ok=%v err=%v", ok, err)
		}
	})
}

func TestOfflineAtStart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, _ := newTestHub(t, false)
		never := NewDevice(hub.config("never", Behavior{Connectivity: Connectivity{OfflineAtStart: 1}}))
		late := NewDevice(hub.config("late", Behavior{Connectivity: Connectivity{OfflineAtStart: 1, OfflineFor: Constant(time.Minute)}}))
		t0 := time.Now()
		runDevice(t, never)
		runDevice(t, late)
		time.Sleep(2 * time.Minute)
		if n := len(hub.connectsOf("never")); n != 0 {
			t.Errorf("never connected %d times", n)
		}
		if cr := hub.connectsOf("late"); len(cr) != 1 || cr[0].at.Sub(t0) != time.Minute {
			t.Errorf("late connects = %+v, want one after 1m", cr)
		}
	})
}

func TestTelemetry(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, _ := newTestHub(t, false)
		b := Behavior{Telemetry: &TelemetryBehavior{Interval: Constant(time.Second), PayloadSize: 200, QoS: 1}}
		d := NewDevice(hub.config("dev-1", b))
		stop := runDevice(t, d)
		waitUntil(t, "connect", d.Connected)
		time.Sleep(10*time.Second + time.Millisecond)
		stop()
		hub.mu.Lock()
		got := hub.telemetry["dev-1"]
		hub.mu.Unlock()
		if got != 10 || d.Stats().TelemetrySent != 10 {
			t.Errorf("telemetry: hub got %d, device sent %d, want 10", got, d.Stats().TelemetrySent)
		}
	})
}

func TestReportedQueuedWhileOfflineAndRefusals(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, _ := newTestHub(t, false)
		b := Behavior{Reported: map[string]any{"model": "sim-1", "caps": map[string]any{"x": true}}}
		d := NewDevice(hub.config("dev-1", b))
		runDevice(t, d)
		waitUntil(t, "initial reported", func() bool { return d.Stats().ReportedAcked == 1 })
		if got := hub.twinReported("dev-1"); got["model"] != "sim-1" {
			t.Errorf("hub reported = %v", got)
		}
		if got := d.Reported(); got["model"] != "sim-1" {
			t.Errorf("device reported = %v", got)
		}
		hub.mu.Lock()
		hub.reportedStatus = 400
		hub.mu.Unlock()
		d.post(event{kind: evWake}, true) // nothing to do; keeps the device busy-safe
		if _, err := hub.patchDesired("dev-1", map[string]any{"a": 1}); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, "refusal", func() bool { return d.Stats().ReportedFailed == 1 })
	})
}

// TestBackoffDefaults: the reconnect backoff grows from 1 s and is capped
// at 10 s like the Azure device SDKs' retry policies, so devices that lost
// a restarting hub come back within seconds of it, not a minute.
func TestBackoffDefaults(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   Backoff
		want Backoff
	}{
		{"defaults", Backoff{}, Backoff{Initial: time.Second, Max: 10 * time.Second}},
		{"max below initial", Backoff{Initial: 20 * time.Second}, Backoff{Initial: 20 * time.Second, Max: 20 * time.Second}},
		{"given", Backoff{Initial: time.Millisecond, Max: time.Minute}, Backoff{Initial: time.Millisecond, Max: time.Minute}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := (Connectivity{Backoff: tc.in}).withDefaults().Backoff; got != tc.want {
				t.Errorf("backoff %+v, want %+v", got, tc.want)
			}
		})
	}
}
