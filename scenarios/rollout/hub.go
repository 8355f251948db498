package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/hubjobs/restapi"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// Hub is the part of IoT Hub's public service API the engine uses: Jobs v2
// (create, get, cancel) and queries of devices and devices.jobs. HubOf and
// ClientHub adapt fleetsim's in-process hub and the REST client (for
// fleetsim serve and a real IoT hub) to it. Errors are *iothub.Error where
// the hub answered with one (a 429 when too many jobs run, a 404 for an
// unknown job).
type Hub interface {
	CreateJob(ctx context.Context, req JobRequest) (Job, error)
	GetJob(ctx context.Context, id string) (Job, error)
	CancelJob(ctx context.Context, id string) (Job, error)
	// QueryPage runs an IoT Hub query and returns one page of items as JSON
	// and the continuation token ("" on the last page).
	QueryPage(ctx context.Context, query string, continuation string) ([]json.RawMessage, string, error)
}

// JobRequest is the body of PUT /jobs/v2/{id}.
type JobRequest struct {
	JobID                     string          `json:"jobId"`
	Type                      string          `json:"type"`
	CloudToDeviceMethod       *MethodCall     `json:"cloudToDeviceMethod,omitempty"`
	UpdateTwin                json.RawMessage `json:"updateTwin,omitempty"`
	QueryCondition            string          `json:"queryCondition"`
	StartTime                 *time.Time      `json:"startTime,omitempty"`
	MaxExecutionTimeInSeconds *int64          `json:"maxExecutionTimeInSeconds,omitempty"`
}

// MethodCall is the cloudToDeviceMethod of a method job.
type MethodCall struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload,omitempty"`
	ResponseTimeoutInSeconds *int            `json:"responseTimeoutInSeconds,omitempty"`
	ConnectTimeoutInSeconds  *int            `json:"connectTimeoutInSeconds,omitempty"`
}

// Job types.
const (
	TypeMethod = "scheduleDeviceMethod"
	TypeTwin   = "scheduleUpdateTwin"
)

// Job is the part of a JobResponse the engine reads.
type Job struct {
	JobID               string     `json:"jobId"`
	Status              string     `json:"status"`
	EndTime             *time.Time `json:"endTime,omitempty"`
	FailureReason       string     `json:"failureReason,omitempty"`
	DeviceJobStatistics Stats      `json:"deviceJobStatistics"`
}

// Stats is a job's deviceJobStatistics.
type Stats struct {
	DeviceCount    int `json:"deviceCount"`
	FailedCount    int `json:"failedCount"`
	SucceededCount int `json:"succeededCount"`
	RunningCount   int `json:"runningCount"`
	PendingCount   int `json:"pendingCount"`
}

// terminal reports whether a job status is final.
func terminal(status string) bool {
	switch status {
	case "completed", "failed", "cancelled":
		return true
	}
	return false
}

// convert re-encodes a value of one JSON shape as another.
func convert[T any](v any) (T, error) {
	var out T
	b, err := json.Marshal(v)
	if err != nil {
		return out, err
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return out, fmt.Errorf("unexpected job document: %w", err)
	}
	return out, nil
}

// inProcess adapts the in-process hub.
type inProcess struct{ h *hubjobs.Hub }

// HubOf returns the engine's view of an in-process hub.
func HubOf(h *hubjobs.Hub) Hub { return inProcess{h} }

func (a inProcess) CreateJob(ctx context.Context, req JobRequest) (Job, error) {
	r, err := convert[hubjobs.JobRequest](req)
	if err != nil {
		return Job{}, err
	}
	j, err := a.h.CreateJob(ctx, r)
	if err != nil {
		return Job{}, err
	}
	return convert[Job](j)
}

func (a inProcess) GetJob(_ context.Context, id string) (Job, error) {
	j, err := a.h.Job(id)
	if err != nil {
		return Job{}, err
	}
	return convert[Job](j)
}

func (a inProcess) CancelJob(ctx context.Context, id string) (Job, error) {
	j, err := a.h.CancelJob(ctx, id)
	if err != nil {
		return Job{}, err
	}
	return convert[Job](j)
}

func (a inProcess) QueryPage(_ context.Context, q, cont string) ([]json.RawMessage, string, error) {
	p, err := a.h.Query(q, 1000, cont)
	if err != nil {
		return nil, "", err
	}
	items := make([]json.RawMessage, len(p.Items))
	for i, it := range p.Items {
		if items[i], err = json.Marshal(it); err != nil {
			return nil, "", err
		}
	}
	return items, p.Continuation, nil
}

// restHub adapts the REST client.
type restHub struct{ c *restapi.Client }

// ClientHub returns the engine's view of a hub reached through its REST API
// (fleetsim serve or a real IoT hub).
func ClientHub(c *restapi.Client) Hub { return restHub{c} }

func (a restHub) CreateJob(ctx context.Context, req JobRequest) (Job, error) {
	b, err := a.c.CreateJob(ctx, req.JobID, req)
	if err != nil {
		return Job{}, err
	}
	return convert[Job](b)
}

func (a restHub) GetJob(ctx context.Context, id string) (Job, error) {
	b, err := a.c.GetJob(ctx, id)
	if err != nil {
		return Job{}, err
	}
	return convert[Job](b)
}

func (a restHub) CancelJob(ctx context.Context, id string) (Job, error) {
	b, err := a.c.CancelJob(ctx, id)
	if err != nil {
		return Job{}, err
	}
	return convert[Job](b)
}

func (a restHub) QueryPage(ctx context.Context, q, cont string) ([]json.RawMessage, string, error) {
	p, err := a.c.QueryPage(ctx, q, 1000, cont)
	if err != nil {
		return nil, "", err
	}
	return p.Items, p.Continuation, nil
}

// status returns the HTTP status of a hub error, 0 for other errors.
func status(err error) int {
	var ie *iothub.Error
	if errors.As(err, &ie) {
		return ie.Code.Status()
	}
	return 0
}
