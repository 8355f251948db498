package devicesim

import (
	"encoding/json"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

func TestDeviceConnectsSubscribesAndGetsTwin(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, _ := newTestHub(t, false)
		hub.key("dev-1")
		hub.twins["dev-1"].desired["interval"] = 5.0
		hub.twins["dev-1"].dv = 3
		d := NewDevice(hub.config("dev-1", Behavior{}))
		stop := runDevice(t, d)
		waitUntil(t, "twin GET", func() bool { return d.Stats().TwinGets == 1 })

		if !d.Connected() {
			t.Error("not connected")
		}
		cr := hub.connectsOf("dev-1")
		if len(cr) != 1 || cr[0].clean {
			t.Fatalf("connects = %+v, want one with clean session 0", cr)
		}
		if want := iothub.DeviceUsername(hub.host, "dev-1", DefaultClientType); cr[0].username != want {
			t.Errorf("username = %q, want %q", cr[0].username, want)
		}
		if se := seOf(cr[0].password); se != itoa(time.Now().Add(time.Hour).Unix()) {
			t.Errorf("se = %s, want an hour from now", se)
		}
		want := []string{iothub.FilterMethods, iothub.FilterTwinResponses, iothub.FilterDesired}
		if got := hub.subsOf("dev-1"); !equalStrings(got, want) {
			t.Errorf("subscriptions = %v, want %v", got, want)
		}
		if got := d.Desired(); got["interval"] != 5.0 {
			t.Errorf("desired = %v", got)
		}
		if dv, _ := d.TwinVersions(); dv != 3 {
			t.Errorf("desired version = %d, want 3", dv)
		}
		stop()
		if d.Connected() {
			t.Error("still connected after Run returned")
		}
		if s := d.Stats(); s.Connects != 1 || s.Disconnects != 1 {
			t.Errorf("stats = %+v", s.Counters)
		}
	})
}

func TestDeviceAnswersMethods(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hub, _ := newTestHub(t, false)
		b := Behavior{Methods: map[string]MethodBehavior{
			"echo": {Latency: Constant(200 * time.Millisecond), Payload: json.RawMessage(`{"from":"{{deviceId}}","m":"{{method}}","req":{{requestPayload}},"s":{{status}}}`)},
			"fail": {Statuses: []WeightedStatus{{Status: 503, Weight: 1}}},
			"*":    {Statuses: []WeightedStatus{{Status: 404, Weight: 1}}},
		}}
		d := NewDevice(hub.config("dev-1", b))
		runDevice(t, d)
		waitUntil(t, "connect", d.Connected)

		start := time.Now()
		a, ok, err := hub.call("dev-1", "echo", []byte(`{"x":1}`), time.Minute)
		if err != nil || !ok {
			t.Fatalf("call: ok=%v err=%v", ok, err)
		}
		if took := time.Since(start); took != 200*time.Millisecond {
			t.Errorf("virtual latency = %s, want 200ms", took)
		}
		if a.status != 200 || string(a.body) != `{"from":"dev-1","m":"echo","req":{"x":1},"s":200}` {
			t.Errorf("answer = %d %s", a.status, a.body)
		}
		for _, tc := range []struct {
			method string
			status int
			body   string
		}{
			{"fail", 503, "null"},
			{"other", 404, "null"},
		} {
			a, ok, err := hub.call("dev-1", tc.method, nil, time.Minute)
			if err != nil || !ok || a.status != tc.status || string(a.body) != tc.body {
				t.Errorf("%s: %d %s ok=%v err=%v", tc.method, a.status, a.body, ok, err)
			}
		}
		waitUntil(t, "answers counted", func() bool { return d.Stats().MethodAnswers == 3 })
		s := d.Stats()
		if s.MethodCalls != 3 || s.MethodAnswers != 3 || s.MethodsByStatus[503] != 1 {
			t.Errorf("stats = %+v", s.Counters)
		}
	})
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

func equalStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
