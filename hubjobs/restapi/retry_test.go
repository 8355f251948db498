package restapi

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// answer is one scripted reply of the flaky hub.
type answer struct {
	status     int
	code       iothub.Code // error code for status >= 300
	retryAfter string
	hangUp     bool // close the connection instead of answering
}

// flakyHub answers each request with the next scripted answer (the last
// one repeats) and records what it was asked.
type flakyHub struct {
	mu      sync.Mutex
	script  []answer
	asked   []string
	servers *httptest.Server
}

func newFlakyHub(t *testing.T, script ...answer) *flakyHub {
	h := &flakyHub{script: script}
	h.servers = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.mu.Lock()
		h.asked = append(h.asked, r.Method+" "+r.URL.Path)
		a := h.script[0]
		if len(h.script) > 1 {
			h.script = h.script[1:]
		}
		h.mu.Unlock()
		if a.hangUp {
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
			return
		}
		if a.retryAfter != "" {
			w.Header().Set("Retry-After", a.retryAfter)
		}
		if a.status >= 300 {
			e := &iothub.Error{Code: a.code, Message: "scripted"}
			w.Header().Set("iothub-errorcode", a.code.Name)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(a.status)
			w.Write(e.HTTPBody("tid", time.Now()))
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(a.status)
		switch {
		case strings.HasSuffix(r.URL.Path, "/query"):
			w.Write([]byte(`[]`))
		case strings.HasSuffix(r.URL.Path, "/methods"):
			w.Write([]byte(`{"status":200,"payload":null}`))
		default:
			w.Write([]byte(`{"jobId":"j","status":"running"}`))
		}
	}))
	t.Cleanup(h.servers.Close)
	return h
}

func (h *flakyHub) requests() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.asked...)
}

// newRetryClient is a client of the hub whose waits are recorded, not slept.
func newRetryClient(t *testing.T, base string, hc *http.Client) (*Client, *[]time.Duration) {
	t.Helper()
	c, err := NewClient("HostName=h.example;SharedAccessKeyName=iothubowner;SharedAccessKey=a2V5", ClientOptions{
		BaseURL: base, HTTPClient: hc, Retry: RetryPolicy{MaxAttempts: 4},
	})
	if err != nil {
		t.Fatal(err)
	}
	var waits []time.Duration
	c.sleep = func(ctx context.Context, d time.Duration) error {
		waits = append(waits, d)
		return ctx.Err()
	}
	return c, &waits
}

var (
	ok200      = answer{status: 200}
	busy503    = answer{status: 503, code: iothub.CodeServiceUnavailable}
	error500   = answer{status: 500, code: iothub.CodeServerError}
	throttled  = answer{status: 429, code: iothub.CodeThrottlingException, retryAfter: "3"}
	tooMany    = answer{status: 429, code: iothub.CodeThrottlingMaxActiveJobCountExceeded}
	invalid400 = answer{status: 400, code: iothub.CodeArgumentInvalid}
	exists409  = answer{status: 409, code: iothub.CodeJobAlreadyExists}
	hangUp     = answer{hangUp: true}
)

func TestRetries(t *testing.T) {
	getJob := func(c *Client) error { _, err := c.GetJob(t.Context(), "j"); return err }
	putJob := func(c *Client) error {
		_, err := c.CreateJob(t.Context(), "j", map[string]string{"type": "scheduleDeviceMethod"})
		return err
	}
	invoke := func(c *Client) error {
		_, err := c.InvokeMethod(t.Context(), "d1", iothub.MethodRequest{MethodName: "reboot"})
		return err
	}
	bulk := func(mode string) func(c *Client) error {
		return func(c *Client) error {
			_, err := c.BulkUpdate(t.Context(), []map[string]string{{"id": "d1", "importMode": mode}, {"id": "d2", "importMode": mode}})
			return err
		}
	}
	del := func(c *Client) error { return c.DeleteDevice(t.Context(), "d1", "") }
	query := func(c *Client) error { _, err := c.QueryPage(t.Context(), "SELECT * FROM devices", 0, ""); return err }
	tests := []struct {
		name     string
		call     func(*Client) error
		script   []answer
		wantReqs int
		wantErr  iothub.Code // zero: success
		// firstWait, when set, is the wait the first retry must use (Retry-After).
		firstWait time.Duration
	}{
		{"GET retried through 429 and 503", getJob, []answer{throttled, busy503, ok200}, 3, iothub.Code{}, 3 * time.Second},
		{"GET retried after a hang-up", getJob, []answer{hangUp, ok200}, 2, iothub.Code{}, 0},
		{"GET not retried on 400", getJob, []answer{invalid400}, 1, iothub.CodeArgumentInvalid, 0},
		{"GET gives up after MaxAttempts", getJob, []answer{busy503}, 4, iothub.CodeServiceUnavailable, 0},
		{"PUT job retried through 503", putJob, []answer{busy503, ok200}, 2, iothub.Code{}, 0},
		{"PUT job not retried over the active job limit", putJob, []answer{tooMany}, 1, iothub.CodeThrottlingMaxActiveJobCountExceeded, 0},
		{"PUT job after a 503 keeps a conflict", putJob, []answer{busy503, exists409}, 2, iothub.CodeJobAlreadyExists, 0},
		{"DELETE retried through 500", del, []answer{error500, ok200}, 2, iothub.Code{}, 0},
		{"query POST retried", query, []answer{busy503, ok200}, 2, iothub.Code{}, 0},
		{"bulk update retried", bulk("update"), []answer{busy503, ok200}, 2, iothub.Code{}, 0},
		{"bulk create not retried", bulk("create"), []answer{busy503}, 1, iothub.CodeServiceUnavailable, 0},
		{"method not retried on 503", invoke, []answer{busy503}, 1, iothub.CodeServiceUnavailable, 0},
		{"method not retried after a hang-up", invoke, []answer{hangUp, ok200}, 1, iothub.Code{Name: "-"}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newFlakyHub(t, tt.script...)
			c, waits := newRetryClient(t, h.servers.URL, nil)
			err := tt.call(c)
			switch {
			case tt.wantErr == (iothub.Code{}) && err != nil:
				t.Fatalf("error %v", err)
			case tt.wantErr.Name == "-":
				if err == nil {
					t.Fatal("no error")
				}
			case tt.wantErr != (iothub.Code{}):
				var he *iothub.Error
				if !errors.As(err, &he) || he.Code != tt.wantErr {
					t.Fatalf("error %v, want %s", err, tt.wantErr.Name)
				}
			}
			if got := len(h.requests()); got != tt.wantReqs {
				t.Errorf("%d requests (%v), want %d", got, h.requests(), tt.wantReqs)
			}
			if len(*waits) != tt.wantReqs-1 {
				t.Errorf("%d waits, want %d", len(*waits), tt.wantReqs-1)
			}
			if tt.firstWait > 0 && (len(*waits) == 0 || (*waits)[0] != tt.firstWait) {
				t.Errorf("waits %v, want the first %v (Retry-After)", *waits, tt.firstWait)
			}
			if tt.wantReqs > 1 && err != nil && !strings.Contains(err.Error(), "attempts") {
				t.Errorf("error %q does not say how many attempts were made", err)
			}
		})
	}
}

// TestCreateJobFindsItsOwnJob: when the answer to a create was a 500 (the
// hub may have created the job) and the retry finds the job existing, the
// create returns that job.
func TestCreateJobFindsItsOwnJob(t *testing.T) {
	h := newFlakyHub(t, error500, exists409, ok200)
	c, _ := newRetryClient(t, h.servers.URL, nil)
	b, err := c.CreateJob(t.Context(), "j", map[string]string{"type": "scheduleDeviceMethod"})
	if err != nil {
		t.Fatal(err)
	}
	var j struct{ JobID string }
	if json.Unmarshal(b, &j) != nil || j.JobID != "j" {
		t.Errorf("answer %s", b)
	}
	want := []string{"PUT /jobs/v2/j", "PUT /jobs/v2/j", "GET /jobs/v2/j"}
	if got := h.requests(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("requests %v, want %v", got, want)
	}
}

// TestMethodRetriedWhenNeverSent: a direct method whose connection could
// not be made never reached the hub, so it is sent again.
func TestMethodRetriedWhenNeverSent(t *testing.T) {
	h := newFlakyHub(t, ok200)
	var mu sync.Mutex
	dials := 0
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		mu.Lock()
		dials++
		first := dials == 1
		mu.Unlock()
		if first {
			return nil, &net.OpError{Op: "dial", Net: network, Err: errors.New("connection refused")}
		}
		var d net.Dialer
		return d.DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	c, waits := newRetryClient(t, h.servers.URL, &http.Client{Transport: tr})
	if _, err := c.InvokeMethod(t.Context(), "d1", iothub.MethodRequest{MethodName: "reboot"}); err != nil {
		t.Fatal(err)
	}
	if got := h.requests(); len(got) != 1 || len(*waits) != 1 {
		t.Errorf("requests %v, waits %v: want one request after one wait", got, *waits)
	}
}

// TestRetryStopsWithTheContext: a cancelled wait ends the call with the
// last error at once.
func TestRetryStopsWithTheContext(t *testing.T) {
	h := newFlakyHub(t, busy503)
	c, _ := newRetryClient(t, h.servers.URL, nil)
	ctx, cancel := context.WithCancel(t.Context())
	c.sleep = func(context.Context, time.Duration) error { cancel(); return context.Canceled }
	_, err := c.GetJob(ctx, "j")
	var he *iothub.Error
	if !errors.As(err, &he) || he.Code != iothub.CodeServiceUnavailable {
		t.Errorf("error %v, want the 503", err)
	}
	if n := len(h.requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestBackoffAndRetryAfter(t *testing.T) {
	p := RetryPolicy{BaseDelay: 100 * time.Millisecond, MaxDelay: time.Second}.withDefaults()
	for n, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 5: time.Second, 30: time.Second} {
		for range 20 {
			if d := p.backoff(n); d < want/2 || d > want {
				t.Errorf("backoff(%d) = %v, want within [%v, %v]", n, d, want/2, want)
			}
		}
	}
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tt := range []struct {
		v    string
		want time.Duration
		ok   bool
	}{
		{"", 0, false},
		{"7", 7 * time.Second, true},
		{"-1", 0, false},
		{"soon", 0, false},
		{now.Add(5 * time.Second).Format(http.TimeFormat), 5 * time.Second, true},
		{now.Add(-5 * time.Second).Format(http.TimeFormat), 0, true},
	} {
		d, ok := retryAfter(http.Header{"Retry-After": {tt.v}}, now)
		if d != tt.want || ok != tt.ok {
			t.Errorf("Retry-After %q: %v, %v; want %v, %v", tt.v, d, ok, tt.want, tt.ok)
		}
	}
}
