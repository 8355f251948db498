package restapi

import (
	"encoding/json"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// Placeholders until the hubjobs engine lands; they become aliases of
// hubjobs.JobRequest and hubjobs.Job.
type (
	jobRequestT struct {
		JobID                     string                `json:"jobId"`
		Type                      string                `json:"type"`
		CloudToDeviceMethod       *iothub.MethodRequest `json:"cloudToDeviceMethod,omitempty"`
		UpdateTwin                json.RawMessage       `json:"updateTwin,omitempty"`
		QueryCondition            string                `json:"queryCondition"`
		StartTime                 *time.Time            `json:"startTime"`
		MaxExecutionTimeInSeconds *int64                `json:"maxExecutionTimeInSeconds,omitempty"`
	}
	jobT struct {
		JobID  string `json:"jobId"`
		Type   string `json:"type"`
		Status string `json:"status"`
	}
)
