package jobs_test

import (
	"encoding/json"
	"testing"

	"github.com/fleetsim/fleetsim/hubjobs/jobs"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// FuzzCreate sends arbitrary JobRequest bodies to Create: it must never
// panic, every rejection must be an IoT Hub 400 or 409, and an accepted job
// must read back as it was answered.
func FuzzCreate(f *testing.F) {
	for _, seed := range []string{
		`{"jobId":"j1","type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"reboot","payload":{"a":1},"responseTimeoutInSeconds":30},"queryCondition":"tags.building = 43","startTime":null}`,
		`{"jobId":"j2","type":"scheduleUpdateTwin","updateTwin":{"etag":"*","tags":{"a":"b"},"properties":{"desired":{"x":{"y":1}}}},"queryCondition":"*","maxExecutionTimeInSeconds":60}`,
		`{"jobId":"j3","type":"scheduleDirectMethod","queryCondition":"*"}`,
		`{"jobId":"j4","type":"scheduleUpdateTwin","updateTwin":{"tags":{"a b":1}},"queryCondition":"deviceId IN ['a','b']"}`,
		`{"jobId":"j5","type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m"},"queryCondition":"SELECT * FROM devices"}`,
		`{"jobId":"","type":"","queryCondition":""}`,
		`{"jobId":"j6","type":"scheduleUpdateTwin","updateTwin":{"properties":{"desired":{"a":"x=y"}}},"queryCondition":"FROM devices.modules WHERE tags.a = 1"}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var req jobs.JobRequest
		if json.Unmarshal(body, &req) != nil {
			return
		}
		e, err := jobs.NewEngine(jobs.Config{})
		if err != nil {
			t.Fatal(err)
		}
		job, err := e.Create(t.Context(), req)
		if err != nil {
			ie := iothub.AsError(err)
			if s := ie.HTTPStatus(); s != 400 && s != 409 {
				t.Fatalf("Create(%s): %v (HTTP %d)", body, err, s)
			}
			return
		}
		got, err := e.Get(job.JobID)
		if err != nil || got.JobID != req.JobID || got.Status != job.Status {
			t.Fatalf("Get after Create(%s): %+v, %v", body, got, err)
		}
	})
}
