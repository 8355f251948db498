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
	// without one (the Node SDK's default, iothub.md §5.2).
	DefaultMaxExecutionTime int64 = 3600
	// MaxMaxExecutionTime bounds maxExecutionTimeInSeconds (100 years; the
	// real hub documents no bound).
	MaxMaxExecutionTime int64 = 100 * 365 * 24 * 3600
)

// legacyTypes are the type names of older docs that the real hub rejects
// with 400 ErrorCode:GenericBadRequest;BadRequest (iothub.md §5.2).
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
	patch  []byte               // twin jobs: {"tags":...,"properties":{"desired":...}}
}

func badArg(format string, args ...any) error {
	return iothub.Errorf(iothub.CodeArgumentInvalid, format, args...)
}

// validate checks req against iothub.md §5.2 and returns the job it describes
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

// twinPatch checks a job's updateTwin (iothub.md §5.2, §3.5) and returns the
// force-update patch {tags, properties: {desired}} the engine applies to each
// twin. etag must be "*" or absent; properties.reported, if present, must be
// empty (the C# SDK serialises a whole Twin with an empty reported section);
// other members (deviceId, version, ...) are ignored. Property names and
// string values in tags and desired must be US-ASCII printable without
// $ ( ) < > @ , ; : \ " / [ ] ? = { } space and tab, as the jobs seed document
// requires, and names must also be valid twin keys (no '.').
func twinPatch(raw json.RawMessage) ([]byte, error) {
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil || doc == nil {
		return nil, badArg("updateTwin must be a JSON object: {etag, tags, properties: {desired}}")
	}
	if et, ok := doc["etag"]; ok && !isNull(et) {
		var s string
		if err := json.Unmarshal(et, &s); err != nil || strings.Trim(s, `"`) != "*" {
			return nil, badArg("updateTwin.etag must be \"*\": a scheduleUpdateTwin job is a force update")
		}
	}
	out := map[string]any{}
	if t, ok := doc["tags"]; ok && !isNull(t) {
		tags, err := section("tags", t, iothub.MaxTagsBytes)
		if err != nil {
			return nil, err
		}
		out["tags"] = tags
	}
	if pr, ok := doc["properties"]; ok && !isNull(pr) {
		var props map[string]json.RawMessage
		if err := json.Unmarshal(pr, &props); err != nil || props == nil {
			return nil, badArg("updateTwin.properties must be an object {desired}")
		}
		for k, v := range props {
			switch k {
			case "desired":
				if isNull(v) {
					continue
				}
				desired, err := section("properties.desired", v, iothub.MaxDesiredBytes)
				if err != nil {
					return nil, err
				}
				out["properties"] = map[string]any{"desired": desired}
			case "reported":
				var rep map[string]any
				if !isNull(v) && (json.Unmarshal(v, &rep) != nil || len(rep) > 0) {
					return nil, badArg("updateTwin.properties.reported cannot be set by a job; only tags and properties.desired")
				}
			default:
				return nil, badArg("updateTwin.properties has an unknown member %q; only desired may be set", k)
			}
		}
	}
	b, err := json.Marshal(out)
	if err != nil {
		return nil, badArg("updateTwin: %v", err)
	}
	return b, nil
}

// section decodes and checks tags or desired.
func section(name string, raw json.RawMessage, limit int) (map[string]any, error) {
	if len(raw) > 4*limit+1024 {
		return nil, badArg("updateTwin.%s is larger than its %d-byte limit", name, limit)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil || m == nil {
		return nil, badArg("updateTwin.%s must be a JSON object", name)
	}
	if err := checkObject("updateTwin."+name, m, 1); err != nil {
		return nil, err
	}
	if n := sizeOf(m); n > limit {
		return nil, badArg("updateTwin.%s is %d bytes; the limit is %d (iothub.md §3.5)", name, n, limit)
	}
	return m, nil
}

func checkObject(path string, m map[string]any, depth int) error {
	if depth > iothub.MaxTwinDepth {
		return badArg("%s is nested deeper than %d levels", path, iothub.MaxTwinDepth)
	}
	for k, v := range m {
		if err := iothub.ValidPropertyName(k); err != nil {
			return badArg("%s: %v", path, err)
		}
		if err := iothub.ValidMethodName(k); err != nil {
			return badArg("%s: property name %q has a character a job may not use: only US-ASCII printable characters except $ ( ) < > @ , ; : \\ \" / [ ] ? = { } space and tab", path, k)
		}
		if err := checkValue(path+"."+k, v, depth); err != nil {
			return err
		}
	}
	return nil
}

func checkValue(path string, v any, depth int) error {
	switch x := v.(type) {
	case map[string]any:
		return checkObject(path, x, depth+1)
	case []any:
		for i, e := range x {
			if err := checkValue(fmt.Sprintf("%s[%d]", path, i), e, depth+1); err != nil {
				return err
			}
		}
	case string:
		if len(x) > iothub.MaxStringValueBytes {
			return badArg("%s: the string is longer than %d bytes", path, iothub.MaxStringValueBytes)
		}
		if x != "" {
			if err := iothub.ValidMethodName(x); err != nil {
				return badArg("%s: value %q has a character a job may not use: only US-ASCII printable characters except $ ( ) < > @ , ; : \\ \" / [ ] ? = { } space and tab", path, x)
			}
		}
	}
	return nil
}

// sizeOf is the twin size rule of iothub.md §3.5: key lengths plus values,
// strings by length, numbers 8 bytes, booleans 4, objects recursively.
func sizeOf(v any) int {
	switch x := v.(type) {
	case map[string]any:
		n := 0
		for k, e := range x {
			n += len(k) + sizeOf(e)
		}
		return n
	case []any:
		n := 0
		for _, e := range x {
			n += sizeOf(e)
		}
		return n
	case string:
		return len(x)
	case json.Number:
		return 8
	case bool:
		return 4
	}
	return 0
}
