package jobs

import (
	"context"
	"encoding/json"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs/query"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// JobType is the kind of a job (docs/iothub.md §5.2).
type JobType string

// The job types the hub accepts. The older names of the docs
// (scheduleDirectMethod, scheduleTwinUpdate, scheduleDirectRequest) are
// rejected with 400 GenericBadRequest, as the real hub rejects them.
const (
	TypeDeviceMethod JobType = "scheduleDeviceMethod"
	TypeUpdateTwin   JobType = "scheduleUpdateTwin"
)

// Status is the status of a job or of a device job. Jobs use queued,
// scheduled, running, completed, failed and cancelled (two l); device jobs
// use pending, scheduled, running, completed, failed and canceled (one l),
// as the C# SDK's enums spell them (docs/iothub.md §5.2, §5.3, §5.6).
type Status string

// Job statuses (docs/iothub.md §5.3).
const (
	StatusQueued    Status = "queued"
	StatusScheduled Status = "scheduled"
	StatusRunning   Status = "running"
	StatusCompleted Status = "completed"
	StatusFailed    Status = "failed"
	StatusCancelled Status = "cancelled"
)

// Device-job statuses (docs/iothub.md §5.6). Scheduled, running, completed and
// failed are spelled as for jobs.
const (
	DeviceJobPending  Status = "pending"
	DeviceJobCanceled Status = "canceled"
)

// Terminal reports whether s is final: completed, failed, cancelled, or the
// device-job canceled.
func (s Status) Terminal() bool {
	switch s {
	case StatusCompleted, StatusFailed, StatusCancelled, DeviceJobCanceled:
		return true
	}
	return false
}

// JobRequest is the body of PUT /jobs/v2/{id} (docs/iothub.md §5.2, docs/sdk-notes.md
// §1.5). The REST layer puts the path's id in JobID after checking that the
// body's, if any, matches.
type JobRequest struct {
	JobID string  `json:"jobId"`
	Type  JobType `json:"type"`
	// CloudToDeviceMethod is the call of a scheduleDeviceMethod job.
	CloudToDeviceMethod *iothub.MethodRequest `json:"cloudToDeviceMethod,omitempty"`
	// UpdateTwin is the patch of a scheduleUpdateTwin job:
	// {etag, tags, properties: {desired}}; etag must be "*" or absent.
	// Other members (the C# SDK serialises a whole Twin) are ignored.
	UpdateTwin json.RawMessage `json:"updateTwin,omitempty"`
	// QueryCondition selects the devices: a WHERE condition alone, "*", or
	// "FROM devices.modules WHERE ...".
	QueryCondition string `json:"queryCondition"`
	// StartTime is when the job starts; nil (JSON null or absent, as the
	// Node SDK's promise form sends it) means now.
	StartTime *time.Time `json:"startTime"`
	// MaxExecutionTimeInSeconds bounds the job's run; nil means 3600, the
	// Node SDK's own default (IoT Hub requires one; docs/iothub.md §5.2).
	MaxExecutionTimeInSeconds *int64 `json:"maxExecutionTimeInSeconds,omitempty"`
}

// Statistics is a job's deviceJobStatistics (docs/iothub.md §5.3). DeviceCount
// always equals PendingCount + RunningCount + SucceededCount + FailedCount;
// canceled device jobs count as failed.
type Statistics struct {
	DeviceCount    int `json:"deviceCount"`
	FailedCount    int `json:"failedCount"`
	SucceededCount int `json:"succeededCount"`
	RunningCount   int `json:"runningCount"`
	PendingCount   int `json:"pendingCount"`
}

// Job is a job as GET /jobs/v2/{id} returns it: the swagger JobResponse
// (docs/iothub.md §5.3) plus "pacing", fleetsim's extension naming the pacing
// profile the job ran under.
type Job struct {
	JobID          string    `json:"jobId"`
	QueryCondition string    `json:"queryCondition"`
	CreatedTime    time.Time `json:"createdTime"`
	StartTime      time.Time `json:"startTime"`
	// EndTime is set once the job is terminal. It is left out before, not
	// the real hub's year-9999 sentinel (docs/iothub.md §5.3).
	EndTime                   *time.Time            `json:"endTime,omitempty"`
	MaxExecutionTimeInSeconds int64                 `json:"maxExecutionTimeInSeconds"`
	Type                      JobType               `json:"type"`
	CloudToDeviceMethod       *iothub.MethodRequest `json:"cloudToDeviceMethod,omitempty"`
	UpdateTwin                json.RawMessage       `json:"updateTwin,omitempty"`
	Status                    Status                `json:"status"`
	FailureReason             string                `json:"failureReason,omitempty"`
	StatusMessage             string                `json:"statusMessage,omitempty"`
	DeviceJobStatistics       Statistics            `json:"deviceJobStatistics"`
	Pacing                    string                `json:"pacing,omitempty"`
}

// DeviceJobError is the error of a failed (or canceled) device job
// (docs/iothub.md §5.6).
type DeviceJobError struct {
	Code        string `json:"code"`
	Description string `json:"description"`
}

// Device-job error codes fleetsim sets itself. The others come from the
// hub's answer: DeviceNotOnline, GatewayTimeout, DeviceNotFound, ...
const (
	// ErrorCodeJobExpired: the job reached maxExecutionTimeInSeconds before
	// the device was done (a call in flight is cancelled).
	ErrorCodeJobExpired = "JobExpired"
	// ErrorCodeJobCancelled: the job was cancelled before the device was
	// reached; the device job is "canceled".
	ErrorCodeJobCancelled = "JobCancelled"
)

// DeviceResult is the durable outcome of one device job: what the store
// keeps per device (see Store). Status is completed, failed or canceled.
type DeviceResult struct {
	JobID     string    `json:"jobId"`
	DeviceID  string    `json:"deviceId"`
	Status    Status    `json:"status"`
	StartTime time.Time `json:"startTimeUtc"`
	EndTime   time.Time `json:"endTimeUtc"`
	// Response is the device's answer to a method job; nil for twin jobs
	// and failures.
	Response *iothub.MethodResult `json:"response,omitempty"`
	// Error says why the device job failed; nil when it completed.
	Error *DeviceJobError `json:"error,omitempty"`
}

// MethodInvoker calls a direct method on one device and waits for its
// answer (docs/iothub.md §2). Any answer of the device, whatever its status, is a
// MethodResult; errors are *iothub.Error: DeviceNotOnline (404103),
// GatewayTimeout (504101), DeviceNotFound (404001). It must return soon after
// ctx ends.
type MethodInvoker interface {
	InvokeMethod(ctx context.Context, deviceID string, req iothub.MethodRequest) (iothub.MethodResult, error)
}

// TwinPatcher force-updates one twin: it applies patch, tags and desired
// properties that the job checked once against the twin rules when it was
// created, whatever the twin's etag, and pushes the desired change to the
// device. Errors are *iothub.Error.
type TwinPatcher interface {
	ForceUpdateTwin(ctx context.Context, deviceID string, patch iothub.TwinPatch) error
}

// DeviceSelector evaluates a job's queryCondition when the job starts and
// returns the ids of the devices it selects, in any order; duplicates are
// dropped. Errors fail the job with the error's text as failureReason.
type DeviceSelector interface {
	SelectDeviceIDs(ctx context.Context, q *query.Query) ([]string, error)
}
