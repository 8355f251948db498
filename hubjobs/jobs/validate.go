package jobs

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs/query"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// Defaults and bounds of a job request.
const (
	// DefaultMaxExecutionTime is the maxExecutionTimeInSeconds of a request
	// without one (the Node SDK's default, docs/iothub.md §5.2).
	DefaultMaxExecutionTime int64 = 3600
	// MaxMaxExecutionTime bounds maxExecutionTimeInSeconds (100 years; the
	// real hub documents no bound).
	MaxMaxExecutionTime int64 = 100 * 365 * 24 * 3600
)

// legacyTypes are the type names of older docs that the real hub rejects
// with 400 ErrorCode:GenericBadRequest;BadRequest (docs/iothub.md §5.2).
var legacyTypes = map[JobType]bool{
	"scheduleDirectMethod":  true,
	"scheduleTwinUpdate":    true,
	"scheduleDirectRequest": true,
}

// plan is what a job executes, compiled from its Job: the parsed condition,
// the method call or the twin patch.
type plan struct {
	query  *query.Query
	method iothub.MethodRequest // method jobs
	patch  iothub.TwinPatch     // twin jobs: tags and desired, checked
}

func badArg(format string, args ...any) error {
	return iothub.Errorf(iothub.CodeArgumentInvalid, format, args...)
}

// validate checks req against docs/iothub.md §5.2 and returns the job it describes
// (status and times not yet set) with its plan. Errors are *iothub.Error with
// HTTP status 400.
func validate(req JobRequest, now time.Time) (Job, plan, error) {
	if err := iothub.ValidJobID(req.JobID); err != nil {
		return Job{}, plan{}, badArg("%s", err.Error())
	}
	job := Job{
		JobID:                     req.JobID,
		Type:                      req.Type,
		QueryCondition:            req.QueryCondition,
		MaxExecutionTimeInSeconds: DefaultMaxExecutionTime,
		StartTime:                 now,
	}
	switch req.Type {
	case TypeDeviceMethod:
		if req.CloudToDeviceMethod == nil {
			return Job{}, plan{}, iothub.Errorf(iothub.CodeArgumentNull, "a scheduleDeviceMethod job needs cloudToDeviceMethod")
		}
		m := *req.CloudToDeviceMethod
		m.Payload = bytes.Clone(m.Payload)
		job.CloudToDeviceMethod = &m
	case TypeUpdateTwin:
		if isNull(req.UpdateTwin) {
			return Job{}, plan{}, iothub.Errorf(iothub.CodeArgumentNull, "a scheduleUpdateTwin job needs updateTwin")
		}
		job.UpdateTwin = bytes.Clone(req.UpdateTwin)
	case "":
		return Job{}, plan{}, iothub.Errorf(iothub.CodeGenericBadRequest, "BadRequest: the job needs a type, scheduleDeviceMethod or scheduleUpdateTwin")
	default:
		if legacyTypes[req.Type] {
			return Job{}, plan{}, iothub.Errorf(iothub.CodeGenericBadRequest, "BadRequest")
		}
		return Job{}, plan{}, iothub.Errorf(iothub.CodeGenericBadRequest, "BadRequest: unknown job type %q; use scheduleDeviceMethod or scheduleUpdateTwin", req.Type)
	}
	if req.MaxExecutionTimeInSeconds != nil {
		n := *req.MaxExecutionTimeInSeconds
		if n <= 0 || n > MaxMaxExecutionTime {
			return Job{}, plan{}, badArg("maxExecutionTimeInSeconds must be between 1 and %d, got %d", MaxMaxExecutionTime, n)
		}
		job.MaxExecutionTimeInSeconds = n
	}
	if req.StartTime != nil && !req.StartTime.IsZero() {
		job.StartTime = req.StartTime.UTC()
	}
	p, err := compile(job)
	if err != nil {
		return Job{}, plan{}, err
	}
	return job, p, nil
}

// compile builds the plan of a valid job: at creation and again when a job
// is loaded from the store.
func compile(job Job) (plan, error) {
	var p plan
	cond := job.QueryCondition
	if strings.TrimSpace(cond) == "" {
		return p, iothub.Errorf(iothub.CodeArgumentNull, "the job needs a queryCondition; use '*' for every device")
	}
	if len(cond) > iothub.MaxQueryLength {
		return p, badArg("queryCondition is %d characters long; the limit is %d", len(cond), iothub.MaxQueryLength)
	}
	q, err := query.ParseCondition(cond)
	if err != nil {
		var qe *query.Error
		if errors.As(err, &qe) {
			return p, &iothub.Error{Code: iothub.CodeArgumentInvalid, Message: fmt.Sprintf("invalid queryCondition: %s", qe.Error()), Err: err}
		}
		return p, &iothub.Error{Code: iothub.CodeArgumentInvalid, Message: "invalid queryCondition: " + err.Error(), Err: err}
	}
	p.query = q
	switch job.Type {
	case TypeDeviceMethod:
		p.method = *job.CloudToDeviceMethod
		if err := p.method.Validate(); err != nil {
			// The whole job request is rejected as invalid: 400 also for a
			// payload over 128 KB, which a single call answers with 413.
			e := iothub.AsError(err)
			return p, &iothub.Error{Code: iothub.CodeArgumentInvalid, Message: "cloudToDeviceMethod: " + e.Message, Err: err}
		}
	case TypeUpdateTwin:
		if p.patch, err = twinPatch(job.UpdateTwin); err != nil {
			return p, err
		}
	}
	return p, nil
}

func isNull(raw json.RawMessage) bool {
	t := bytes.TrimSpace(raw)
	return len(t) == 0 || string(t) == "null"
}

// twinPatch checks a job's updateTwin and returns the force-update patch
// {tags, properties: {desired}} the engine applies to each twin, parsed and
// checked once for the whole job. The content obeys the twin rules the
// registry applies (iothub.ParseTwinPatch), so no device fails on a rule
// the job's creation could have checked, and the jobs rule on characters
// (TwinPatch.CheckJobCharacters). The frame is a job's: etag must be "*"
// or absent; properties.reported, if present, must be empty (the C# SDK
// serialises a whole Twin with an empty reported section); properties may
// hold nothing else; other members (deviceId, version, ...) are ignored.
func twinPatch(raw json.RawMessage) (iothub.TwinPatch, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil || doc == nil {
		return iothub.TwinPatch{}, badArg("updateTwin must be a JSON object: {etag, tags, properties: {desired}}")
	}
	if et, ok := doc["etag"]; ok && !isNull(et) {
		var s string
		if err := json.Unmarshal(et, &s); err != nil || strings.Trim(s, `"`) != "*" {
			return iothub.TwinPatch{}, badArg("updateTwin.etag must be \"*\": a scheduleUpdateTwin job is a force update")
		}
	}
	if pr, ok := doc["properties"]; ok && !isNull(pr) {
		var props map[string]json.RawMessage
		if err := json.Unmarshal(pr, &props); err != nil || props == nil {
			return iothub.TwinPatch{}, badArg("updateTwin.properties must be an object {desired}")
		}
		for k, v := range props {
			switch k {
			case "desired":
			case "reported":
				var rep map[string]any
				if !isNull(v) && (json.Unmarshal(v, &rep) != nil || len(rep) > 0) {
					return iothub.TwinPatch{}, badArg("updateTwin.properties.reported cannot be set by a job; only tags and properties.desired")
				}
			default:
				return iothub.TwinPatch{}, badArg("updateTwin.properties has an unknown member %q; only desired may be set", k)
			}
		}
	}
	p, err := iothub.ParseTwinPatch(raw)
	if err != nil {
		e := iothub.AsError(err)
		return iothub.TwinPatch{}, &iothub.Error{Code: e.Code, Message: "updateTwin: " + e.Message, Err: err}
	}
	if err := p.CheckJobCharacters(); err != nil {
		e := iothub.AsError(err)
		return iothub.TwinPatch{}, &iothub.Error{Code: e.Code, Message: "updateTwin: " + e.Message, Err: err}
	}
	return p, nil
}
