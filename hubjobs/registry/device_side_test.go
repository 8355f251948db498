package registry_test

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/hubjobs/regstore"
	"github.com/fleetsim/fleetsim/internal/iothub"
	"github.com/fleetsim/fleetsim/internal/testkit"
)

func publish(r *registry.Registry, id, topic, body string) {
	t, err := iothub.ParseDeviceTopic(id, topic)
	if err != nil {
		panic(err)
	}
	r.DevicePublished(id, t, []byte(body))
}

// answer publishes as the device would and returns the registry's next
// message to any device, which twin workers send after the publish returns.
func answer(t *testing.T, r *registry.Registry, l *fakeLink, id, topic, body string) string {
	t.Helper()
	before := len(l.messages())
	publish(r, id, topic, body)
	testkit.Eventually(t, 5*time.Second, func() bool { return len(l.messages()) > before }, "no answer to %s on %s", id, topic)
	return l.messages()[before]
}

func TestDeviceSideOfTwins(t *testing.T) {
	path := filepath.Join(t.TempDir(), "r.db")
	st, err := regstore.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	gated := &faultyStore{Persistence: st}
	l := newFakeLink()
	r, err := registry.New(registry.Options{Store: gated, Link: l})
	if err != nil {
		t.Fatal(err)
	}
	l.r = r
	run(t, r)
	must[registry.Device](t)(r.CreateDevice(ctx, registry.Device{DeviceID: "d1"}))
	must[registry.Device](t)(r.CreateDevice(ctx, registry.Device{DeviceID: "d2"}))
	must[registry.Twin](t)(r.PatchTwin(ctx, "d1", []byte(`{"properties":{"desired":{"rate":5}}}`), "*"))
	l.setOnline("d1", true)
	gated.hold() // hold the store from here on

	publish(r, "d1", iothub.TwinReportedTopic("r1"), `{"fw":{"version":"1.2"},"battery":80}`)
	publish(r, "d1", iothub.TwinReportedTopic("r2"), `{"$bad":1}`)
	publish(r, "d1", iothub.TwinReportedTopic("r3"), `not json`)
	publish(r, "d1", iothub.TwinReportedTopic("r4"), `{"big":"`+strings.Repeat("x", 4097)+`"}`)
	publish(r, "d1", iothub.TwinReportedTopic("r5"), `{"fw":{"version":null},"battery":79}`)
	publish(r, "d1", iothub.TwinGetTopic("g1"), " ")
	publish(r, "d1", iothub.TelemetryTopic("d1"), `{"t":21}`)
	for _, m := range l.messages() {
		if strings.Contains(m, "res/204") {
			t.Fatalf("acknowledged before durable: %s", m)
		}
	}
	gated.release()
	// Close waits for the committer, and so for the answers.
	r.Close()
	// d2 is offline: its answer is dropped.
	r.DevicePublished("d2", iothub.DeviceTopic{Kind: iothub.KindTwinGet, RequestID: "g2"}, nil)

	msgs := strings.Join(l.messages(), "\n")
	for _, want := range []string{
		"d1 $iothub/twin/res/204/?$rid=r1&$version=2 \n",
		`d1 $iothub/twin/res/400/?$rid=r2 {"errorCode":400004,`,
		`d1 $iothub/twin/res/400/?$rid=r3 {"errorCode":400004,`,
		`d1 $iothub/twin/res/400/?$rid=r4 {"errorCode":400004,`,
		"d1 $iothub/twin/res/204/?$rid=r5&$version=3 ",
		// The GET waits for the patches the device sent before it: both merged.
		`d1 $iothub/twin/res/200/?$rid=g1 {"desired":{"$version":2,"rate":5},"reported":{"$version":3,"battery":79,"fw":{}}}`,
	} {
		if !strings.Contains(msgs+"\n", want) {
			t.Errorf("missing %q in\n%s", want, msgs)
		}
	}
	if strings.Index(msgs, "rid=r1&") > strings.Index(msgs, "rid=r5&") {
		t.Error("answers out of order")
	}
	if n := r.TelemetryCount(); n != 1 {
		t.Errorf("TelemetryCount = %d", n)
	}
	if d := must[registry.Device](t)(r.GetDevice("d1")); d.LastActivityTime == "0001-01-01T00:00:00Z" {
		t.Error("lastActivityTime not maintained")
	}

	// Everything acknowledged is in the store: reopen and look.
	r2, err := registry.New(registry.Options{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	defer r2.Close()
	tw := jsonOf(t, must[registry.Twin](t)(r2.GetTwin("d1")))
	if at(tw, "properties", "reported", "battery") != 79.0 || at(tw, "properties", "reported", "$version") != 3.0 ||
		at(tw, "properties", "desired", "rate") != 5.0 || at(tw, "version") != 5.0 {
		t.Errorf("reloaded twin %v", tw)
	}
	if at(tw, "connectionState") != "Disconnected" {
		t.Error("a reloaded device is connected")
	}
	if _, ok := at(tw, "properties", "reported", "$metadata", "fw", "$lastUpdated").(string); !ok {
		t.Error("reported metadata not reloaded")
	}
	if at(tw, "properties", "reported", "$metadata", "fw", "$lastUpdatedVersion") != nil {
		t.Error("reported metadata has $lastUpdatedVersion")
	}
	if s := r2.Statistics(); s.TotalDeviceCount != 2 {
		t.Errorf("reloaded statistics %+v", s)
	}
}

func TestDeviceSideErrors(t *testing.T) {
	r, l, _ := newReg(t, false)
	must[registry.Device](t)(r.CreateDevice(ctx, registry.Device{DeviceID: "d1"}))
	l.setOnline("d1", true)
	l.setOnline("ghost", true) // connected but not registered (deleted meanwhile)
	big := `{"a":"` + strings.Repeat("x", 4000) + `"`
	for c := 'b'; c < 'b'+8; c++ {
		big += `,"` + string(c) + `":"` + strings.Repeat("x", 4000) + `"`
	}
	big += "}"
	tests := []struct{ name, device, body, want string }{
		{"ok", "d1", `{"a":1}`, "204/?$rid=R&$version=2 "},
		{"empty object", "d1", `{}`, "204/?$rid=R&$version=3 "},
		{"echoed $version", "d1", `{"a":1,"$version":2}`, `400/?$rid=R {"errorCode":400004,`},
		{"array body", "d1", `[1]`, `400/?$rid=R {"errorCode":400004,`},
		{"empty body", "d1", ``, `400/?$rid=R {"errorCode":400004,`},
		{"two documents", "d1", `{"a":1} {"b":2}`, `400/?$rid=R {"errorCode":400004,`},
		{"null", "d1", `null`, `400/?$rid=R {"errorCode":400004,`},
		{"depth 11", "d1", nest(12, "1"), `400/?$rid=R {"errorCode":400004,`},
		{"invalid UTF-8 in a name", "d1", "{\"a\xff\":1}", `400/?$rid=R {"errorCode":400004,`},
		{"invalid UTF-8 in a string", "d1", "{\"a\":\"\xff\"}", `400/?$rid=R {"errorCode":400004,`},
		{"unpaired surrogate", "d1", `{"a":"\udc00"}`, `400/?$rid=R {"errorCode":400004,`},
		{"over 32 KB", "d1", big, `400/?$rid=R {"errorCode":400004,`},
		{"unknown device", "ghost", `{"a":1}`, `404/?$rid=R {"errorCode":404001,`},
	}
	for _, tt := range tests {
		if got, want := answer(t, r, l, tt.device, iothub.TwinReportedTopic("R"), tt.body), tt.device+" $iothub/twin/res/"+tt.want; !strings.HasPrefix(got, want) {
			t.Errorf("%s: answer %q, want prefix %q", tt.name, got, want)
		}
	}
	if got := answer(t, r, l, "ghost", iothub.TwinGetTopic("G"), ``); !strings.HasPrefix(got, `ghost $iothub/twin/res/404/?$rid=G {"errorCode":404001`) {
		t.Errorf("GET of an unknown twin: %s", got)
	}
	// Unmatched and late method answers are dropped quietly.
	publish(r, "d1", iothub.MethodResponseTopic(200, "999"), `{}`)
}

// TestTwinRequestsDuringClose publishes reported patches from many devices
// while the registry closes: every request gets exactly one answer, either
// its 204 (queued before Close, made durable) or a 503.
func TestTwinRequestsDuringClose(t *testing.T) {
	r, l, _ := newReg(t, true)
	const devices, each = 20, 25
	for i := range devices {
		id := fmt.Sprintf("d%02d", i)
		must[registry.Device](t)(r.CreateDevice(ctx, registry.Device{DeviceID: id}))
		l.setOnline(id, true)
	}
	var wg sync.WaitGroup
	for i := range devices {
		wg.Go(func() {
			for k := range each {
				publish(r, fmt.Sprintf("d%02d", i), iothub.TwinReportedTopic(strconv.Itoa(k)), fmt.Sprintf(`{"k":%d}`, k))
			}
		})
	}
	r.Close()
	wg.Wait()
	answers := map[string]int{}
	for _, m := range l.messages() {
		dev, rest, _ := strings.Cut(m, " ")
		topic, _, _ := strings.Cut(rest, " ")
		switch {
		case strings.Contains(topic, "/res/204/"), strings.Contains(topic, "/res/503/"):
			rid, _, _ := strings.Cut(topic[strings.Index(topic, "$rid=")+len("$rid="):], "&")
			answers[dev+"/"+rid]++
		default:
			t.Errorf("unexpected answer %q", m)
		}
	}
	for i := range devices {
		for k := range each {
			if n := answers[fmt.Sprintf("d%02d/%d", i, k)]; n != 1 {
				t.Errorf("d%02d request %d answered %d times", i, k, n)
			}
		}
	}
}
