package runner

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"time"

	"github.com/fleetsim/fleetsim/devicesim"
	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/hubjobs/restapi"
)

// target is the hub a run plays against: the embedded stack, or a remote hub
// (a fleetsim serve, or a real IoT hub) through its service REST API.
type target interface {
	// hostname is the hub's host name, for device SAS tokens.
	hostname() string
	// transport is how simulated devices reach the hub.
	transport() devicesim.Transport
	// bulk applies a bulk registry request.
	bulk(ctx context.Context, ops []hubjobs.ExportImportDevice) (hubjobs.BulkResult, error)
	// setEnabled enables or disables a device (a disabled device is
	// disconnected and refused).
	setEnabled(ctx context.Context, id string, on bool) error
	// drop closes a device's connection at once, if the hub can; it
	// reports whether it could.
	drop(id string) bool
	createJob(ctx context.Context, req hubjobs.JobRequest) error
	cancelJob(ctx context.Context, id string) error
	job(ctx context.Context, id string) (hubjobs.Job, error)
	// rows returns a job's device records.
	rows(ctx context.Context, jobID string) ([]deviceOutcome, error)
	// local says the hub is in this process (cheap to ask often).
	local() bool
	// count returns how many devices a query condition selects, through
	// an IoT Hub query.
	count(ctx context.Context, condition string) (int, error)
	// sendC2D queues a cloud-to-device message for a device (c2d.go).
	sendC2D(ctx context.Context, id string, m c2dMessage) error
}

// stackTarget is the embedded hub.
type stackTarget struct{ st *hubjobs.Hub }

func (t stackTarget) hostname() string { return t.st.Hostname() }
func (t stackTarget) local() bool      { return true }

func (t stackTarget) transport() devicesim.Transport {
	tr := devicesim.Transport{Dial: t.st.DialDevice, DialTLS: t.st.DialDeviceTLS}
	// Only X.509 devices use TLS in process; without the hub's certificate
	// they fail to connect and say why.
	tr.TLSConfig, _ = t.st.DeviceTLSConfig()
	return tr
}

func (t stackTarget) bulk(ctx context.Context, ops []hubjobs.ExportImportDevice) (hubjobs.BulkResult, error) {
	return t.st.BulkUpdate(ctx, ops)
}

func (t stackTarget) setEnabled(ctx context.Context, id string, on bool) error {
	return t.st.SetDeviceEnabled(ctx, id, on)
}

func (t stackTarget) drop(id string) bool {
	t.st.Disconnect(id)
	return true
}

func (t stackTarget) createJob(ctx context.Context, req hubjobs.JobRequest) error {
	_, err := t.st.CreateJob(ctx, req)
	return err
}

func (t stackTarget) cancelJob(ctx context.Context, id string) error {
	_, err := t.st.CancelJob(ctx, id)
	return err
}

func (t stackTarget) job(_ context.Context, id string) (hubjobs.Job, error) {
	return t.st.Job(id)
}

func (t stackTarget) rows(_ context.Context, jobID string) ([]deviceOutcome, error) {
	var out []deviceOutcome
	t.st.DeviceJobRows(jobID, func(doc map[string]any) bool {
		out = append(out, outcomeOf(doc))
		return true
	})
	return out, nil
}

func (t stackTarget) count(_ context.Context, cond string) (int, error) {
	page, err := t.st.Query(countQuery(cond), 1, "")
	if err != nil {
		return 0, err
	}
	if len(page.Items) == 0 {
		return 0, nil
	}
	return countOf(page.Items[0])
}

// Remote says how to reach a hub that runs elsewhere: a fleetsim serve or a
// real Azure IoT hub.
type Remote struct {
	// ServiceConnectionString is an iothubowner (or registry write and
	// service connect) connection string: HostName=...;SharedAccessKeyName=...;SharedAccessKey=...
	ServiceConnectionString string
	// RESTURL is the service API, e.g. https://127.0.0.1:8443; default
	// https://{HostName}.
	RESTURL string
	// MQTTURL is where devices connect, e.g. ssl://127.0.0.1:8883 or
	// wss://host/$iothub/websocket; default ssl://{HostName}:8883.
	MQTTURL string
	// TLSConfig verifies the hub for both; nil uses the system roots (a
	// real IoT hub).
	TLSConfig *tls.Config
}

// restTarget is a remote hub through its REST API and MQTT endpoint.
type restTarget struct {
	c    *restapi.Client
	host string
	mqtt string
	tls  *tls.Config
}

func newRESTTarget(r Remote) (*restTarget, error) {
	c, err := restapi.NewClient(r.ServiceConnectionString, restapi.ClientOptions{BaseURL: r.RESTURL, TLSConfig: r.TLSConfig})
	if err != nil {
		return nil, err
	}
	t := &restTarget{c: c, host: c.HostName(), mqtt: r.MQTTURL, tls: r.TLSConfig}
	if t.mqtt == "" {
		t.mqtt = "ssl://" + t.host + ":8883"
	}
	return t, nil
}

func (t *restTarget) hostname() string { return t.host }
func (t *restTarget) local() bool      { return false }

func (t *restTarget) transport() devicesim.Transport {
	return devicesim.Transport{BrokerURL: t.mqtt, TLSConfig: t.tls}
}

func (t *restTarget) bulk(ctx context.Context, ops []hubjobs.ExportImportDevice) (hubjobs.BulkResult, error) {
	var res hubjobs.BulkResult
	// IoT Hub takes at most 100 devices per bulk request.
	for start := 0; start < len(ops); start += 100 {
		b, err := t.c.BulkUpdate(ctx, ops[start:min(start+100, len(ops))])
		if err != nil {
			return res, err
		}
		var part hubjobs.BulkResult
		if err := json.Unmarshal(b, &part); err != nil {
			return res, fmt.Errorf("bulk registry answer: %w", err)
		}
		res.Errors = append(res.Errors, part.Errors...)
	}
	res.IsSuccessful = len(res.Errors) == 0
	return res, nil
}

func (t *restTarget) setEnabled(ctx context.Context, id string, on bool) error {
	b, err := t.c.GetDevice(ctx, id)
	if err != nil {
		return err
	}
	var d map[string]any
	if err := json.Unmarshal(b, &d); err != nil {
		return fmt.Errorf("device %s: %w", id, err)
	}
	d["status"] = hubjobs.DeviceDisabled
	if on {
		d["status"] = hubjobs.DeviceEnabled
	}
	_, err = t.c.PutDevice(ctx, d, id, "*")
	return err
}

// drop is not possible through the service API; disconnect waves disable
// devices instead.
func (t *restTarget) drop(string) bool { return false }

func (t *restTarget) createJob(ctx context.Context, req hubjobs.JobRequest) error {
	_, err := t.c.CreateJob(ctx, req.JobID, req)
	return err
}

func (t *restTarget) cancelJob(ctx context.Context, id string) error {
	_, err := t.c.CancelJob(ctx, id)
	return err
}

// remoteJob is a JobResponse as any hub sends it; times are read leniently
// (the real hub sends endTime as a far-future sentinel while a job runs).
type remoteJob struct {
	hubjobs.Job
	CreatedTime string `json:"createdTime"`
	StartTime   string `json:"startTime"`
	EndTime     string `json:"endTime"`
}

func (t *restTarget) job(ctx context.Context, id string) (hubjobs.Job, error) {
	b, err := t.c.GetJob(ctx, id)
	if err != nil {
		return hubjobs.Job{}, err
	}
	var r remoteJob
	if err := json.Unmarshal(b, &r); err != nil {
		return hubjobs.Job{}, fmt.Errorf("job %s: %w", id, err)
	}
	j := r.Job
	j.CreatedTime, j.StartTime = lenientTime(r.CreatedTime), lenientTime(r.StartTime)
	if end := lenientTime(r.EndTime); !end.IsZero() && j.Status.Terminal() {
		j.EndTime = &end
	}
	return j, nil
}

func (t *restTarget) rows(ctx context.Context, jobID string) ([]deviceOutcome, error) {
	items, err := t.c.Query(ctx, "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '"+jobID+"'", 1000)
	if err != nil {
		return nil, err
	}
	out := make([]deviceOutcome, 0, len(items))
	for _, it := range items {
		var doc map[string]any
		if json.Unmarshal(it, &doc) == nil {
			out = append(out, outcomeOf(doc))
		}
	}
	return out, nil
}

func (t *restTarget) count(ctx context.Context, cond string) (int, error) {
	items, err := t.c.Query(ctx, countQuery(cond), 1)
	if err != nil {
		return 0, err
	}
	if len(items) == 0 {
		return 0, nil
	}
	var row any
	if err := json.Unmarshal(items[0], &row); err != nil {
		return 0, fmt.Errorf("count: %w", err)
	}
	return countOf(row)
}

// lenientTime reads a JSON time with or without a zone; the zero time and
// year-9999 sentinels read as zero.
func lenientTime(s string) time.Time {
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.9999999"} {
		if t, err := time.Parse(layout, s); err == nil {
			if t.Year() <= 1 || t.Year() >= 9999 {
				return time.Time{}
			}
			return t.UTC()
		}
	}
	return time.Time{}
}
