package restapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// jobResp is a JobResponse as a client reads it.
type jobResp struct {
	JobID                     string          `json:"jobId"`
	Type                      string          `json:"type"`
	Status                    string          `json:"status"`
	QueryCondition            string          `json:"queryCondition"`
	CreatedTime               string          `json:"createdTime"`
	StartTime                 string          `json:"startTime"`
	EndTime                   string          `json:"endTime"`
	MaxExecutionTimeInSeconds int64           `json:"maxExecutionTimeInSeconds"`
	CloudToDeviceMethod       json.RawMessage `json:"cloudToDeviceMethod"`
	UpdateTwin                json.RawMessage `json:"updateTwin"`
	FailureReason             string          `json:"failureReason"`
	Stats                     *struct {
		DeviceCount, FailedCount, SucceededCount, RunningCount, PendingCount int
	} `json:"deviceJobStatistics"`
}

// putJob sends a job body as the SDK would and decodes the answer.
func (e *env) putJob(id, body string) jobResp {
	e.t.Helper()
	a := e.do("PUT", "/jobs/v2/"+id+v, body, nil)
	if a.status != 200 {
		e.t.Fatalf("PUT job %s: %d %s", id, a.status, a.body)
	}
	var j jobResp
	a.json(e.t.(*testing.T), &j)
	return j
}

// waitJob polls GET /jobs/v2/{id} until the job is terminal.
func (e *env) waitJob(id string) jobResp {
	e.t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		a := e.do("GET", "/jobs/v2/"+id+v, "", nil)
		if a.status != 200 {
			e.t.Fatalf("GET job %s: %d %s", id, a.status, a.body)
		}
		var j jobResp
		a.json(e.t.(*testing.T), &j)
		if s := j.Stats; s == nil || s.PendingCount+s.RunningCount+s.SucceededCount+s.FailedCount != s.DeviceCount {
			e.t.Fatalf("statistics do not add up: %s", a.body)
		}
		switch j.Status {
		case "completed", "failed", "cancelled":
			return j
		}
	}
	e.t.Fatalf("job %s did not end", id)
	return jobResp{}
}

// tagDevices sets tags on registered devices through the API.
func (e *env) tagDevices(tags string, ids ...string) {
	e.t.Helper()
	for _, id := range ids {
		if a := e.do("PATCH", "/twins/"+id+v, `{"tags":`+tags+`}`, map[string]string{"If-Match": "*"}); a.status != 200 {
			e.t.Fatalf("tag %s: %d %s", id, a.status, a.body)
		}
	}
}

// TestJobsFromTheNodeSDKBodies sends the Node JobClient's request bodies
// byte for byte (docs/sdk-notes.md §1.5) and checks the JobResponse, the
// statistics, the per-device records in devices.jobs, and the twins a twin
// job changed.
func TestJobsFromTheNodeSDKBodies(t *testing.T) {
	e := newEnv(t, envOptions{jobs: true})
	e.createDevices("b43-1", "b43-2", "b44-1")
	if _, err := e.client.CreateDevice(t.Context(), "b43-off"); err != nil { // registered, never online
		t.Fatal(err)
	}
	e.tagDevices(`{"building":"43","floor":3}`, "b43-1", "b43-2", "b43-off")
	e.tagDevices(`{"building":"44","floor":3}`, "b44-1")

	// Promise form: startTime null, no maxExecutionTimeInSeconds.
	j := e.putJob("cap-job-1", `{"jobId":"cap-job-1","type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"reboot","payload":{"job":"cap1"},"responseTimeoutInSeconds":30},"startTime":null,"queryCondition":"tags.building = '43'"}`)
	if j.JobID != "cap-job-1" || j.Type != "scheduleDeviceMethod" || j.QueryCondition != "tags.building = '43'" ||
		j.MaxExecutionTimeInSeconds != 3600 || j.CreatedTime == "" || j.StartTime == "" || j.Stats == nil {
		t.Errorf("PUT answer: %+v", j)
	}
	if got := compact(t, j.CloudToDeviceMethod); !strings.Contains(got, `"methodName":"reboot"`) || !strings.Contains(got, `"payload":{"job":"cap1"}`) || !strings.Contains(got, `"responseTimeoutInSeconds":30`) {
		t.Errorf("cloudToDeviceMethod echoed as %s", got)
	}
	j = e.waitJob("cap-job-1")
	if j.Status != "completed" || j.EndTime == "" || *j.Stats != (struct {
		DeviceCount, FailedCount, SucceededCount, RunningCount, PendingCount int
	}{DeviceCount: 3, SucceededCount: 2, FailedCount: 1}) {
		t.Errorf("cap-job-1 ended as %+v %+v", j, j.Stats)
	}

	// devices.jobs: one row per device, the device's answer or the hub's error.
	a := e.do("POST", "/devices/query"+v, `{"query":"SELECT * FROM devices.jobs WHERE jobId = 'cap-job-1'"}`, nil)
	if a.status != 200 || a.header.Get("x-ms-item-type") != "DeviceJob" {
		t.Fatalf("devices.jobs query: %d %v %s", a.status, a.header, a.body)
	}
	var rows []struct {
		DeviceID, JobID, JobType, Status string
		StartTimeUtc, EndTimeUtc         string
		Outcome                          *struct {
			DeviceMethodResponse *struct {
				Status  int
				Payload json.RawMessage
			}
		}
		Error *struct{ Code, Description string }
	}
	a.json(t, &rows)
	byID := map[string]int{}
	for i, r := range rows {
		byID[r.DeviceID] = i
		if r.JobID != "cap-job-1" || r.JobType != "scheduleDeviceMethod" || r.StartTimeUtc == "" || r.EndTimeUtc == "" {
			t.Errorf("row %+v", r)
		}
	}
	if len(rows) != 3 {
		t.Fatalf("%d rows: %s", len(rows), a.body)
	}
	for _, id := range []string{"b43-1", "b43-2"} {
		r := rows[byID[id]]
		if r.Status != "completed" || r.Outcome == nil || r.Outcome.DeviceMethodResponse == nil ||
			r.Outcome.DeviceMethodResponse.Status != 200 || compact(t, r.Outcome.DeviceMethodResponse.Payload) != `{"job":"cap1"}` {
			t.Errorf("%s: %s", id, a.body)
		}
	}
	if r := rows[byID["b43-off"]]; r.Status != "failed" || r.Error == nil || r.Error.Code != "DeviceNotOnline" {
		t.Errorf("offline device: %+v", r)
	}

	// Callback form: the SDK fills in now and 3600; the device's 500 is a completed device job.
	now := time.Now().UTC().Format("2006-01-02T15:04:05.000Z")
	e.putJob("cap-job-2", `{"jobId":"cap-job-2","type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"fail","payload":null,"responseTimeoutInSeconds":30},"startTime":"`+now+`","maxExecutionTimeInSeconds":3600,"queryCondition":"tags.building = '44'"}`)
	if j := e.waitJob("cap-job-2"); j.Status != "completed" || j.Stats.SucceededCount != 1 {
		t.Errorf("cap-job-2: %+v %+v", j, j.Stats)
	}
	rows = nil
	e.do("POST", "/devices/query"+v, `{"query":"SELECT * FROM devices.jobs WHERE jobId = 'cap-job-2'"}`, nil).json(t, &rows)
	if len(rows) != 1 || rows[0].Outcome == nil || rows[0].Outcome.DeviceMethodResponse.Status != 500 {
		t.Errorf("a device's 500: %+v", rows)
	}

	// A twin job: the patch lands in every selected twin.
	e.putJob("cap-job-4", `{"jobId":"cap-job-4","type":"scheduleUpdateTwin","updateTwin":{"etag":"*","tags":{"t":1},"properties":{"desired":{"jobTag":"cap4"}}},"startTime":"`+now+`","maxExecutionTimeInSeconds":60,"queryCondition":"tags.building = '43' AND tags.floor = 3"}`)
	if j := e.waitJob("cap-job-4"); j.Status != "completed" || j.Stats.DeviceCount != 3 || j.Stats.SucceededCount != 3 {
		t.Errorf("cap-job-4: %+v %+v", j, j.Stats)
	}
	for _, id := range []string{"b43-1", "b43-off"} {
		var tw struct {
			Tags       map[string]any
			Properties struct{ Desired map[string]any }
		}
		e.do("GET", "/twins/"+id+v, "", nil).json(t, &tw)
		if tw.Tags["t"] != 1.0 || tw.Properties.Desired["jobTag"] != "cap4" {
			t.Errorf("twin %s after the twin job: %+v", id, tw)
		}
	}
	var other struct{ Tags map[string]any }
	e.do("GET", "/twins/b44-1"+v, "", nil).json(t, &other)
	if _, touched := other.Tags["t"]; touched {
		t.Errorf("the twin job changed a device its condition does not select: %+v", other)
	}
}

// TestScheduledJobCancel: a job for later is queued or scheduled, cancel
// ends it before it touches a device, and a second cancel answers the same.
func TestScheduledJobCancel(t *testing.T) {
	e := newEnv(t, envOptions{jobs: true})
	e.createDevices("d1")
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano)
	j := e.putJob("later", `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"reboot","responseTimeoutInSeconds":30},"startTime":"`+later+`","maxExecutionTimeInSeconds":120,"queryCondition":"*"}`)
	// Microsoft's e2e test expects "queued" from the PUT of a future job.
	if j.Status != "queued" && j.Status != "scheduled" {
		t.Errorf("PUT of a future job: status %q", j.Status)
	}
	for range 2 {
		a := e.do("POST", "/jobs/v2/later/cancel"+v, "", map[string]string{"Content-Length": "0"})
		var c jobResp
		a.json(t, &c)
		if a.status != 200 || c.Status != "cancelled" || c.Stats.DeviceCount != 0 {
			t.Errorf("cancel: %d %s", a.status, a.body)
		}
	}
	var rows []json.RawMessage
	e.do("POST", "/devices/query"+v, `{"query":"SELECT * FROM devices.jobs WHERE jobId = 'later'"}`, nil).json(t, &rows)
	if len(rows) != 0 {
		t.Errorf("a job cancelled before its start has device jobs: %s", rows)
	}
}

// TestJobErrorsOverHTTPS: each bad request gets IoT Hub's status, error
// code header and body; nothing is created.
func TestJobErrorsOverHTTPS(t *testing.T) {
	e := newEnv(t, envOptions{jobs: true})
	method := `"cloudToDeviceMethod":{"methodName":"m","responseTimeoutInSeconds":30}`
	e.putJob("taken", `{"type":"scheduleDeviceMethod",`+method+`,"queryCondition":"*"}`)
	tests := []struct {
		name, method, path, body string
		status                   int
		code, msg                string
	}{
		{"malformed JSON", "PUT", "/jobs/v2/j1", `{"type":`, 400, "ArgumentInvalid", "malformed job request"},
		{"unknown field", "PUT", "/jobs/v2/j1", `{"type":"scheduleDeviceMethod",` + method + `,"queryCondition":"*","color":"red"}`, 400, "ArgumentInvalid", "color"},
		{"body id differs from path", "PUT", "/jobs/v2/j1", `{"jobId":"j2","type":"scheduleDeviceMethod",` + method + `,"queryCondition":"*"}`, 400, "ArgumentInvalid", "does not match"},
		{"id with a space", "PUT", "/jobs/v2/a%20b", `{"type":"scheduleDeviceMethod",` + method + `,"queryCondition":"*"}`, 400, "ArgumentInvalid", ""},
		{"id too long", "PUT", "/jobs/v2/" + strings.Repeat("x", 65), `{"type":"scheduleDeviceMethod",` + method + `,"queryCondition":"*"}`, 400, "ArgumentInvalid", ""},
		{"legacy type", "PUT", "/jobs/v2/j1", `{"type":"scheduleDirectMethod",` + method + `,"queryCondition":"*"}`, 400, "GenericBadRequest", "use scheduleDeviceMethod"},
		{"legacy request type", "PUT", "/jobs/v2/j1", `{"type":"scheduleDirectRequest",` + method + `,"queryCondition":"*"}`, 400, "GenericBadRequest", "use scheduleDeviceMethod"},
		{"legacy twin type", "PUT", "/jobs/v2/j1", `{"type":"scheduleTwinUpdate","updateTwin":{"etag":"*","tags":{"a":1}},"queryCondition":"*"}`, 400, "GenericBadRequest", "use scheduleUpdateTwin"},
		{"query unknown type", "GET", "/jobs/v2/query?jobType=export", "", 400, "ArgumentInvalid", "use scheduleDeviceMethod or scheduleUpdateTwin"},
		{"query legacy type", "GET", "/jobs/v2/query?jobType=scheduleTwinUpdate", "", 400, "GenericBadRequest", "use scheduleUpdateTwin"},
		{"query unknown status", "GET", "/jobs/v2/query?jobStatus=done", "", 400, "ArgumentInvalid", "use one of queued, scheduled, running, completed, failed, cancelled"},
		{"no method", "PUT", "/jobs/v2/j1", `{"type":"scheduleDeviceMethod","queryCondition":"*"}`, 400, "ArgumentNull", ""},
		{"method name too long", "PUT", "/jobs/v2/j1", `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"` + strings.Repeat("m", 70000) + `"},"queryCondition":"*"}`, 400, "ArgumentInvalid", "method name"},
		{"timeout out of range", "PUT", "/jobs/v2/j1", `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m","responseTimeoutInSeconds":301},"queryCondition":"*"}`, 400, "ArgumentInvalid", ""},
		{"full SELECT", "PUT", "/jobs/v2/j1", `{"type":"scheduleDeviceMethod",` + method + `,"queryCondition":"SELECT * FROM devices"}`, 400, "ArgumentInvalid", ""},
		{"bad condition", "PUT", "/jobs/v2/j1", `{"type":"scheduleDeviceMethod",` + method + `,"queryCondition":"tags.x ="}`, 400, "ArgumentInvalid", ""},
		{"bad property name", "PUT", "/jobs/v2/j1", `{"type":"scheduleUpdateTwin","updateTwin":{"etag":"*","tags":{"a$b":1}},"queryCondition":"*"}`, 400, "ArgumentInvalid", ""},
		{"bad property value", "PUT", "/jobs/v2/j1", `{"type":"scheduleUpdateTwin","updateTwin":{"etag":"*","properties":{"desired":{"a":"x;y"}}},"queryCondition":"*"}`, 400, "ArgumentInvalid", ""},
		{"duplicate", "PUT", "/jobs/v2/taken", `{"type":"scheduleDeviceMethod",` + method + `,"queryCondition":"*"}`, 409, "JobAlreadyExists", ""},
		{"get unknown", "GET", "/jobs/v2/nope", "", 404, "JobNotFound", ""},
		{"cancel unknown", "POST", "/jobs/v2/nope/cancel", "", 404, "JobNotFound", ""},
		{"bad continuation", "GET", "/jobs/v2/query", "", 400, "ArgumentInvalid", "continuation"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string(nil)
			if tt.name == "bad continuation" {
				hdr = map[string]string{"x-ms-continuation": "!!"}
			}
			path := tt.path + v
			if p, q, ok := strings.Cut(tt.path, "?"); ok {
				path = p + v + "&" + q
			}
			e.do(tt.method, path, tt.body, hdr).wantError(t, tt.status, tt.code, tt.msg)
		})
	}
	jobs, err := e.client.ListJobs(t.Context(), "", "", 100)
	if err != nil || len(jobs) != 1 {
		t.Errorf("after the bad requests: %d jobs, %v", len(jobs), err)
	}
}

// TestJobQueryPagesAndFilters: GET /jobs/v2/query is a bare array, pages by
// x-ms-max-item-count and x-ms-continuation (left out on the last page),
// and filters case-insensitively.
func TestJobQueryPagesAndFilters(t *testing.T) {
	e := newEnv(t, envOptions{jobs: true})
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	for i := range 5 {
		body := `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m"},"startTime":"` + later + `","queryCondition":"*"}`
		if i >= 3 {
			body = `{"type":"scheduleUpdateTwin","updateTwin":{"tags":{"a":1}},"startTime":"` + later + `","queryCondition":"*"}`
		}
		e.putJob(fmt.Sprintf("job-%d", i), body)
	}
	e.do("POST", "/jobs/v2/job-0/cancel"+v, "", nil)

	var ids []string
	cont := ""
	for pages := 1; ; pages++ {
		hdr := map[string]string{"x-ms-max-item-count": "2"}
		if cont != "" {
			hdr["x-ms-continuation"] = cont
		}
		a := e.do("GET", "/jobs/v2/query"+v+"&jobType=SCHEDULEDEVICEMETHOD", "", hdr)
		var page []jobResp
		a.json(t, &page)
		if a.status != 200 || a.header.Get("x-ms-item-type") != "JobResponse" || len(page) > 2 {
			t.Fatalf("page %d: %d %v %s", pages, a.status, a.header, a.body)
		}
		for _, j := range page {
			ids = append(ids, j.JobID)
		}
		if _, more := a.header["X-Ms-Continuation"]; !more {
			if pages != 2 {
				t.Errorf("%d pages, want 2", pages)
			}
			break
		}
		if cont = a.header.Get("x-ms-continuation"); cont == "" || pages > 5 {
			t.Fatalf("page %d: empty or endless continuation", pages)
		}
	}
	if strings.Join(ids, ",") != "job-0,job-1,job-2" {
		t.Errorf("method jobs paged as %v", ids)
	}
	for _, tc := range []struct {
		query string
		want  int
	}{
		{"jobStatus=Cancelled", 1},
		{"jobStatus=canceled", 1},
		{"jobType=scheduleUpdateTwin&jobStatus=cancelled", 0},
		{"jobType=scheduleupdatetwin", 2},
		{"", 5},
	} {
		var page []jobResp
		e.do("GET", "/jobs/v2/query"+v+"&"+tc.query, "", nil).json(t, &page)
		if len(page) != tc.want {
			t.Errorf("%s: %d jobs, want %d", tc.query, len(page), tc.want)
		}
	}
}

// TestActiveJobLimit: under S1 one job may be active; the next PUT gets 429
// ThrottlingMaxActiveJobCountExceeded, and a slot frees when the job ends.
func TestActiveJobLimit(t *testing.T) {
	e := newEnv(t, envOptions{jobs: true, pacing: "S1"})
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	body := `{"type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m"},"startTime":"` + later + `","queryCondition":"*"}`
	e.putJob("first", body)
	e.do("PUT", "/jobs/v2/second"+v, body, nil).wantError(t, 429, "ThrottlingMaxActiveJobCountExceeded", "")
	_, err := e.client.CreateJob(context.Background(), "second", json.RawMessage(body))
	wantCode(t, err, iothub.CodeThrottlingMaxActiveJobCountExceeded)
	e.do("POST", "/jobs/v2/first/cancel"+v, "", nil)
	if j := e.putJob("second", body); j.JobID != "second" {
		t.Errorf("after the cancel: %+v", j)
	}
}
