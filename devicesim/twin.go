package devicesim

import (
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

func (d *Device) nextRID() string {
	d.rid++
	return strconv.FormatUint(d.rid, 10)
}

// getTwin publishes a twin GET with the body the Node SDK sends, a single
// space (docs/iothub.md §3.2), and waits for the answer matched by $rid.
func (d *Device) getTwin(c *connection) {
	if len(d.pendingTwin) >= maxPendingTwin {
		return
	}
	rid := d.nextRID()
	d.pendingTwin = append(d.pendingTwin, pendingTwin{rid: rid, get: true})
	if err := d.publish(c, iothub.TwinGetTopic(rid), 0, []byte(" "), false); err != nil {
		d.debug().Err(err).Msg("twin GET not sent")
	}
	gen := d.gen
	d.after(twinTimeout, func() { d.twinTimedOut(gen, rid) })
}

// takePending removes and returns the pending twin request rid.
func (d *Device) takePending(rid string) (pendingTwin, bool) {
	for i, p := range d.pendingTwin {
		if p.rid == rid {
			d.pendingTwin = append(d.pendingTwin[:i], d.pendingTwin[i+1:]...)
			return p, true
		}
	}
	return pendingTwin{}, false
}

func (d *Device) twinTimedOut(gen uint32, rid string) {
	if d.gen != gen {
		return
	}
	p, ok := d.takePending(rid)
	if !ok {
		return
	}
	if p.get {
		d.debug().Str("rid", rid).Msg("twin GET timed out")
		return
	}
	d.stats.reportedFailed.Add(1)
	d.emit(EventReportedFailed, "", 0, "timeout")
	answered(p.wait, false)
}

// answered runs the waiters of a reported patch the hub answered (ok) or
// refused or never answered.
func answered(wait []reportWaiter, ok bool) {
	for _, w := range wait {
		w(ok)
	}
}

// onTwinResponse handles $iothub/twin/res/{status}/?$rid=...: the answer to
// a GET (the properties document) or to a reported patch (204, empty).
func (d *Device) onTwinResponse(topic string, body []byte) {
	status, rid, version, err := iothub.ParseTwinResponseTopic(topic)
	if err != nil {
		d.debug().Err(err).Msg("bad twin response topic")
		return
	}
	p, ok := d.takePending(rid)
	if !ok {
		return
	}
	if !p.get {
		if status >= 200 && status < 300 {
			d.stats.reportedAcked.Add(1)
			if version >= 0 {
				d.mu.Lock()
				d.reportVer = version
				d.mu.Unlock()
			}
			d.emit(EventReportedAcked, "", status, "")
			answered(p.wait, true)
			d.flushReported() // changes kept back while too many were in flight
			return
		}
		d.stats.reportedFailed.Add(1)
		d.emit(EventReportedFailed, "", status, string(body))
		answered(p.wait, false)
		return
	}
	if status != 200 {
		d.debug().Int("status", status).Msg("twin GET refused")
		return
	}
	var doc struct {
		Desired  map[string]any `json:"desired"`
		Reported map[string]any `json:"reported"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		d.debug().Err(err).Msg("twin GET answer is not JSON")
		return
	}
	dv, rv := takeVersion(doc.Desired), takeVersion(doc.Reported)
	stripMeta(doc.Desired)
	stripMeta(doc.Reported)
	d.mu.Lock()
	if dv >= d.desiredVer {
		d.desired, d.desiredVer = doc.Desired, dv
	}
	// What the device has reported but the hub has not yet acknowledged
	// stays in the local view.
	d.reported = doc.Reported
	if d.reported == nil {
		d.reported = map[string]any{}
	}
	mergePatch(d.reported, d.unsent, false)
	for _, p := range d.pendingTwin {
		mergePatch(d.reported, p.patch, false)
	}
	d.reportVer = rv
	d.mu.Unlock()
	d.stats.twinGets.Add(1)
	d.emit(EventTwinReceived, "", status, "")
	if dv > d.ackedDesired && len(doc.Desired) > 0 {
		d.ackDesired(cloneMap(doc.Desired), dv)
	}
}

// onDesired applies a desired-property patch; patches not newer than what
// the device has are ignored (docs/iothub.md §3.4).
func (d *Device) onDesired(topic string, body []byte) {
	var patch map[string]any
	if err := json.Unmarshal(body, &patch); err != nil {
		d.debug().Err(err).Msg("desired patch is not JSON")
		return
	}
	v := takeVersion(patch)
	if v < 0 {
		if _, q, ok := strings.Cut(topic, "$version="); ok {
			v, _ = strconv.ParseInt(q, 10, 64)
		}
	}
	d.mu.Lock()
	if v >= 0 && v <= d.desiredVer {
		d.mu.Unlock()
		return
	}
	if d.desired == nil {
		d.desired = map[string]any{}
	}
	mergePatch(d.desired, cloneMap(patch), false)
	d.desiredVer = v
	d.mu.Unlock()
	d.stats.desiredPatches.Add(1)
	d.emit(EventDesiredReceived, "", int(v), "")
	d.ackDesired(patch, v)
}

// ackDesired reports an acknowledgement of every key in patch after the
// behaviour's delay, unless it chooses not to.
func (d *Device) ackDesired(patch map[string]any, version int64) {
	b := &d.cfg.Behavior.Desired
	if b.Format == AckNone || len(patch) == 0 {
		return
	}
	if chance(b.NoAckProbability, d.rng) {
		return
	}
	delay := sample(b.Delay, d.rng)
	failed := chance(b.FailProbability, d.rng)
	d.ackedDesired = max(d.ackedDesired, version)
	received := time.Now()
	d.busy(1)
	done := func(ok bool) {
		d.busy(-1)
		if ok {
			d.stats.twinAcks.Add(1)
			if failed {
				d.stats.twinAcksNotApplied.Add(1)
			}
		} else {
			d.stats.twinAckFailures.Add(1)
		}
		d.record(Outcome{Kind: OutcomeTwinAck, Start: received, End: time.Now(), OK: ok, NotApplied: failed, Version: version})
	}
	d.reply(delay, func() {
		ack := make(map[string]any, len(patch))
		for k, v := range patch {
			if b.Format == AckPnP {
				ac, ad := 200, "applied"
				if failed {
					ac, ad = 500, "failed"
				}
				ack[k] = map[string]any{"value": v, "ac": ac, "av": version, "ad": ad}
				continue
			}
			st := "applied"
			if failed {
				st = "failed"
			}
			ack[k] = map[string]any{"value": v, "ackVersion": version, "status": st}
		}
		d.reportPatch(ack, done)
	})
}

// reportPatch merges patch into the local reported copy and sends it, or
// keeps it for the next connection when offline. patch becomes the
// device's; callers pass a fresh map. wait runs once the hub has answered
// the patch (or the patch it was merged into).
func (d *Device) reportPatch(patch map[string]any, wait ...reportWaiter) {
	d.mu.Lock()
	if d.reported == nil {
		d.reported = map[string]any{}
	}
	mergePatch(d.reported, cloneMap(patch), false)
	d.mu.Unlock()
	if d.conn == nil || len(d.pendingTwin) >= maxPendingTwin {
		if d.unsent == nil {
			d.unsent = map[string]any{}
		}
		mergePatch(d.unsent, patch, true)
		d.unsentWait = append(d.unsentWait, wait...)
		return
	}
	d.sendReported(d.conn, patch, wait)
}

func (d *Device) flushReported() {
	if len(d.unsent) == 0 || d.conn == nil || len(d.pendingTwin) >= maxPendingTwin {
		return
	}
	p, w := d.unsent, d.unsentWait
	d.unsent, d.unsentWait = nil, nil
	d.sendReported(d.conn, p, w)
}

// sendReported publishes $iothub/twin/PATCH/properties/reported/?$rid= and
// expects a 2xx answer within twinTimeout.
func (d *Device) sendReported(c *connection, patch map[string]any, wait []reportWaiter) {
	body, err := json.Marshal(patch)
	if err != nil {
		d.debug().Err(err).Msg("reported patch does not encode")
		answered(wait, false)
		return
	}
	rid := d.nextRID()
	d.pendingTwin = append(d.pendingTwin, pendingTwin{rid: rid, patch: patch, wait: wait})
	if err := d.publish(c, iothub.TwinReportedTopic(rid), 0, body, false); err != nil {
		d.debug().Err(err).Msg("reported patch not sent")
	}
	d.stats.reportedSent.Add(1)
	d.emit(EventReportedSent, "", 0, "")
	gen := d.gen
	d.after(twinTimeout, func() { d.twinTimedOut(gen, rid) })
}

// requeuePending keeps reported patches that were in flight when the
// connection ended, to send them again after the next connect.
func (d *Device) requeuePending() {
	for _, p := range d.pendingTwin {
		if p.get || p.patch == nil {
			continue
		}
		if d.unsent == nil {
			d.unsent = map[string]any{}
		}
		mergePatch(d.unsent, p.patch, true)
		d.unsentWait = append(d.unsentWait, p.wait...)
	}
	clear(d.pendingTwin)
	d.pendingTwin = d.pendingTwin[:0]
}

// takeVersion removes "$version" from m and returns it (-1 when absent).
func takeVersion(m map[string]any) int64 {
	v, ok := m["$version"]
	if !ok {
		return -1
	}
	delete(m, "$version")
	switch n := v.(type) {
	case float64:
		return int64(n)
	case json.Number:
		i, _ := n.Int64()
		return i
	}
	return -1
}

// stripMeta removes the hub's $-keys ($metadata, $version) at the top level.
func stripMeta(m map[string]any) {
	for k := range m {
		if strings.HasPrefix(k, "$") {
			delete(m, k)
		}
	}
}

// mergePatch applies a twin patch to dst: objects merge recursively, null
// deletes (or, with keepNull, is kept so the deletion can be sent later).
func mergePatch(dst, patch map[string]any, keepNull bool) {
	for k, v := range patch {
		switch pv := v.(type) {
		case nil:
			if keepNull {
				dst[k] = nil
			} else {
				delete(dst, k)
			}
		case map[string]any:
			if dv, ok := dst[k].(map[string]any); ok {
				mergePatch(dv, pv, keepNull)
				continue
			}
			m := make(map[string]any, len(pv))
			mergePatch(m, pv, keepNull)
			dst[k] = m
		default:
			dst[k] = v
		}
	}
}

// cloneMap deep-copies a JSON-shaped map (nil stays nil).
func cloneMap(m map[string]any) map[string]any {
	if m == nil {
		return nil
	}
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = cloneValue(v)
	}
	return out
}

func cloneValue(v any) any {
	switch x := v.(type) {
	case map[string]any:
		return cloneMap(x)
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = cloneValue(e)
		}
		return out
	}
	return v
}
