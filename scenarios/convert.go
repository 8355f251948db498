package scenarios

import (
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"

	"github.com/fleetsim/fleetsim/devicesim"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// distribution converts a schema distribution; nil stays nil.
func (d *decoder) distribution(dist *Distribution) devicesim.Distribution {
	switch {
	case dist == nil:
		return nil
	case dist.Constant != nil:
		return devicesim.Constant(dist.Constant.D())
	case len(dist.Uniform) == 2:
		return devicesim.Uniform{Min: dist.Uniform[0].D(), Max: dist.Uniform[1].D()}
	case dist.Normal != nil:
		return devicesim.Normal{Mean: dist.Normal.Mean.D(), StdDev: dist.Normal.StdDev.D()}
	case dist.LogNormal != nil:
		return devicesim.LogNormal{Median: dist.LogNormal.Median.D(), Sigma: dist.LogNormal.Sigma}
	case dist.Exponential != nil:
		return devicesim.Exponential{Mean: dist.Exponential.D()}
	case dist.Percentiles != nil:
		var p devicesim.Percentiles
		for _, pt := range dist.points() {
			p.Points = append(p.Points, devicesim.Percentile{P: pt.P, D: pt.D})
		}
		return p
	}
	return nil
}

// convertBehavior validates a group's behaviour and converts it into the
// devicesim form.
func (d *decoder) convertBehavior(b *BehaviorSpec, path string) devicesim.Behavior {
	var out devicesim.Behavior
	mk := mapKey{m: mapPointer(b.Methods)}
	for _, name := range sortedKeys(b.Methods) {
		m := b.Methods[name]
		mp := join(path, "methods."+name)
		mk.key = name
		if name != devicesim.MethodDefault {
			if err := iothub.ValidMethodName(name); err != nil {
				d.problem(d.where(mk, &b.Methods), mp, "%v", err)
			}
		}
		if name == devicesim.MethodReboot && b.Reboot != nil || name == devicesim.MethodFirmwareUpdate && b.FirmwareUpdate != nil {
			d.problem(d.where(mk, &b.Methods), mp, "%s is handled by the built-in behavior.%s; remove one of the two", name, name)
		}
		if m == nil {
			m = &MethodSpec{}
		}
		d.probability(&m.NoAnswer, join(mp, "noAnswer"), m)
		d.probability(&m.Disconnect, join(mp, "disconnect"), m)
		mb := devicesim.MethodBehavior{
			Latency:               d.distribution(m.Latency),
			NoAnswerProbability:   m.NoAnswer,
			DisconnectProbability: m.Disconnect,
		}
		if m.NoAnswer >= 0 && m.NoAnswer <= 1 && m.Disconnect >= 0 && m.Disconnect <= 1 && m.NoAnswer+m.Disconnect > 1+1e-9 {
			d.problem(d.where(&m.NoAnswer, m), mp, "noAnswer + disconnect is %g, above 1", m.NoAnswer+m.Disconnect)
		}
		mb.Statuses = d.statusMix(m, mp)
		switch {
		case m.Payload != nil && m.PayloadTemplate != "":
			d.problem(d.where(&m.PayloadTemplate, m), join(mp, "payloadTemplate"), "give payload or payloadTemplate, not both")
		case m.PayloadTemplate != "":
			if !json.Valid([]byte(templateProbe.Replace(m.PayloadTemplate))) {
				d.problem(d.where(&m.PayloadTemplate, m), join(mp, "payloadTemplate"), "is not JSON once its placeholders are filled in")
			}
			mb.Payload = json.RawMessage(m.PayloadTemplate)
		default:
			mb.Payload = d.payloadJSON(m.Payload, &m.Payload, join(mp, "payload"))
		}
		if out.Methods == nil {
			out.Methods = map[string]devicesim.MethodBehavior{}
		}
		out.Methods[name] = mb
	}
	if r := b.Reboot; r != nil {
		rp := join(path, "reboot")
		d.statusCode(&r.Status, join(rp, "status"), r)
		out.Reboot = &devicesim.RebootBehavior{
			Status:           r.Status,
			Latency:          d.distribution(r.Latency),
			Payload:          d.payloadJSON(r.Payload, &r.Payload, join(rp, "payload")),
			Delay:            d.distribution(r.Delay),
			Offline:          d.distribution(r.Offline),
			ReportLastReboot: r.ReportLastReboot,
		}
	}
	if fw := b.FirmwareUpdate; fw != nil {
		fp := join(path, "firmwareUpdate")
		d.statusCode(&fw.Status, join(fp, "status"), fw)
		if fw.ProgressSteps < 0 || fw.ProgressSteps > 100 {
			d.problem(d.where(&fw.ProgressSteps, fw), join(fp, "progressSteps"), "%d is outside 0..100", fw.ProgressSteps)
		}
		fail := map[devicesim.FirmwarePhase]float64{}
		for _, ph := range []struct {
			p     *float64
			key   string
			phase devicesim.FirmwarePhase
		}{
			{&fw.Fail.Download, "download", devicesim.FirmwareDownloading},
			{&fw.Fail.Verify, "verify", devicesim.FirmwareVerifying},
			{&fw.Fail.Apply, "apply", devicesim.FirmwareApplying},
			{&fw.Fail.Reboot, "reboot", devicesim.FirmwareRebooting},
		} {
			d.probability(ph.p, join(fp, "fail."+ph.key), fw)
			if *ph.p > 0 {
				fail[ph.phase] = *ph.p
			}
		}
		if fw.RollbackTime != nil && !fw.Rollback {
			d.problem(d.where(&fw.RollbackTime, fw), join(fp, "rollbackTime"), "rollbackTime needs rollback: true")
		}
		out.FirmwareUpdate = &devicesim.FirmwareBehavior{
			Status:         fw.Status,
			Latency:        d.distribution(fw.Latency),
			InitialVersion: fw.InitialVersion,
			Download:       d.distribution(fw.Download),
			Verify:         d.distribution(fw.Verify),
			Apply:          d.distribution(fw.Apply),
			Reboot:         d.distribution(fw.Reboot),
			ProgressSteps:  fw.ProgressSteps,
			Rollback:       fw.Rollback,
			RollbackTime:   d.distribution(fw.RollbackTime),
		}
		if len(fail) > 0 {
			out.FirmwareUpdate.Failure = fail
		}
	}
	if ds := b.Desired; ds != nil {
		dp := join(path, "desired")
		switch ds.Format {
		case "", "value":
			ds.Format = "value"
			out.Desired.Format = devicesim.AckValue
		case "pnp":
			out.Desired.Format = devicesim.AckPnP
		case "none":
			out.Desired.Format = devicesim.AckNone
		default:
			d.problem(d.where(&ds.Format, ds), join(dp, "format"), "unknown format %q: want value, pnp or none", ds.Format)
		}
		d.probability(&ds.Fail, join(dp, "fail"), ds)
		d.probability(&ds.NoAck, join(dp, "noAck"), ds)
		out.Desired.Delay = d.distribution(ds.Delay)
		out.Desired.FailProbability = ds.Fail
		out.Desired.NoAckProbability = ds.NoAck
	}
	c := &b.Connectivity
	cp := join(path, "connectivity")
	d.probability(&c.OfflineAtStart, join(cp, "offlineAtStart"), c)
	out.Connectivity = devicesim.Connectivity{
		StartSpread:    c.StartSpread.D(),
		OfflineAtStart: c.OfflineAtStart,
		OfflineFor:     d.distribution(c.OfflineFor),
		TokenLifetime:  c.TokenLifetime.D(),
		KeepAlive:      c.KeepAlive.Duration.D(),
	}
	if c.KeepAlive.Off {
		out.Connectivity.KeepAlive = -1
	}
	if c.OfflineFor != nil && c.OfflineAtStart == 0 {
		d.problem(d.where(&c.OfflineFor, c), join(cp, "offlineFor"), "offlineFor needs offlineAtStart above 0")
	}
	if c.TokenLifetime != 0 && c.TokenLifetime < Duration(4*time.Second) {
		d.problem(d.where(&c.TokenLifetime, c), join(cp, "tokenLifetime"), "%s is too short: at least 4s", c.TokenLifetime)
	}
	if ka := c.KeepAlive.Duration; ka != 0 && (ka < Duration(time.Second) || ka > Duration(65535*time.Second) || ka%Duration(time.Second) != 0) {
		d.problem(d.where(&c.KeepAlive, c), join(cp, "keepAlive"), "%s is not a whole number of seconds in 1s..65535s", ka)
	}
	switch c.Subscribe {
	case "", "noSession":
		out.Connectivity.Subscribe = devicesim.SubscribeNoSession
	case "always":
		out.Connectivity.Subscribe = devicesim.SubscribeAlways
	case "nodeSDK":
		out.Connectivity.Subscribe = devicesim.SubscribeNodeSDK
	default:
		msg := fmt.Sprintf("unknown mode %q: want noSession, always or nodeSDK", c.Subscribe)
		if s := suggest(c.Subscribe, []string{"noSession", "always", "nodeSDK"}); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		d.problem(d.where(&c.Subscribe, c), join(cp, "subscribe"), "%s", msg)
	}
	if fl := c.Flapping; fl != nil {
		out.Connectivity.Flapping = &devicesim.Flapping{MTBF: d.distribution(fl.MTBF), MTTR: d.distribution(fl.MTTR)}
	}
	if t := b.Telemetry; t != nil {
		tp := join(path, "telemetry")
		if t.Size == 0 {
			t.Size = 100
		}
		if t.Size < 0 || t.Size > iothub.MaxTelemetryBytes {
			d.problem(d.where(&t.Size, t), join(tp, "size"), "%d is outside 0..%d bytes", t.Size, iothub.MaxTelemetryBytes)
		}
		if t.QoS == nil {
			t.QoS = new(int)
			*t.QoS = 1
		}
		if *t.QoS != 0 && *t.QoS != 1 {
			d.problem(d.where(t.QoS, t), join(tp, "qos"), "QoS %d: IoT Hub allows 0 or 1", *t.QoS)
		}
		if id := t.Interval; id != nil && id.Constant != nil && *id.Constant == 0 {
			d.problem(d.where(&t.Interval, t), join(tp, "interval"), "the interval must be above 0")
		}
		out.Telemetry = &devicesim.TelemetryBehavior{Interval: d.distribution(t.Interval), PayloadSize: t.Size, QoS: byte(max(min(*t.QoS, 1), 0)),
			Template: d.telemetryTemplate(t, tp)}
	}
	if c := b.C2D; c != nil {
		out.C2D = &devicesim.C2DBehavior{Reaction: devicesim.C2DReaction(c.Reaction), Offline: d.distribution(c.Offline)}
		if err := out.C2D.Validate(); err != nil {
			d.problem(d.where(&c.Reaction, c), join(join(path, "c2d"), "reaction"), "%v", err)
		}
	}
	if b.Reported != nil {
		if msg := checkTwin(iothub.TwinReported, b.Reported, false); msg != "" {
			d.problem(d.where(&b.Reported), join(path, "reported"), "%s", msg)
		}
		out.Reported = b.Reported
	}
	return out
}

// statusMix validates a method's status mix: three-digit codes whose
// probabilities sum to 1.
func (d *decoder) statusMix(m *MethodSpec, path string) []devicesim.WeightedStatus {
	if len(m.Statuses) == 0 {
		return nil
	}
	codes := make([]int, 0, len(m.Statuses))
	for c := range m.Statuses {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	var sum float64
	var mix []devicesim.WeightedStatus
	mk := mapKey{m: mapPointer(m.Statuses)}
	for _, c := range codes {
		w := m.Statuses[c]
		mk.key = strconv.Itoa(c)
		at := d.where(mk, &m.Statuses)
		if c < 100 || c > 999 {
			d.problem(at, join(path, "statuses"), "status %d is not a three-digit status code", c)
		}
		if w < 0 || w > 1 || math.IsNaN(w) {
			d.problem(at, join(path, "statuses"), "probability %v of status %d is outside 0..1", w, c)
		}
		sum += w
		mix = append(mix, devicesim.WeightedStatus{Status: c, Weight: w})
	}
	if math.Abs(sum-1) > 1e-6 {
		d.problem(d.where(&m.Statuses, m), join(path, "statuses"), "the probabilities sum to %.6g, not 1", sum)
	}
	return mix
}
