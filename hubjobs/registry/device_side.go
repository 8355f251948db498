package registry

import (
	"encoding/json"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// The broker calls the methods in this file on the device's connection
// goroutine (they implement broker.Hub). They do small in-memory work inline
// and hand twin requests to the registry's twin workers (see twinWorkers),
// which queue what must be durable; the committer answers the device once it
// is. They wait only when a twin worker has a full queue.

// DeviceConnected records that the device's CONNECT was accepted: its
// connectionState becomes Connected, filters are the subscriptions its
// session holds, and callers waiting for it wake up.
func (r *Registry) DeviceConnected(deviceID string, filters []string) {
	r.setConnected(deviceID, true, subsOf(filters))
}

// DeviceDisconnected records the end of the device's live connection.
func (r *Registry) DeviceDisconnected(deviceID string) { r.setConnected(deviceID, false, 0) }

// DeviceSubscriptions records the filters the device's live session holds
// and wakes method calls waiting for it to subscribe to
// $iothub/methods/POST/# (docs/iothub.md §2.2 connectTimeoutInSeconds).
func (r *Registry) DeviceSubscriptions(deviceID string, filters []string) {
	e, err := r.lockEntry(deviceID)
	if err != nil {
		return
	}
	e.subs.Store(subsOf(filters))
	e.live.lastActivity = time.Now()
	e.doc = nil
	e.wakeLocked()
	e.mu.Unlock()
}

// Bits of entry.subs: the subscriptions the registry sends on.
const (
	subMethods uint32 = 1 << iota // $iothub/methods/POST/#
	subDesired                    // $iothub/twin/PATCH/properties/desired/#
)

// subsOf returns the bits of the filters the registry sends on.
func subsOf(filters []string) uint32 {
	var bits uint32
	for _, f := range filters {
		switch f {
		case iothub.FilterMethods:
			bits |= subMethods
		case iothub.FilterDesired:
			bits |= subDesired
		}
	}
	return bits
}

func (r *Registry) setConnected(id string, on bool, subs uint32) {
	e, err := r.lockEntry(id)
	if err != nil {
		return
	}
	now := time.Now()
	if e.live.connected != on {
		switch {
		case e.rec.Module != "": // connectedDeviceCount counts devices
		case on:
			r.connected.Add(1)
		default:
			r.connected.Add(-1)
		}
		e.live.connected = on
		e.live.stateChanged = now
	}
	e.subs.Store(subs)
	e.live.lastActivity = now
	e.doc = nil
	e.wakeLocked()
	e.mu.Unlock()
}

// wakeLocked wakes everything waiting on the device's online channel.
func (e *entry) wakeLocked() {
	close(e.online)
	e.online = make(chan struct{})
}

// DevicePublished handles a device's publish on a hub-terminated topic:
// twin GET, reported-properties PATCH, method responses, and telemetry
// (counted). The payload is the registry's to keep.
func (r *Registry) DevicePublished(deviceID string, topic iothub.DeviceTopic, payload []byte) {
	switch topic.Kind {
	case iothub.KindMethodResponse:
		r.methods.complete(deviceID, topic.RequestID, topic.Status, payload)
	case iothub.KindTwinGet, iothub.KindTwinReported:
		req := twinRequest{id: deviceID, rid: topic.RequestID, payload: payload, get: topic.Kind == iothub.KindTwinGet}
		if !r.twins.queue(req) {
			r.handleTwin(req) // closing: answer here, after what is queued
		}
	case iothub.KindTelemetry:
		r.telemetry.Add(1)
	}
	if e, err := r.lockEntry(deviceID); err == nil {
		e.live.lastActivity = time.Now()
		e.doc = nil
		e.mu.Unlock()
	}
}

// handleTwin handles a twin GET or reported PATCH; twin workers call it.
func (r *Registry) handleTwin(req twinRequest) {
	if req.get {
		r.twinGet(req.id, req.rid)
		return
	}
	r.reported(req.id, req.rid, req.payload)
}

func (r *Registry) reply(id, topic string, body []byte) {
	if l := r.linked(); l != nil {
		if err := l.Deliver(id, topic, body); err != nil {
			r.log.Debug().Err(err).Str("device", id).Str("topic", topic).Msg("twin answer not delivered")
		}
	}
}

// replyError answers a twin request with the error's HTTP status in the
// topic and a JSON body with errorCode, which the Node SDK needs to see a
// failure (docs/iothub.md §3.3).
func (r *Registry) replyError(id, rid string, err error) {
	e := iothub.AsError(err)
	r.reply(id, iothub.TwinResponseTopic(e.HTTPStatus(), rid, -1), e.MQTTBody(rid, time.Now()))
}

// twinGet answers $iothub/twin/GET with only the properties, each section
// with $version and without $metadata, on $iothub/twin/res/200/?$rid=R
// (docs/iothub.md §3.2). While changes of the device are queued for the store,
// the answer waits for them, so that a device reads its own acknowledged
// writes in the order it sent them and never a state that is not durable.
func (r *Registry) twinGet(id, rid string) {
	e, err := r.lockEntry(id)
	if err != nil {
		r.replyError(id, rid, err)
		return
	}
	rec, queued := e.rec, e.next != nil
	e.mu.Unlock()
	if queued && r.com != nil {
		err := r.com.barrier(func(err error) {
			if err != nil {
				r.replyError(id, rid, persistErr(id, err))
				return
			}
			if e, err := r.lockEntry(id); err != nil {
				r.replyError(id, rid, err)
			} else {
				rec := e.rec
				e.mu.Unlock()
				r.answerGet(id, rid, rec)
			}
		})
		if err == nil {
			return
		}
	}
	r.answerGet(id, rid, rec)
}

func (r *Registry) answerGet(id, rid string, rec *record) {
	body, err := json.Marshal(twinProperties{
		Desired:  withVersion(rec.Desired, rec.DesiredVersion),
		Reported: withVersion(rec.Reported, rec.ReportedVersion),
	})
	if err != nil {
		r.replyError(id, rid, iothub.AsError(err))
		return
	}
	r.reply(id, iothub.TwinResponseTopic(200, rid, -1), body)
}

type twinProperties struct {
	Desired  map[string]any `json:"desired"`
	Reported map[string]any `json:"reported"`
}

func withVersion(section map[string]any, version int64) map[string]any {
	out := make(map[string]any, len(section)+1)
	for k, v := range section {
		out[k] = v
	}
	out["$version"] = version
	return out
}

// reported merges a device's reported-properties patch (null deletes) and
// answers $iothub/twin/res/204/?$rid=R&$version=V with an empty body once
// the change is durable (docs/iothub.md §3.3); errors answer with their status
// and an errorCode body.
func (r *Registry) reported(id, rid string, payload []byte) {
	patch, err := iothub.ParseTwinSection(iothub.TwinReported, payload)
	if err != nil {
		r.replyError(id, rid, err)
		return
	}
	e, err := r.lockWritable(id)
	if err != nil {
		r.replyError(id, rid, err)
		return
	}
	defer e.mu.Unlock()
	old := e.latest()
	rec := *old
	rec.Reported = merge(old.Reported, patch)
	if err := checkSize(iothub.TwinReported, rec.Reported); err != nil {
		r.replyError(id, rid, err)
		return
	}
	rec.ReportedMeta = mergeMeta(old.ReportedMeta, patch, time.Now(), 0)
	rec.ReportedVersion++
	rec.TwinVersion++
	rec.TwinEtag++
	version := rec.ReportedVersion
	after := func(err error) {
		if err != nil {
			r.replyError(id, rid, persistErr(id, err))
			return
		}
		r.reply(id, iothub.TwinResponseTopic(204, rid, version), nil)
	}
	if err := r.commitLocked(e, &rec, false, after); err != nil {
		r.replyError(id, rid, err)
	}
}
