package scenarios

import (
	"bytes"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs/jobs"
)

// Request returns the Jobs v2 request that creates the job when the action
// plays at now: start time now + StartIn (UTC), maxExecutionTimeInSeconds
// from MaxExecutionTime, and a copy of the method call or twin patch, so the
// caller may change the request freely.
func (a JobAction) Request(now time.Time) jobs.JobRequest {
	start := now.Add(a.StartIn).UTC()
	secs := int64(a.MaxExecutionTime / time.Second)
	req := jobs.JobRequest{
		JobID:                     a.JobID,
		Type:                      a.Type,
		QueryCondition:            a.Condition,
		StartTime:                 &start,
		MaxExecutionTimeInSeconds: &secs,
		UpdateTwin:                bytes.Clone(a.UpdateTwin),
	}
	if a.Method != nil {
		m := *a.Method
		m.Payload = bytes.Clone(a.Method.Payload)
		if p := a.Method.ResponseTimeoutInSeconds; p != nil {
			v := *p
			m.ResponseTimeoutInSeconds = &v
		}
		if p := a.Method.ConnectTimeoutInSeconds; p != nil {
			v := *p
			m.ConnectTimeoutInSeconds = &v
		}
		req.CloudToDeviceMethod = &m
	}
	return req
}
