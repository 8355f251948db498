package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// fakeHub answers client commands from canned JSON and records calls.
type fakeHub struct {
	calls []string
	err   error
	jobs  string
}

func (h *fakeHub) answer(call string, raw string) (json.RawMessage, error) {
	h.calls = append(h.calls, call)
	if h.err != nil {
		return nil, h.err
	}
	return json.RawMessage(raw), nil
}

const fakeJob = `{"jobId":"reboot-1","type":"scheduleDeviceMethod","status":"completed","queryCondition":"*",
"cloudToDeviceMethod":{"methodName":"reboot","payload":null},"startTime":"2026-11-22T10:00:00Z","endTime":"2026-11-22T10:00:05Z",
"deviceJobStatistics":{"deviceCount":3,"succeededCount":2,"failedCount":1,"runningCount":0,"pendingCount":0}}`

const fakeDevice = `{"deviceId":"dev-1","status":"enabled","connectionState":"Connected","lastActivityTime":"2026-11-22T10:00:00Z",
"authentication":{"type":"sas","symmetricKey":{"primaryKey":"cHJpbWFyeQ==","secondaryKey":"c2Vjb25kYXJ5"}}}`

func (h *fakeHub) CreateJob(ctx context.Context, req jobRequest) (json.RawMessage, error) {
	b, _ := json.Marshal(req)
	return h.answer("CreateJob "+string(b), fakeJob)
}
func (h *fakeHub) GetJob(ctx context.Context, id string) (json.RawMessage, error) {
	return h.answer("GetJob "+id, fakeJob)
}
func (h *fakeHub) ListJobs(ctx context.Context, jobType, status string) (json.RawMessage, error) {
	return h.answer("ListJobs "+jobType+" "+status, h.jobs)
}
func (h *fakeHub) CancelJob(ctx context.Context, id string) (json.RawMessage, error) {
	return h.answer("CancelJob "+id, fakeJob)
}
func (h *fakeHub) CreateDevice(ctx context.Context, id string) (json.RawMessage, error) {
	return h.answer("CreateDevice "+id, fakeDevice)
}
func (h *fakeHub) ListDevices(ctx context.Context) (json.RawMessage, error) {
	return h.answer("ListDevices", "["+fakeDevice+"]")
}
func (h *fakeHub) GetDevice(ctx context.Context, id string) (json.RawMessage, error) {
	return h.answer("GetDevice "+id, fakeDevice)
}
func (h *fakeHub) DeleteDevice(ctx context.Context, id string) error {
	_, err := h.answer("DeleteDevice "+id, "")
	return err
}
func (h *fakeHub) GetTwin(ctx context.Context, id string) (json.RawMessage, error) {
	return h.answer("GetTwin "+id, `{"deviceId":"dev-1","properties":{"desired":{"fw":"1.0"}}}`)
}
func (h *fakeHub) UpdateTwin(ctx context.Context, id string, patch json.RawMessage, etag string) (json.RawMessage, error) {
	return h.answer(fmt.Sprintf("UpdateTwin %s %s %s", id, patch, etag), `{"deviceId":"dev-1"}`)
}
func (h *fakeHub) Invoke(ctx context.Context, id string, req methodRequest) (json.RawMessage, error) {
	b, _ := json.Marshal(req)
	return h.answer("Invoke "+id+" "+string(b), `{"status":200,"payload":{"ok":true}}`)
}
func (h *fakeHub) Query(ctx context.Context, q string) (json.RawMessage, error) {
	return h.answer("Query "+q, `[{"deviceId":"dev-1","status":"enabled","tags":{"ring":"canary"},"version":3}]`)
}

// clientApp runs a client command against hub with a connection.json in a temporary directory.
func clientApp(t *testing.T, hub *fakeHub, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	dir := t.TempDir()
	conn := `{"hostName":"localhost","serviceConnectionString":"HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=c2VjcmV0",
"httpsAddr":"[::]:8443","mqttAddr":"0.0.0.0:8883"}`
	if err := os.WriteFile(filepath.Join(dir, "connection.json"), []byte(conn), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	var gotURL string
	a := &app{stdin: strings.NewReader(""), stdout: &out, stderr: &errb, getenv: func(string) string { return "" },
		dialHub: func(connStr, baseURL string, tlsConf *tls.Config) (hubClient, error) {
			gotURL = baseURL
			return hub, nil
		}}
	code = a.main(context.Background(), append(args, "--data", dir))
	if gotURL != "" && gotURL != "https://localhost:8443" {
		t.Errorf("base URL %q, want https://localhost:8443", gotURL)
	}
	return code, out.String(), errb.String()
}

func TestClientCommands(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		jobs     string
		wantCall string
		wantOut  []string
	}{
		{"jobs list", []string{"jobs", "list", "--status", "completed"}, "[" + fakeJob + "]", "ListJobs  completed",
			[]string{"JOB ID", "reboot-1  scheduleDeviceMethod  completed  3"}},
		{"jobs list empty", []string{"jobs", "list"}, "[]", "ListJobs  ", []string{"No jobs."}},
		{"jobs list json", []string{"jobs", "list", "-o", "json"}, "[" + fakeJob + "]", "ListJobs  ", []string{"[\n  {\n    \"jobId\": \"reboot-1\""}},
		{"jobs get", []string{"jobs", "get", "reboot-1"}, "", "GetJob reboot-1", []string{"job:", "reboot-1", "succeeded:", "method:"}},
		{"jobs cancel", []string{"jobs", "cancel", "reboot-1"}, "", "CancelJob reboot-1", []string{"status:"}},
		{"jobs create method", []string{"jobs", "create", "r2", "--method", "reboot", "--payload", `{"delay":1}`, "--query", "tags.ring = 'a'", "--start", "2026-01-02T03:04:05Z"}, "",
			`CreateJob {"jobId":"r2","type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"reboot","payload":{"delay":1},"responseTimeoutInSeconds":30},"queryCondition":"tags.ring = 'a'","startTime":"2026-01-02T03:04:05Z","maxExecutionTimeInSeconds":3600}`,
			[]string{"reboot-1"}},
		{"jobs create twin", []string{"jobs", "create", "t1", "--desired", `{"fw":"2.0"}`, "--start", "2026-01-02T03:04:05Z", "--max-time", "10m"}, "",
			`CreateJob {"jobId":"t1","type":"scheduleUpdateTwin","updateTwin":{"etag":"*","properties":{"desired":{"fw":"2.0"}}},"queryCondition":"*","startTime":"2026-01-02T03:04:05Z","maxExecutionTimeInSeconds":600}`,
			nil},
		{"jobs create wait", []string{"jobs", "create", "r3", "--method", "m", "--wait"}, "", "GetJob r3", []string{"status:", "completed"}},
		{"devices list", []string{"devices", "list"}, "", "ListDevices", []string{"DEVICE ID", "dev-1      enabled  Connected"}},
		{"devices get hides keys", []string{"devices", "get", "dev-1"}, "", "GetDevice dev-1", []string{"device:", "auth:"}},
		{"devices create", []string{"devices", "create", "dev-1"}, "", "CreateDevice dev-1", []string{"dev-1"}},
		{"devices delete", []string{"devices", "delete", "dev-1"}, "", "DeleteDevice dev-1", []string{"Deleted device dev-1"}},
		{"device connection string", []string{"devices", "connection-string", "dev-1"}, "", "GetDevice dev-1",
			[]string{"HostName=localhost;DeviceId=dev-1;SharedAccessKey=cHJpbWFyeQ==;GatewayHostName=localhost:8883\n"}},
		{"twin get", []string{"twin", "get", "dev-1"}, "", "GetTwin dev-1", []string{`"desired": {`}},
		{"twin update", []string{"twin", "update", "dev-1", "--desired", `{"fw":null}`, "--etag", "AAA"}, "", `UpdateTwin dev-1 {"properties":{"desired":{"fw":null}}} AAA`, nil},
		{"invoke", []string{"invoke", "dev-1", "reboot", "--payload", "5", "--timeout", "10s"}, "",
			`Invoke dev-1 {"methodName":"reboot","payload":5,"responseTimeoutInSeconds":10}`, []string{"status: 200", `"ok": true`}},
		{"query", []string{"query", "SELECT * FROM devices"}, "", "Query SELECT * FROM devices", []string{"DEVICEID  STATUS   VERSION", "dev-1     enabled  3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hub := &fakeHub{jobs: tt.jobs}
			code, stdout, stderr := clientApp(t, hub, tt.args...)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, stderr)
			}
			if !strings.Contains(strings.Join(hub.calls, "\n"), tt.wantCall) {
				t.Errorf("calls %q, want %q", hub.calls, tt.wantCall)
			}
			for _, w := range tt.wantOut {
				if !strings.Contains(stdout, w) {
					t.Errorf("output lacks %q:\n%s", w, stdout)
				}
			}
			if strings.Contains(stdout, "cHJpbWFyeQ==") && tt.name == "devices get hides keys" {
				t.Errorf("table output shows the key:\n%s", stdout)
			}
		})
	}
}

func TestClientErrors(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"hub error", &iothub.Error{Code: iothub.CodeDeviceNotFound, Message: "Device dev-9 not found"},
			"fleetsim: get device dev-9: the hub said DeviceNotFound: Device dev-9 not found\n"},
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)},
			"fleetsim: get device dev-9: cannot reach the hub: connection refused (is 'fleetsim serve' running?)\n"},
		{"deadline", fmt.Errorf("get: %w", context.DeadlineExceeded),
			"fleetsim: get device dev-9: the hub did not answer in time: get: context deadline exceeded\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := clientApp(t, &fakeHub{err: tt.err}, "devices", "get", "dev-9")
			if code != exitFail || stderr != tt.want || stdout != "" {
				t.Errorf("exit %d, stdout %q, stderr %q; want exit 1 and %q", code, stdout, stderr, tt.want)
			}
		})
	}
}

func TestDialable(t *testing.T) {
	tests := map[string]string{
		":8443": "localhost:8443", "[::]:8443": "localhost:8443", "0.0.0.0:1": "localhost:1",
		"127.0.0.1:8443": "127.0.0.1:8443", "hub.local:443": "hub.local:443", "[::1]:5": "[::1]:5",
	}
	for in, want := range tests {
		if got := dialable(in); got != want {
			t.Errorf("dialable(%q) = %q, want %q", in, got, want)
		}
	}
}
