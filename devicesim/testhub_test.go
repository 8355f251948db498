package devicesim

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mochi "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/listeners"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fleetsim/fleetsim/internal/iothub"
	"github.com/fleetsim/fleetsim/internal/memnet"
)

// testHub is test scaffolding at the boundary: an in-process mochi broker
// with a hook that allows every device whose SAS verifies, answers twin GETs
// and reported patches like IoT Hub, sends method requests and desired
// patches to one device (written to that client only, no topic-tree fan-out)
// and records what devices send. The real embedded hub replaces it in the
// runner's tests.
type testHub struct {
	mochi.HookBase
	srv  *mochi.Server
	mem  *memnet.Listener
	host string

	mu        sync.Mutex
	keys      map[string][]byte
	twins     map[string]*hubTwin
	connects  map[string][]connectRecord
	subs      map[string][]string
	calls     map[string]chan methodAnswer // deviceID/rid → waiter
	reported  map[string][]map[string]any  // every reported patch, in order
	telemetry map[string]int
	// reportedStatus, when set, is answered to reported patches instead of 204.
	reportedStatus int
	// sharedKey, when set, is every device's key and the hub keeps no
	// per-device state (benchmarks: the broker's cost only).
	sharedKey []byte
	// onAnswer, when set, receives method answers instead of calls.
	onAnswer func(id, rid string, status int)

	rid       atomic.Int64
	disconnCt atomic.Int64
}

type hubTwin struct {
	desired, reported map[string]any
	dv, rv            int64
}

type connectRecord struct {
	at       time.Time
	password string
	username string
	clean    bool
}

type methodAnswer struct {
	status int
	body   []byte
}

// newTestHub starts a hub on a memnet listener; tcp also listens on 127.0.0.1:0.
func newTestHub(tb testing.TB, tcp bool) (*testHub, string) {
	tb.Helper()
	caps := mochi.NewDefaultServerCapabilities()
	caps.MaximumClientWritesPending = 64
	srv := mochi.New(&mochi.Options{
		Capabilities:             caps,
		Logger:                   slog.New(slog.NewTextHandler(io.Discard, nil)),
		ClientNetReadBufferSize:  1024,
		ClientNetWriteBufferSize: 1024,
		SysTopicResendInterval:   1 << 30, // never: see broker.dropRetained
	})
	h := &testHub{
		srv:       srv,
		host:      "testhub.azure-devices.net",
		keys:      map[string][]byte{},
		twins:     map[string]*hubTwin{},
		connects:  map[string][]connectRecord{},
		subs:      map[string][]string{},
		calls:     map[string]chan methodAnswer{},
		reported:  map[string][]map[string]any{},
		telemetry: map[string]int{},
	}
	if err := srv.AddHook(h, nil); err != nil {
		tb.Fatal(err)
	}
	h.mem = memnet.Listen("testhub")
	if err := srv.AddListener(listeners.NewNet("mem", h.mem)); err != nil {
		tb.Fatal(err)
	}
	addr := ""
	if tcp {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatal(err)
		}
		addr = ln.Addr().String()
		if err := srv.AddListener(listeners.NewNet("tcp", ln)); err != nil {
			tb.Fatal(err)
		}
	}
	if err := srv.Serve(); err != nil {
		tb.Fatal(err)
	}
	// As the real broker does: no retained $SYS values, so a SUBSCRIBE does
	// not walk the topic tree.
	for topic := range srv.Topics.Retained.GetAll() {
		srv.Topics.RetainMessage(packets.Packet{TopicName: topic})
	}
	tb.Cleanup(func() { _ = srv.Close() })
	return h, addr
}

// key registers a device and returns its key.
func (h *testHub) key(id string) []byte {
	h.mu.Lock()
	defer h.mu.Unlock()
	k, ok := h.keys[id]
	if !ok {
		k = []byte("key-of-" + id + "-0123456789abcdef")
		h.keys[id] = k
		h.twins[id] = &hubTwin{desired: map[string]any{}, reported: map[string]any{}, dv: 1, rv: 1}
	}
	return k
}

// config returns a device config for id on the in-memory transport.
func (h *testHub) config(id string, b Behavior) DeviceConfig {
	return DeviceConfig{
		Identity:  Identity{DeviceID: id, Key: h.key(id), Hostname: h.host},
		Transport: Transport{Dial: h.mem.Dial},
		Behavior:  b,
		Seed:      42,
	}
}

func (h *testHub) ID() string { return "testhub" }

func (h *testHub) Provides(b byte) bool {
	switch b {
	case mochi.OnConnectAuthenticate, mochi.OnACLCheck, mochi.OnPublish, mochi.OnSubscribe, mochi.OnDisconnect:
		return true
	}
	return false
}

func (h *testHub) OnConnectAuthenticate(cl *mochi.Client, pk packets.Packet) bool {
	pw := string(pk.Connect.Password)
	if h.sharedKey != nil {
		tok, err := iothub.ParseSAS(pw)
		if err != nil {
			return false
		}
		_, err = tok.Verify(time.Now(), h.sharedKey)
		return err == nil
	}
	h.mu.Lock()
	key, ok := h.keys[cl.ID]
	h.connects[cl.ID] = append(h.connects[cl.ID], connectRecord{at: time.Now(), password: pw, username: string(pk.Connect.Username), clean: pk.Connect.Clean})
	h.mu.Unlock()
	if !ok {
		return false
	}
	tok, err := iothub.ParseSAS(pw)
	if err != nil {
		return false
	}
	if _, err := tok.Verify(time.Now(), key); err != nil {
		return false
	}
	return tok.CoversResource(iothub.DeviceResource(h.host, cl.ID))
}

func (h *testHub) OnACLCheck(*mochi.Client, string, bool) bool { return true }

func (h *testHub) OnSubscribe(cl *mochi.Client, pk packets.Packet) packets.Packet {
	if h.sharedKey != nil {
		return pk
	}
	h.mu.Lock()
	for _, f := range pk.Filters {
		h.subs[cl.ID] = append(h.subs[cl.ID], f.Filter)
	}
	h.mu.Unlock()
	return pk
}

func (h *testHub) OnDisconnect(*mochi.Client, error, bool) { h.disconnCt.Add(1) }

// OnPublish plays the hub for every device-to-hub topic and stops routing.
func (h *testHub) OnPublish(cl *mochi.Client, pk packets.Packet) (packets.Packet, error) {
	dt, err := iothub.ParseDeviceTopic(cl.ID, pk.TopicName)
	if err != nil {
		return pk, packets.ErrRejectPacket
	}
	if h.sharedKey != nil {
		switch dt.Kind {
		case iothub.KindTwinGet:
			_ = writeTo(cl, iothub.TwinResponseTopic(200, dt.RequestID, -1), []byte(`{"desired":{"$version":1},"reported":{"$version":1}}`))
		case iothub.KindTwinReported:
			_ = writeTo(cl, iothub.TwinResponseTopic(204, dt.RequestID, 2), nil)
		case iothub.KindMethodResponse:
			h.onAnswer(cl.ID, dt.RequestID, dt.Status)
		}
		return pk, packets.ErrRejectPacket
	}
	switch dt.Kind {
	case iothub.KindTwinGet:
		h.mu.Lock()
		tw := h.twins[cl.ID]
		d, r := cloneMap(tw.desired), cloneMap(tw.reported)
		d["$version"], r["$version"] = tw.dv, tw.rv
		h.mu.Unlock()
		body, _ := json.Marshal(map[string]any{"desired": d, "reported": r})
		_ = writeTo(cl, iothub.TwinResponseTopic(200, dt.RequestID, -1), body)
	case iothub.KindTwinReported:
		var patch map[string]any
		if err := json.Unmarshal(pk.Payload, &patch); err != nil {
			_ = writeTo(cl, iothub.TwinResponseTopic(400, dt.RequestID, -1), []byte(`{"errorCode":400004,"message":"bad json"}`))
			break
		}
		h.mu.Lock()
		if st := h.reportedStatus; st != 0 {
			h.mu.Unlock()
			_ = writeTo(cl, iothub.TwinResponseTopic(st, dt.RequestID, -1), []byte(`{"errorCode":`+strconv.Itoa(st)+`000,"message":"refused"}`))
			break
		}
		tw := h.twins[cl.ID]
		mergePatch(tw.reported, cloneMap(patch), false)
		tw.rv++
		v := tw.rv
		h.reported[cl.ID] = append(h.reported[cl.ID], patch)
		h.mu.Unlock()
		_ = writeTo(cl, iothub.TwinResponseTopic(204, dt.RequestID, v), nil)
	case iothub.KindMethodResponse:
		h.mu.Lock()
		ch := h.calls[cl.ID+"/"+dt.RequestID]
		delete(h.calls, cl.ID+"/"+dt.RequestID)
		h.mu.Unlock()
		if ch != nil {
			ch <- methodAnswer{status: dt.Status, body: append([]byte(nil), pk.Payload...)}
		}
	case iothub.KindTelemetry:
		h.mu.Lock()
		h.telemetry[cl.ID]++
		h.mu.Unlock()
	}
	return pk, packets.ErrRejectPacket
}

func writeTo(cl *mochi.Client, topic string, payload []byte) error {
	return cl.WritePacket(packets.Packet{
		FixedHeader: packets.FixedHeader{Type: packets.Publish},
		TopicName:   topic,
		Payload:     payload,
	})
}

var errOffline = fmt.Errorf("device not online")

// send writes topic to the device's live connection if it holds filter.
func (h *testHub) send(id, filter, topic string, payload []byte) error {
	cl, ok := h.srv.Clients.Get(id)
	if !ok || cl.Closed() {
		return errOffline
	}
	if _, ok := cl.State.Subscriptions.Get(filter); !ok {
		return fmt.Errorf("%w: not subscribed to %s", errOffline, filter)
	}
	return writeTo(cl, topic, payload)
}

// startCall sends a method request and returns the channel its answer comes on.
func (h *testHub) startCall(id, method string, payload []byte) (<-chan methodAnswer, error) {
	rid := strconv.FormatInt(h.rid.Add(1), 10)
	ch := make(chan methodAnswer, 1)
	h.mu.Lock()
	h.calls[id+"/"+rid] = ch
	h.mu.Unlock()
	if payload == nil {
		payload = []byte("null")
	}
	if err := h.send(id, iothub.FilterMethods, iothub.MethodRequestTopic(method, rid), payload); err != nil {
		h.mu.Lock()
		delete(h.calls, id+"/"+rid)
		h.mu.Unlock()
		return nil, err
	}
	return ch, nil
}

// call invokes a method and waits up to timeout; ok is false on timeout.
func (h *testHub) call(id, method string, payload []byte, timeout time.Duration) (methodAnswer, bool, error) {
	ch, err := h.startCall(id, method, payload)
	if err != nil {
		return methodAnswer{}, false, err
	}
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case a := <-ch:
		return a, true, nil
	case <-t.C:
		return methodAnswer{}, false, nil
	}
}

// patchDesired changes desired properties and notifies the device.
func (h *testHub) patchDesired(id string, patch map[string]any) (int64, error) {
	h.mu.Lock()
	tw := h.twins[id]
	mergePatch(tw.desired, cloneMap(patch), false)
	tw.dv++
	v := tw.dv
	h.mu.Unlock()
	body := cloneMap(patch)
	body["$version"] = v
	b, _ := json.Marshal(body)
	return v, h.send(id, iothub.FilterDesired, iothub.DesiredPatchTopic(v), b)
}

func (h *testHub) connectsOf(id string) []connectRecord {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]connectRecord(nil), h.connects[id]...)
}

func (h *testHub) subsOf(id string) []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.subs[id]...)
}

func (h *testHub) reportedOf(id string) []map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]map[string]any(nil), h.reported[id]...)
}

func (h *testHub) twinReported(id string) map[string]any {
	h.mu.Lock()
	defer h.mu.Unlock()
	return cloneMap(h.twins[id].reported)
}

// seOf returns the se field of a SAS password.
func seOf(password string) string {
	for _, f := range strings.Split(strings.TrimPrefix(password, "SharedAccessSignature "), "&") {
		if v, ok := strings.CutPrefix(f, "se="); ok {
			return v
		}
	}
	return ""
}

// runDevice runs d until the returned stop function is called; stop waits
// for Run to return and reports its error.
func runDevice(t testing.TB, d *Device) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}
