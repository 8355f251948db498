package registry_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

func seconds(n int) *int { return &n }

// echoDevice answers method requests like a device would: "echo" with 200
// and the payload, "fail" with 500, "text" with a body that is not JSON,
// "empty" with no body; anything else gets no answer.
func echoDevice(r *registry.Registry) func(id, method, rid string, payload []byte) {
	return func(id, method, rid string, payload []byte) {
		status, body := 200, string(payload)
		switch method {
		case "echo":
		case "fail":
			status, body = 500, `{"error":"requested failure"}`
		case "text":
			body = "plain text"
		case "empty":
			body = ""
		default:
			return
		}
		publish(r, id, iothub.MethodResponseTopic(status, rid), body)
	}
}

func TestInvokeMethod(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, l, _ := newReg(t, false)
		l.respond = echoDevice(r)
		must[registry.Device](t)(r.CreateDevice(ctx, registry.Device{DeviceID: "d1"}))

		// Offline and no connect timeout: 404103 at once.
		_, err := r.InvokeMethod(ctx, "d1", iothub.MethodRequest{MethodName: "echo"})
		e := iothub.AsError(err)
		if e.Code != iothub.CodeDeviceNotOnline || e.HTTPStatus() != 404 || e.Message != "Timed out waiting for device to connect." || e.Info["timeout"] != "00:00:00" {
			t.Fatalf("offline: %+v", err)
		}

		// Offline, connects 3 s later, within connectTimeoutInSeconds.
		start := time.Now()
		go func() {
			time.Sleep(3 * time.Second)
			l.setOnline("d1", true)
		}()
		res, err := r.InvokeMethod(ctx, "d1", iothub.MethodRequest{MethodName: "echo", Payload: json.RawMessage(`{"a":1}`), ConnectTimeoutInSeconds: seconds(10)})
		if err != nil || res.Status != 200 || string(res.Payload) != `{"a":1}` {
			t.Fatalf("connect-wait: %+v %v", res, err)
		}
		if waited := time.Since(start); waited != 3*time.Second {
			t.Errorf("connect-wait returned after %v of bubble time, want 3s", waited)
		}
		if m := l.messages(); !strings.HasPrefix(m[len(m)-1], `d1 $iothub/methods/POST/echo/?$rid=`) || !strings.HasSuffix(m[len(m)-1], ` {"a":1}`) {
			t.Errorf("request = %s", m[len(m)-1])
		}

		tests := []struct {
			name        string
			req         iothub.MethodRequest
			wantStatus  int
			wantPayload string
			wantErr     string
		}{
			{"no payload is null", iothub.MethodRequest{MethodName: "echo"}, 200, `null`, "ok"},
			{"device 500 is a result", iothub.MethodRequest{MethodName: "fail"}, 500, `{"error":"requested failure"}`, "ok"},
			{"non-JSON answer becomes a string", iothub.MethodRequest{MethodName: "text"}, 200, `"plain text"`, "ok"},
			{"empty answer is null", iothub.MethodRequest{MethodName: "empty"}, 200, `null`, "ok"},
			{"scalar payload", iothub.MethodRequest{MethodName: "echo", Payload: json.RawMessage(`42`)}, 200, `42`, "ok"},
			{"response timeout too small", iothub.MethodRequest{MethodName: "echo", ResponseTimeoutInSeconds: seconds(4)}, 0, "", "ArgumentInvalid"},
			{"connect timeout too large", iothub.MethodRequest{MethodName: "echo", ConnectTimeoutInSeconds: seconds(301)}, 0, "", "ArgumentInvalid"},
			{"bad method name", iothub.MethodRequest{MethodName: "a/b"}, 0, "", "ArgumentInvalid"},
			{"payload not JSON", iothub.MethodRequest{MethodName: "echo", Payload: json.RawMessage(`{`)}, 0, "", "ArgumentInvalid"},
		}
		for _, tt := range tests {
			res, err := r.InvokeMethod(ctx, "d1", tt.req)
			if code(err) != tt.wantErr || res.Status != tt.wantStatus || string(res.Payload) != tt.wantPayload {
				t.Errorf("%s: %d %s %v, want %d %s %s", tt.name, res.Status, res.Payload, err, tt.wantStatus, tt.wantPayload, tt.wantErr)
			}
		}

		// No answer: 504101 after responseTimeoutInSeconds.
		start = time.Now()
		_, err = r.InvokeMethod(ctx, "d1", iothub.MethodRequest{MethodName: "silent", ResponseTimeoutInSeconds: seconds(7)})
		if e := iothub.AsError(err); e.Code.Number != 504101 || e.HTTPStatus() != 504 || e.Message != "Timed out waiting for the response from device." {
			t.Errorf("silent device: %v", err)
		}
		if waited := time.Since(start); waited != 7*time.Second {
			t.Errorf("timed out after %v of bubble time, want 7s", waited)
		}

		if code(errOf(r.InvokeMethod(ctx, "ghost", iothub.MethodRequest{MethodName: "echo"}))) != "DeviceNotFound" {
			t.Error("unknown device")
		}

		// Offline with a connect timeout that passes.
		l.setOnline("d1", false)
		_, err = r.InvokeMethod(ctx, "d1", iothub.MethodRequest{MethodName: "echo", ConnectTimeoutInSeconds: seconds(2)})
		if e := iothub.AsError(err); e.Code != iothub.CodeDeviceNotOnline || e.Info["timeout"] != "00:00:02" {
			t.Errorf("connect timeout: %v", err)
		}

		// Cancelled while waiting for the answer.
		l.setOnline("d1", true)
		cctx, cancel := context.WithCancel(ctx)
		go func() {
			time.Sleep(time.Second)
			cancel()
		}()
		if _, err := r.InvokeMethod(cctx, "d1", iothub.MethodRequest{MethodName: "silent"}); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled call: %v", err)
		}
	})
}

// TestInvokeWaitsForSubscription: a device that is connected but not yet
// subscribed to methods is waited for, and its SUBSCRIBE wakes the call;
// a device deleted meanwhile ends it with DeviceNotFound.
func TestInvokeWaitsForSubscription(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, l, _ := newReg(t, false)
		l.respond = echoDevice(r)
		for _, id := range []string{"d1", "d2"} {
			must[registry.Device](t)(r.CreateDevice(ctx, registry.Device{DeviceID: id}))
		}
		r.DeviceConnected("d1", nil) // connected, not subscribed
		go func() {
			time.Sleep(time.Second)
			l.mu.Lock()
			l.on["d1"] = true
			l.mu.Unlock()
			r.DeviceSubscriptions("d1", []string{iothub.FilterMethods})
		}()
		if res, err := r.InvokeMethod(ctx, "d1", iothub.MethodRequest{MethodName: "echo", ConnectTimeoutInSeconds: seconds(30)}); err != nil || res.Status != 200 {
			t.Errorf("after subscribe: %+v %v", res, err)
		}
		go func() {
			time.Sleep(time.Second)
			r.DeleteDevice(ctx, "d2", "*")
		}()
		if _, err := r.InvokeMethod(ctx, "d2", iothub.MethodRequest{MethodName: "echo", ConnectTimeoutInSeconds: seconds(30)}); code(err) != "DeviceNotFound" {
			t.Errorf("deleted while waiting: %v", err)
		}
		// Close ends calls in flight.
		go func() {
			time.Sleep(time.Second)
			r.Close()
		}()
		if _, err := r.InvokeMethod(ctx, "d1", iothub.MethodRequest{MethodName: "silent"}); code(err) != "ServiceUnavailable" {
			t.Errorf("closed while waiting: %v", err)
		}
	})
}

// TestConcurrentInvocations runs 1,000 calls at once across 1,000 devices
// and checks every caller gets its own answer.
func TestConcurrentInvocations(t *testing.T) {
	r, l, _ := newReg(t, false)
	l.respond = echoDevice(r)
	const n = 1000
	for i := range n {
		id := fmt.Sprintf("dev-%04d", i)
		must[registry.Device](t)(r.CreateDevice(ctx, registry.Device{DeviceID: id}))
		l.setOnline(id, true)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("dev-%04d", i)
			res, err := r.InvokeMethod(ctx, id, iothub.MethodRequest{MethodName: "echo", Payload: json.RawMessage(fmt.Sprintf(`{"i":%d}`, i))})
			if err == nil && string(res.Payload) != fmt.Sprintf(`{"i":%d}`, i) {
				err = fmt.Errorf("%s got %s", id, res.Payload)
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
}

// TestInvokeFollowsReportedSubscriptions: whether a device takes method
// calls is what the broker's events last said its session holds; the
// registry never asks the broker.
func TestInvokeFollowsReportedSubscriptions(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		r, l, _ := newReg(t, false)
		l.respond = echoDevice(r)
		must[registry.Device](t)(r.CreateDevice(ctx, registry.Device{DeviceID: "d1"}))
		l.setOnline("d1", true)
		call := iothub.MethodRequest{MethodName: "echo", ConnectTimeoutInSeconds: seconds(0)}
		if res, err := r.InvokeMethod(ctx, "d1", call); err != nil || res.Status != 200 {
			t.Fatalf("subscribed: %+v %v", res, err)
		}
		r.DeviceSubscriptions("d1", []string{iothub.FilterDesired}) // UNSUBSCRIBE of methods
		if _, err := r.InvokeMethod(ctx, "d1", call); code(err) != "DeviceNotOnline" {
			t.Fatalf("after unsubscribing from methods: %v, want DeviceNotOnline", err)
		}
		r.DeviceConnected("d1", []string{iothub.FilterMethods}) // a resumed session holds it again
		if res, err := r.InvokeMethod(ctx, "d1", call); err != nil || res.Status != 200 {
			t.Fatalf("resumed session: %+v %v", res, err)
		}
	})
}
