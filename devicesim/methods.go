package devicesim

import (
	"bytes"
	"strconv"
	"sync"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// onMethod handles $iothub/methods/POST/{name}/?$rid={rid}.
func (d *Device) onMethod(c *connection, topic string, req []byte) {
	name, rid, err := iothub.ParseMethodRequestTopic(topic)
	if err != nil {
		d.debug().Err(err).Msg("bad method request topic")
		return
	}
	d.stats.methodCalls.Add(1)
	d.emit(EventMethodCalled, name, 0, "")
	b := &d.cfg.Behavior
	switch {
	case name == MethodReboot && b.Reboot != nil:
		d.onReboot(rid, req)
		return
	case name == MethodFirmwareUpdate && b.FirmwareUpdate != nil:
		d.onFirmwareUpdate(rid, req)
		return
	}
	mb, ok := b.Methods[name]
	if !ok {
		mb, ok = b.Methods[MethodDefault]
	}
	if !ok {
		// An SDK client without a handler never answers (docs/sdk-notes.md §2.5).
		d.unanswered(name, "no handler")
		return
	}
	if chance(mb.NoAnswerProbability, d.rng) {
		d.unanswered(name, "no answer")
		return
	}
	crash := chance(mb.DisconnectProbability, d.rng)
	latency := sample(mb.Latency, d.rng)
	if crash {
		gen := d.gen
		d.after(latency, func() {
			if d.gen != gen || d.conn == nil {
				d.unanswered(name, "abandoned")
				return
			}
			d.unanswered(name, "disconnect")
			d.dropConnection(d.conn, "crash", 0)
		})
		return
	}
	status := pickStatus(mb.Statuses, d.rng)
	d.answerAfter(latency, name, rid, status, mb.Payload, req, nil)
}

func (d *Device) unanswered(method, why string) {
	d.stats.methodsUnanswered.Add(1)
	d.emit(EventMethodUnanswered, method, 0, why)
}

// answerAfter answers a method call after latency on the connection it came
// in on; the answer is abandoned if that connection has ended. then, if set,
// runs once the answer is written.
func (d *Device) answerAfter(latency time.Duration, method, rid string, status int, tmpl, req []byte, then func()) {
	d.answerAfterOr(latency, method, rid, status, tmpl, req, then, nil)
}

// answerAfterOr is answerAfter that runs orElse, if set, when the answer is
// not sent.
func (d *Device) answerAfterOr(latency time.Duration, method, rid string, status int, tmpl, req []byte, then, orElse func()) {
	if d.pendingCalls >= maxPendingMethods {
		d.unanswered(method, "busy")
		if orElse != nil {
			orElse()
		}
		return
	}
	d.pendingCalls++
	gen := d.gen
	body := expandTemplate(tmpl, templateVars{deviceID: d.id, method: method, status: status, request: req})
	d.reply(latency, func() {
		d.pendingCalls--
		if d.gen != gen || d.conn == nil {
			d.unanswered(method, "abandoned")
			if orElse != nil {
				orElse()
			}
			return
		}
		if err := d.publish(d.conn, iothub.MethodResponseTopic(status, rid), 0, body, then != nil); err != nil {
			d.debug().Err(err).Str("method", method).Msg("answer not sent")
		}
		d.stats.methodAnswers.Add(1)
		d.stats.countStatus(status)
		d.emit(EventMethodAnswered, method, status, "")
		if then != nil {
			then()
		}
	})
}

// onReboot answers, waits Delay, then drops the connection and stays
// offline for the sampled time.
func (d *Device) onReboot(rid string, req []byte) {
	rb := d.cfg.Behavior.Reboot
	status := rb.Status
	if status == 0 {
		status = 200
	}
	latency := sample(rb.Latency, d.rng)
	delay := sample(rb.Delay, d.rng)
	offline := max(sample(rb.Offline, d.rng), time.Millisecond)
	// The reboot is outstanding work from the call until the device has
	// gone down (then reboot counts it until the device is back), or until
	// it turns out it will not happen.
	d.busy(1)
	d.answerAfterOr(latency, MethodReboot, rid, status, rb.Payload, req, func() {
		gen := d.gen
		d.after(delay, func() {
			defer d.busy(-1)
			if d.gen != gen || d.conn == nil {
				return
			}
			d.reboot("reboot", offline)
		})
	}, func() { d.busy(-1) })
}

// reboot takes the device down for offline; it is outstanding work until
// the device has connected again.
func (d *Device) reboot(why string, offline time.Duration) {
	d.stats.reboots.Add(1)
	d.emit(EventReboot, "", 0, why)
	now := time.Now()
	d.rebootedAt = now.Add(offline)
	if d.downAt.IsZero() {
		d.downAt = now
		d.busy(1)
	}
	d.dropConnection(d.conn, why, offline)
}

// rebootDone finishes a reboot's outstanding work once the device is back.
func (d *Device) rebootDone() {
	if d.downAt.IsZero() {
		return
	}
	d.stats.rebootsBack.Add(1)
	d.record(Outcome{Kind: OutcomeReboot, Start: d.downAt, End: time.Now(), OK: true})
	d.downAt = time.Time{}
	d.busy(-1)
}

// afterReboot runs after every connect: it finishes what a reboot started.
func (d *Device) afterReboot() {
	if d.rebootedAt.IsZero() {
		return
	}
	at := d.rebootedAt
	d.rebootedAt = time.Time{}
	d.rebootDone()
	if rb := d.cfg.Behavior.Reboot; rb != nil && rb.ReportLastReboot {
		d.reportPatch(map[string]any{"lastReboot": at.UTC().Format(time.RFC3339Nano)})
	}
	if d.fw != nil && d.fw.phase == FirmwareRebooting {
		d.firmwareBooted()
	}
}

// sendTelemetry publishes one message and plans the next, for as long as
// connection gen lasts.
func (d *Device) sendTelemetry(gen uint32) {
	t := d.cfg.Behavior.Telemetry
	if d.gen != gen || d.conn == nil || t == nil {
		return
	}
	d.telemetrySeq++
	topic := iothub.TelemetryTopic(d.id)
	var body []byte
	if t.Template != nil {
		if d.telGen == nil {
			d.telGen = NewTelemetryGen(t.Template, d.id, d.cfg.Seed)
			d.telTopic = t.Template.Topic(d.id)
		}
		topic, body = d.telTopic, d.telGen.Next(time.Now())
	} else {
		body = telemetryBody(d.id, d.telemetrySeq, time.Now(), t.PayloadSize)
	}
	if err := d.publish(d.conn, topic, t.QoS, body, false); err != nil {
		d.debug().Err(err).Msg("telemetry not sent")
	} else {
		d.stats.telemetrySent.Add(1)
		d.emit(EventTelemetrySent, "", 0, "")
	}
	d.after(max(sample(t.Interval, d.rng), time.Millisecond), func() { d.sendTelemetry(gen) })
}

var (
	padMu sync.Mutex
	pad   []byte // shared filler, grown to the largest payload asked for
)

func padding(n int) []byte {
	padMu.Lock()
	defer padMu.Unlock()
	if len(pad) < n {
		pad = bytes.Repeat([]byte{'x'}, n)
	}
	return pad[:n]
}

// telemetryBody is {"deviceId":..,"seq":..,"ts":..,"pad":"xxx"} of about size bytes.
func telemetryBody(id string, seq int64, now time.Time, size int) []byte {
	b := make([]byte, 0, max(size, 64))
	b = append(b, `{"deviceId":"`...)
	b = append(b, id...)
	b = append(b, `","seq":`...)
	b = strconv.AppendInt(b, seq, 10)
	b = append(b, `,"ts":"`...)
	b = now.UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	if rest := size - len(b) - len(`,"pad":""}`); rest > 0 {
		b = append(b, `,"pad":"`...)
		b = append(b, padding(rest)...)
		b = append(b, '"')
	}
	return append(b, '}')
}
