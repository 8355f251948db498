package restapi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/hubjobs/restapi"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// panicWatch is a log writer that counts the recover middleware's reports.
type panicWatch struct{ n atomic.Int64 }

func (p *panicWatch) Write(b []byte) (int, error) {
	if bytes.Contains(b, []byte("REST handler panicked")) {
		p.n.Add(1)
	}
	return len(b), nil
}

// FuzzHandler sends random methods, paths, bodies and headers to the
// handler and checks that it never panics, always answers JSON, and answers
// every status of 500 or more with a well-formed IoT Hub error body.
func FuzzHandler(f *testing.F) {
	link := newFakeLink()
	close(link.barrier)
	reg, err := registry.New(registry.Options{Hostname: hubHost, Link: link})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { reg.Close() })
	link.reg = reg
	for _, id := range []string{"d1", "d2", "dev:3"} {
		if _, err := reg.CreateDevice(context.Background(), registry.Device{DeviceID: id}); err != nil {
			f.Fatal(err)
		}
		link.setOnline(id)
	}
	ps, err := restapi.DefaultPolicies()
	if err != nil {
		f.Fatal(err)
	}
	watch := &panicWatch{}
	cfg := restapi.Config{Hostname: hubHost, Policies: ps, Logger: zerolog.New(watch), MaxBodyBytes: 64 << 10}
	serveRegistry(&cfg, reg)
	srv, err := restapi.New(cfg)
	if err != nil {
		f.Fatal(err)
	}
	h := srv.Handler()
	token := iothub.NewSAS(hubHost, ps[0].PrimaryKey, ps[0].Name, time.Now().Add(24*time.Hour))

	seeds := []struct{ method, path, body string }{
		{"GET", "/devices/d1" + v, ""},
		{"PUT", "/devices/x1" + v, `{"deviceId":"x1"}`},
		{"PUT", "/devices/d1" + v, `{"status":"disabled"}`},
		{"DELETE", "/devices/d2" + v, ""},
		{"GET", "/devices/" + v, ""},
		{"POST", "/devices" + v, `[{"id":"b1","importMode":"create"},{"id":"d1","importMode":"Delete"}]`},
		{"GET", "/statistics/devices" + v, ""},
		{"GET", "/statistics/service" + v, ""},
		{"GET", "/twins/d1" + v, ""},
		{"PATCH", "/twins/d1" + v, `{"tags":{"a":{"b":null}},"properties":{"desired":{"x":[1,2]}}}`},
		{"PUT", "/twins/d1" + v, `{"tags":{"a":1}}`},
		{"POST", "/twins/d1/methods" + v, `{"methodName":"echo","payload":{"n":1},"responseTimeoutInSeconds":5}`},
		{"POST", "/twins/dev%3A3/methods" + v, `{"methodName":"fail","timeoutInSeconds":30}`},
		{"POST", "/devices/query" + v, `{"query":"SELECT * FROM devices WHERE tags.a = 1"}`},
		{"POST", "/devices/query" + v, `{"query":"SELECT COUNT() AS n, status FROM devices GROUP BY status"}`},
		{"POST", "/devices/query" + v, `{"query":"SELECT * FROM devices.jobs"}`},
		{"PUT", "/jobs/v2/j1" + v, `{"jobId":"j1","type":"scheduleDeviceMethod","cloudToDeviceMethod":{"methodName":"m"},"queryCondition":"*","startTime":null}`},
		{"GET", "/jobs/v2/query?jobType=scheduleDeviceMethod&api-version=2021-04-12", ""},
		{"POST", "/jobs/v2/j1/cancel" + v, ""},
		{"GET", "/devices/a%2F..%2Fb" + v, ""},
		{"GET", "//devices" + v, ""},
		{"OPTIONS", "*", ""},
	}
	for _, s := range seeds {
		f.Add(s.method, s.path, []byte(s.body), true, `"*"`, "10", "")
	}
	f.Add("GET", "/devices/d1"+v, []byte(nil), false, "", "", "")

	f.Fuzz(func(t *testing.T, method, path string, body []byte, signed bool, ifMatch, pageSize, cont string) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, method, path, bytes.NewReader(body))
		if err != nil {
			return // not a request a client could send
		}
		if signed {
			req.Header.Set("Authorization", token)
		}
		for k, v := range map[string]string{"If-Match": ifMatch, "x-ms-max-item-count": pageSize, "x-ms-continuation": cont} {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		if n := watch.n.Load(); n > 0 {
			t.Fatalf("%s %q: the handler panicked", method, path)
		}
		if ct := rec.Header().Get("Content-Type"); ct != "application/json; charset=utf-8" {
			t.Fatalf("%s %q: Content-Type %q", method, path, ct)
		}
		out := rec.Body.Bytes()
		switch {
		case rec.Code == http.StatusNoContent:
		case rec.Code < 300:
			if !json.Valid(out) {
				t.Fatalf("%s %q: %d with a body that is not JSON: %q", method, path, rec.Code, out)
			}
			if c, ok := rec.Header()["X-Ms-Continuation"]; ok && (len(c) != 1 || c[0] == "") {
				t.Fatalf("%s %q: empty x-ms-continuation", method, path)
			}
		default:
			var e struct{ Message, ExceptionMessage string }
			if json.Unmarshal(out, &e) != nil || e.Message == "" || !strings.HasPrefix(e.ExceptionMessage, "Tracking ID:") {
				t.Fatalf("%s %q: %d with a malformed error body %q", method, path, rec.Code, out)
			}
			if rec.Header().Get("iothub-errorcode") == "" {
				t.Fatalf("%s %q: %d without iothub-errorcode", method, path, rec.Code)
			}
			if rec.Code >= 500 && rec.Code != http.StatusServiceUnavailable {
				t.Fatalf("%s %q: server error %d %s", method, path, rec.Code, out)
			}
		}
	})
}
