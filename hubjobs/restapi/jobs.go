package restapi

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs/jobs"
	"github.com/fleetsim/fleetsim/hubjobs/query"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// Jobs is what the API needs from the Jobs v2 engine. Errors are
// *iothub.Error (JobNotFound, JobAlreadyExists, ArgumentInvalid,
// ArgumentNull, GenericBadRequest, ThrottlingMaxActiveJobCountExceeded, ...),
// written as they are.
type Jobs interface {
	Create(ctx context.Context, req jobs.JobRequest) (jobs.Job, error)
	Get(id string) (jobs.Job, error)
	Cancel(ctx context.Context, id string) (jobs.Job, error)
	// List returns one page of jobs filtered by type and status (either
	// may be empty) and the next page's token, "" on the last page.
	List(jobType, status string, pageSize int, continuation string) ([]jobs.Job, string, error)
	// Query answers a query of the devices.jobs collection, as
	// DeviceQueries.Query does for devices.
	Query(q *query.Query, pageSize int, continuation string) (query.Page, error)
}

// errNoJobs answers the job endpoints of a server built without an engine.
var errNoJobs = iothub.Errorf(iothub.CodeServiceUnavailable, "this hub has no jobs engine")

// jobBody is JobRequest as the SDKs send it (docs/iothub.md §5.2,
// docs/sdk-notes.md §1.5), decoded strictly; cloudToDeviceMethod takes the old
// timeoutInSeconds like the method endpoint does.
type jobBody struct {
	JobID                     string          `json:"jobId"`
	Type                      jobs.JobType    `json:"type"`
	CloudToDeviceMethod       *methodBody     `json:"cloudToDeviceMethod"`
	UpdateTwin                json.RawMessage `json:"updateTwin"`
	QueryCondition            string          `json:"queryCondition"`
	StartTime                 *time.Time      `json:"startTime"`
	MaxExecutionTimeInSeconds *int64          `json:"maxExecutionTimeInSeconds"`
}

// legacyJobTypes maps the job type names of older IoT Hub docs (and their
// typos), which the real hub refuses with 400 GenericBadRequest, to the
// names to use; keys are lower case.
var legacyJobTypes = map[string]jobs.JobType{
	"scheduledirectmethod":  jobs.TypeDeviceMethod,
	"scheduledirectrequest": jobs.TypeDeviceMethod,
	"scheduleddevicemethod": jobs.TypeDeviceMethod,
	"scheduletwinupdate":    jobs.TypeUpdateTwin,
	"scheduledupdatetwin":   jobs.TypeUpdateTwin,
}

// legacyType is the GenericBadRequest of a job type from older docs, naming
// the type to use, or nil.
func legacyType(t string) error {
	if use, ok := legacyJobTypes[strings.ToLower(strings.TrimSpace(t))]; ok {
		return iothub.Errorf(iothub.CodeGenericBadRequest, "BadRequest: job type %q is from older IoT Hub docs and not accepted; use %s", t, use)
	}
	return nil
}

// jobStatusFilters are the jobStatus values GET /jobs/v2/query takes
// (matched case-insensitively): the job statuses, and the spellings SDKs
// use for some of them.
var jobStatusFilters = []string{"queued", "scheduled", "running", "completed", "failed", "cancelled", "enqueued", "finished", "canceled"}

// checkJobFilters refuses a jobType or jobStatus filter that no job can
// match, which would otherwise answer an empty list as if there were no
// such jobs: 400 with the values allowed.
func checkJobFilters(jobType, status string) error {
	if t := strings.TrimSpace(jobType); t != "" {
		if err := legacyType(t); err != nil {
			return err
		}
		if !strings.EqualFold(t, string(jobs.TypeDeviceMethod)) && !strings.EqualFold(t, string(jobs.TypeUpdateTwin)) {
			return badRequest("jobType %q is not a job type; use %s or %s", jobType, jobs.TypeDeviceMethod, jobs.TypeUpdateTwin)
		}
	}
	if st := strings.TrimSpace(status); st != "" && !slices.ContainsFunc(jobStatusFilters, func(v string) bool { return strings.EqualFold(v, st) }) {
		return badRequest("jobStatus %q is not a job status; use one of %s", status, strings.Join(jobStatusFilters[:6], ", "))
	}
	return nil
}

// createJob schedules a job (docs/iothub.md §5.1, §5.2). The body's jobId may be
// left out; if given it must be the path's, which arrives encoded or raw.
func (s *Server) createJob(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Jobs == nil {
		return errNoJobs
	}
	id := r.PathValue("id")
	body, err := readBody(r, true)
	if err != nil {
		return err
	}
	var b jobBody
	if err := decodeJSON(body, &b, true, "job request"); err != nil {
		return err
	}
	if err := legacyType(string(b.Type)); err != nil {
		return err
	}
	if b.JobID == "" {
		b.JobID = id
	} else if b.JobID != id {
		return badRequest("the body's jobId %q does not match the job id %q in the path", b.JobID, id)
	}
	req := jobs.JobRequest{
		JobID:                     b.JobID,
		Type:                      b.Type,
		UpdateTwin:                b.UpdateTwin,
		QueryCondition:            b.QueryCondition,
		StartTime:                 b.StartTime,
		MaxExecutionTimeInSeconds: b.MaxExecutionTimeInSeconds,
	}
	if m := b.CloudToDeviceMethod; m != nil {
		req.CloudToDeviceMethod = &iothub.MethodRequest{
			MethodName:               m.MethodName,
			Payload:                  m.Payload,
			ResponseTimeoutInSeconds: m.ResponseTimeoutInSeconds,
			ConnectTimeoutInSeconds:  m.ConnectTimeoutInSeconds,
		}
		if req.CloudToDeviceMethod.ResponseTimeoutInSeconds == nil {
			req.CloudToDeviceMethod.ResponseTimeoutInSeconds = m.TimeoutInSeconds
		}
	}
	job, err := s.cfg.Jobs.Create(r.Context(), req)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, job)
	return nil
}

func (s *Server) getJob(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Jobs == nil {
		return errNoJobs
	}
	job, err := s.cfg.Jobs.Get(r.PathValue("id"))
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, job)
	return nil
}

// cancelJob cancels a job. The Node SDK sends no body (Content-Length: 0);
// a body, if any, is ignored.
func (s *Server) cancelJob(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Jobs == nil {
		return errNoJobs
	}
	job, err := s.cfg.Jobs.Cancel(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, job)
	return nil
}

// listJobs answers GET /jobs/v2/query (docs/iothub.md §5.5): a bare array of
// JobResponse with x-ms-item-type JobResponse and x-ms-continuation while
// more pages remain. Paging comes in headers (SDKs) or in the pageSize and
// continuationToken parameters (docs).
func (s *Server) listJobs(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Jobs == nil {
		return errNoJobs
	}
	size, cont, err := pageParams(r)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	if err := checkJobFilters(q.Get("jobType"), q.Get("jobStatus")); err != nil {
		return err
	}
	list, next, err := s.cfg.Jobs.List(q.Get("jobType"), q.Get("jobStatus"), size, cont)
	if err != nil {
		return err
	}
	if list == nil {
		list = []jobs.Job{}
	}
	s.writePage(w, r, list, "JobResponse", next)
	return nil
}
