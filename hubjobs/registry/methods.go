package registry

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// methodTable matches method responses to the calls waiting for them. It is
// sharded by device id, so thousands of concurrent calls across devices do
// not serialise on one lock.
type methodTable struct {
	seed   maphash.Seed
	rid    atomic.Uint64 // request ids, unique per registry and so per device
	shards [64]methodShard
}

type methodShard struct {
	mu      sync.Mutex
	waiters map[waiterKey]chan iothub.MethodResult
}

type waiterKey struct{ device, rid string }

func (t *methodTable) init() {
	t.seed = maphash.MakeSeed()
	for i := range t.shards {
		t.shards[i].waiters = map[waiterKey]chan iothub.MethodResult{}
	}
}

func (t *methodTable) shard(device string) *methodShard {
	return &t.shards[maphash.String(t.seed, device)%uint64(len(t.shards))]
}

// register adds a waiter for a new request id; cancel removes it.
func (t *methodTable) register(device string) (rid string, ch chan iothub.MethodResult, cancel func()) {
	rid = strconv.FormatUint(t.rid.Add(1), 10)
	ch = make(chan iothub.MethodResult, 1)
	k := waiterKey{device, rid}
	sh := t.shard(device)
	sh.mu.Lock()
	sh.waiters[k] = ch
	sh.mu.Unlock()
	return rid, ch, func() {
		sh.mu.Lock()
		delete(sh.waiters, k)
		sh.mu.Unlock()
	}
}

// complete hands a device's answer to its waiter; late or unknown answers
// are dropped. The device's body becomes the result's payload: empty is
// null, and a body that is not JSON is returned as a JSON string (the
// real hub's answer to that case is undocumented, docs/iothub.md §2.2).
func (t *methodTable) complete(device, rid string, status int, body []byte) {
	k := waiterKey{device, rid}
	sh := t.shard(device)
	sh.mu.Lock()
	ch := sh.waiters[k]
	delete(sh.waiters, k)
	sh.mu.Unlock()
	if ch == nil {
		return
	}
	payload := json.RawMessage(bytes.TrimSpace(body))
	switch {
	case len(payload) == 0:
		payload = json.RawMessage("null")
	case !json.Valid(payload):
		payload, _ = json.Marshal(string(body)) // a string always marshals
	}
	ch <- iothub.MethodResult{Status: status, Payload: payload}
}

// InvokeMethod calls a direct method on a device and waits for its answer
// (docs/iothub.md §2.2). Errors: ArgumentInvalid/MessageTooLarge (req.Validate),
// DeviceNotFound (404001), DeviceNotOnline (404103) when the device is not
// connected and subscribed to $iothub/methods/POST/# within
// connectTimeoutInSeconds, GatewayTimeout (504101) when it does not answer
// within responseTimeoutInSeconds, ServiceUnavailable after Close; when ctx
// ends first, an error wrapping ctx.Err(). The device's own status,
// whatever it is, is in the result.
func (r *Registry) InvokeMethod(ctx context.Context, deviceID string, req iothub.MethodRequest) (iothub.MethodResult, error) {
	if err := deviceOnly(deviceID); err != nil {
		return iothub.MethodResult{}, err
	}
	return r.invoke(ctx, deviceID, req)
}

// invoke calls a method on a device, or on a module given as
// "deviceId/moduleId": the request goes to that identity's connection only.
func (r *Registry) invoke(ctx context.Context, deviceID string, req iothub.MethodRequest) (iothub.MethodResult, error) {
	if err := req.Validate(); err != nil {
		return iothub.MethodResult{}, err
	}
	e, err := r.lockEntry(deviceID)
	if err != nil {
		return iothub.MethodResult{}, err
	}
	e.mu.Unlock()
	connectTimeout := time.Duration(req.ConnectTimeout()) * time.Second
	l, err := r.waitOnline(ctx, e, deviceID, connectTimeout)
	if err != nil {
		return iothub.MethodResult{}, err
	}
	rid, ch, cancel := r.methods.register(deviceID)
	defer cancel()
	// The timer starts before Deliver: a device may answer inside Deliver.
	timer := time.NewTimer(time.Duration(req.ResponseTimeout()) * time.Second)
	defer timer.Stop()
	// docs/iothub.md §2.1: $iothub/methods/POST/{name}/?$rid={rid}, body always JSON.
	if err := l.Deliver(deviceID, iothub.MethodRequestTopic(req.MethodName, rid), req.DevicePayload()); err != nil {
		return iothub.MethodResult{}, deviceNotOnline(connectTimeout, err)
	}
	select {
	case res := <-ch:
		return res, nil
	case <-timer.C:
		return iothub.MethodResult{}, &iothub.Error{Code: iothub.CodeGatewayTimeout, Message: "Timed out waiting for the response from device.", Info: map[string]any{}}
	case <-ctx.Done():
		return iothub.MethodResult{}, fmt.Errorf("invoke %s on %s: %w", req.MethodName, deviceID, ctx.Err())
	case <-r.closing:
		return iothub.MethodResult{}, unavailable()
	}
}

// deviceNotOnline is IoT Hub's 404103 with the connect timeout as hh:mm:ss
// in info (docs/iothub.md §2.2).
func deviceNotOnline(connectTimeout time.Duration, cause error) error {
	return &iothub.Error{
		Code:    iothub.CodeDeviceNotOnline,
		Message: "Timed out waiting for device to connect.",
		Info:    map[string]any{"timeout": time.Time{}.Add(connectTimeout).Format("15:04:05")},
		Err:     cause,
	}
}

// waitOnline returns the link once the device is connected and subscribed to
// method requests, waiting at most d for it. Broker events (DeviceConnected,
// DeviceSubscriptions) wake it; it does not poll.
func (r *Registry) waitOnline(ctx context.Context, e *entry, id string, d time.Duration) (DeviceLink, error) {
	var timeout <-chan time.Time
	for {
		e.mu.Lock()
		woken, gone, subs := e.online, e.gone, e.subs.Load()
		e.mu.Unlock()
		if gone {
			return nil, notFound(id)
		}
		l := r.linked()
		if l != nil && subs&subMethods != 0 {
			return l, nil
		}
		if d <= 0 {
			return nil, deviceNotOnline(d, nil)
		}
		if timeout == nil {
			t := time.NewTimer(d)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-woken:
		case <-timeout:
			return nil, deviceNotOnline(d, nil)
		case <-ctx.Done():
			return nil, fmt.Errorf("wait for %s to connect: %w", id, ctx.Err())
		case <-r.closing:
			return nil, unavailable()
		}
	}
}
