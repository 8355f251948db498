package restapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fleetsim/fleetsim/hubjobs/restapi"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

const v = "?api-version=2021-04-12"

func TestDeviceEndpoints(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()

	b, err := e.client.CreateDevice(ctx, "dev-1")
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	var d struct {
		DeviceID       string `json:"deviceId"`
		Etag           string `json:"etag"`
		Status         string `json:"status"`
		Authentication struct {
			SymmetricKey struct{ PrimaryKey, SecondaryKey string } `json:"symmetricKey"`
		} `json:"authentication"`
	}
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatal(err)
	}
	if d.DeviceID != "dev-1" || d.Status != "enabled" || len(d.Authentication.SymmetricKey.PrimaryKey) != 44 {
		t.Errorf("created device %s", b)
	}

	_, err = e.client.CreateDevice(ctx, "dev-1")
	wantCode(t, err, iothub.CodeDeviceAlreadyExists)

	// Node's Registry.create: no If-Match, id encoded, body with deviceId.
	a := e.do("PUT", "/devices/dev%3A2"+v, `{"deviceId":"dev:2","status":"disabled","authentication":{"type":"sas","symmetricKey":{"primaryKey":"","secondaryKey":""}},"someFutureField":1}`, nil)
	if a.status != 200 {
		t.Fatalf("PUT dev:2: %d %s", a.status, a.body)
	}
	// Body without deviceId takes the path's.
	a = e.do("PUT", "/devices/dev-3"+v, `{}`, nil)
	if a.status != 200 || !strings.Contains(string(a.body), `"deviceId":"dev-3"`) {
		t.Fatalf("PUT dev-3: %d %s", a.status, a.body)
	}

	// Update with If-Match "*" (Node's Registry.update) and with the etag.
	a = e.do("PUT", "/devices/dev:2"+v, `{"deviceId":"dev:2","status":"enabled"}`, map[string]string{"If-Match": `"*"`})
	if a.status != 200 || !strings.Contains(string(a.body), `"status":"enabled"`) {
		t.Fatalf("update dev:2: %d %s", a.status, a.body)
	}
	a.json(t, &d)
	a = e.do("PUT", "/devices/dev:2"+v, `{"deviceId":"dev:2","status":"disabled"}`, map[string]string{"If-Match": `"stale"`})
	a.wantError(t, 412, "PreconditionFailed", "")
	a = e.do("PUT", "/devices/dev:2"+v, `{"deviceId":"dev:2","status":"disabled"}`, map[string]string{"If-Match": `"` + d.Etag + `"`})
	if a.status != 200 {
		t.Fatalf("update with etag: %d %s", a.status, a.body)
	}

	b, err = e.client.GetDevice(ctx, "dev:2")
	if err != nil || !strings.Contains(string(b), `"status":"disabled"`) {
		t.Fatalf("get dev:2: %v %s", err, b)
	}
	_, err = e.client.GetDevice(ctx, "nope")
	he := wantCode(t, err, iothub.CodeDeviceNotFound)
	if !strings.Contains(he.Message, "nope") {
		t.Errorf("not found message %q", he.Message)
	}
	// The legacy body form lets Node raise DeviceNotFoundError (§2.3).
	a = e.do("GET", "/devices/nope"+v, "", nil)
	a.wantError(t, 404, "DeviceNotFound", "nope")
	if !strings.Contains(string(a.body), `"Message":"ErrorCode:DeviceNotFound;`) {
		t.Errorf("404 body %s", a.body)
	}

	// List: Node sends GET /devices/, C# /devices/?top=n.
	for _, path := range []string{"/devices" + v, "/devices/" + v, "/devices/?top=1000&api-version=2020-09-30"} {
		a = e.do("GET", path, "", nil)
		var list []map[string]any
		a.json(t, &list)
		if a.status != 200 || len(list) != 3 {
			t.Errorf("GET %s: %d, %d devices", path, a.status, len(list))
		}
	}
	b, err = e.client.ListDevices(ctx, 2)
	var list []map[string]any
	if err != nil || json.Unmarshal(b, &list) != nil || len(list) != 2 {
		t.Errorf("ListDevices(2): %v %s", err, b)
	}

	// Statistics.
	b, err = e.client.DeviceStatistics(ctx)
	if err != nil || compact(t, b) != `{"totalDeviceCount":3,"enabledDeviceCount":2,"disabledDeviceCount":1}` {
		t.Errorf("device statistics: %v %s", err, b)
	}
	e.link.setOnline("dev-1")
	b, err = e.client.ServiceStatistics(ctx)
	if err != nil || compact(t, b) != `{"connectedDeviceCount":1}` {
		t.Errorf("service statistics: %v %s", err, b)
	}

	// Delete: 204 with If-Match "*", then gone.
	a = e.do("DELETE", "/devices/dev-3"+v, "", map[string]string{"If-Match": `"*"`})
	if a.status != 204 || len(a.body) != 0 {
		t.Errorf("DELETE: %d %q", a.status, a.body)
	}
	if err := e.client.DeleteDevice(ctx, "dev-3", ""); err == nil {
		t.Error("second delete succeeded")
	} else {
		wantCode(t, err, iothub.CodeDeviceNotFound)
	}
}

func TestBulkRegistry(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	// Node's addDevices: id + importMode, capitalised modes elsewhere, and
	// the rest of the device object.
	b, err := e.client.BulkUpdate(ctx, []map[string]any{
		{"id": "b1", "importMode": "create", "status": "enabled", "authentication": map[string]any{"type": "sas", "symmetricKey": map[string]string{"primaryKey": "", "secondaryKey": ""}}},
		{"id": "b2", "importMode": "create"},
	})
	if err != nil || !strings.Contains(string(b), `"isSuccessful":true`) {
		t.Fatalf("bulk create: %v %s", err, b)
	}
	b, err = e.client.BulkUpdate(ctx, []map[string]any{{"id": "b1", "importMode": "Delete"}, {"id": "b2", "importMode": "Delete"}})
	if err != nil || !strings.Contains(string(b), `"isSuccessful":true`) {
		t.Fatalf("bulk delete: %v %s", err, b)
	}
	b, _ = e.client.DeviceStatistics(ctx)
	if !strings.Contains(string(b), `"totalDeviceCount":0`) {
		t.Errorf("after bulk delete: %s", b)
	}
	// "." and ".." are ids no URL can name, so they are never created.
	b, err = e.client.BulkUpdate(ctx, []map[string]any{{"id": ".", "importMode": "create"}, {"id": "..", "importMode": "create"}})
	if err != nil || !strings.Contains(string(b), `"isSuccessful":false`) || strings.Count(string(b), `"errorCode":"ArgumentInvalid"`) != 2 {
		t.Errorf("bulk create of . and ..: %v %s", err, b)
	}
	b, _ = e.client.DeviceStatistics(ctx)
	if !strings.Contains(string(b), `"totalDeviceCount":0`) {
		t.Errorf("after bulk create of . and ..: %s", b)
	}

	many := make([]map[string]any, 101)
	for i := range many {
		many[i] = map[string]any{"id": fmt.Sprintf("m%d", i), "importMode": "create"}
	}
	_, err = e.client.BulkUpdate(ctx, many)
	wantCode(t, err, iothub.CodeTooManyDevices)
	a := e.do("POST", "/devices"+v, `[]`, nil)
	a.wantError(t, 400, "ArgumentInvalid", "empty")
	a = e.do("POST", "/devices"+v, `[{"id":"x","importMode":"create"},{"id":"x","importMode":"create"}]`, nil)
	a.wantError(t, 400, "DeviceDefinedMultipleTimes", "x")
}

func TestTwinEndpoints(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	e.createDevices("t1")

	b, err := e.client.GetTwin(ctx, "t1")
	var twin struct {
		DeviceID   string         `json:"deviceId"`
		Etag       string         `json:"etag"`
		Tags       map[string]any `json:"tags"`
		Properties struct {
			Desired map[string]any `json:"desired"`
		} `json:"properties"`
	}
	if err != nil || json.Unmarshal(b, &twin) != nil || twin.DeviceID != "t1" {
		t.Fatalf("get twin: %v %s", err, b)
	}

	// Node's updateTwin: If-Match quoted; "*" as "\"*\"".
	a := e.do("PATCH", "/twins/t1"+v, `{"tags":{"floor":3},"properties":{"desired":{"fan":"on"},"reported":{}}}`, map[string]string{"If-Match": `"*"`})
	if a.status != 200 {
		t.Fatalf("patch: %d %s", a.status, a.body)
	}
	a.json(t, &twin)
	if twin.Tags["floor"] != float64(3) || twin.Properties.Desired["fan"] != "on" {
		t.Errorf("patched twin %s", a.body)
	}
	// Quoted and unquoted etags both match; a stale one is 412.
	b, err = e.client.UpdateTwin(ctx, "t1", json.RawMessage(`{"tags":{"floor":4}}`), twin.Etag)
	if err != nil {
		t.Fatalf("patch with etag: %v", err)
	}
	_ = json.Unmarshal(b, &twin)
	a = e.do("PATCH", "/twins/t1"+v, `{"tags":{"floor":5}}`, map[string]string{"If-Match": twin.Etag})
	if a.status != 200 {
		t.Fatalf("patch with unquoted etag: %d %s", a.status, a.body)
	}
	_, err = e.client.UpdateTwin(ctx, "t1", json.RawMessage(`{"tags":{"floor":6}}`), twin.Etag)
	wantCode(t, err, iothub.CodePreconditionFailed)

	// Replace: C# sends a whole Twin; tags and desired are replaced.
	b, err = e.client.ReplaceTwin(ctx, "t1", json.RawMessage(`{"deviceId":"t1","etag":"*","status":"enabled","tags":{"room":"a"},"properties":{"desired":{"x":1}}}`), "*")
	if err != nil {
		t.Fatalf("replace: %v", err)
	}
	twin.Tags = nil
	_ = json.Unmarshal(b, &twin)
	if _, ok := twin.Tags["floor"]; ok || twin.Tags["room"] != "a" {
		t.Errorf("replaced twin %s", b)
	}

	_, err = e.client.GetTwin(ctx, "missing")
	wantCode(t, err, iothub.CodeDeviceNotFound)
	a = e.do("PATCH", "/twins/t1"+v, `[1,2]`, nil)
	a.wantError(t, 400, "ArgumentInvalid", "twin")
}

func TestInvokeMethod(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	e.createDevices("m1")
	if _, err := e.client.CreateDevice(ctx, "offline"); err != nil {
		t.Fatal(err)
	}

	res, err := e.client.InvokeMethod(ctx, "m1", iothub.MethodRequest{MethodName: "echo", Payload: json.RawMessage(`{"n":1}`)})
	if err != nil || res.Status != 200 || compact(t, res.Payload) != `{"n":1}` {
		t.Fatalf("echo: %v %+v", err, res)
	}

	// A device's 500 is HTTP 200 {status:500}: the Node SDK retries HTTP 500s.
	a := e.do("POST", "/twins/m1/methods"+v, `{"methodName":"fail","payload":null,"responseTimeoutInSeconds":30,"connectTimeoutInSeconds":0}`, nil)
	if a.status != 200 || compact(t, a.body) != `{"status":500,"payload":{"error":"device failed"}}` {
		t.Errorf("fail: %d %s", a.status, a.body)
	}
	// An empty answer is payload null.
	a = e.do("POST", "/twins/m1/methods"+v, `{"methodName":"empty"}`, nil)
	if a.status != 200 || compact(t, a.body) != `{"status":200,"payload":null}` {
		t.Errorf("empty: %d %s", a.status, a.body)
	}
	// Old clients' timeoutInSeconds is responseTimeoutInSeconds.
	a = e.do("POST", "/twins/m1/methods"+v, `{"methodName":"echo","payload":"x","timeoutInSeconds":10}`, nil)
	if a.status != 200 || compact(t, a.body) != `{"status":200,"payload":"x"}` {
		t.Errorf("timeoutInSeconds: %d %s", a.status, a.body)
	}
	a = e.do("POST", "/twins/m1/methods"+v, `{"methodName":"echo","timeoutInSeconds":1}`, nil)
	a.wantError(t, 400, "ArgumentInvalid", "responseTimeoutInSeconds")
	// A name longer than IoT Hub allows is refused before the device sees it.
	a = e.do("POST", "/twins/m1/methods"+v, `{"methodName":"`+strings.Repeat("m", 70000)+`"}`, nil)
	a.wantError(t, 400, "ArgumentInvalid", "method name")

	_, err = e.client.InvokeMethod(ctx, "offline", iothub.MethodRequest{MethodName: "echo"})
	he := wantCode(t, err, iothub.CodeDeviceNotOnline)
	if he.Message != "Timed out waiting for device to connect." {
		t.Errorf("offline message %q", he.Message)
	}
	_, err = e.client.InvokeMethod(ctx, "ghost", iothub.MethodRequest{MethodName: "echo"})
	wantCode(t, err, iothub.CodeDeviceNotFound)

	// Errors the real registry reaches only after a timeout.
	e.faults.setInvokeErr(&iothub.Error{Code: iothub.CodeGatewayTimeout, Message: "Timed out waiting for the response from device.", Info: map[string]any{}})
	a = e.do("POST", "/twins/m1/methods"+v, `{"methodName":"echo"}`, nil)
	a.wantError(t, 504, "GatewayTimeout", "Timed out waiting for the response from device.")
	e.faults.setInvokeErr(fmt.Errorf("wrapped: %w", iothub.Errorf(iothub.CodeThrottlingException, "slow down")))
	a = e.do("POST", "/twins/m1/methods"+v, `{"methodName":"echo"}`, nil)
	a.wantError(t, 429, "ThrottlingException", "slow down")
	e.faults.setInvokeErr(fmt.Errorf("disk on fire"))
	a = e.do("POST", "/twins/m1/methods"+v, `{"methodName":"echo"}`, nil)
	a.wantError(t, 500, "ServerError", "Internal server error")
	if strings.Contains(string(a.body), "disk") {
		t.Errorf("500 body leaks the cause: %s", a.body)
	}
}

func TestQueryPaging(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	for i := range 5 {
		e.createDevices(fmt.Sprintf("q%d", i))
	}
	// Raw paging: x-ms-continuation present, then absent (not empty) on the last page.
	var all []string
	cont := ""
	pages := 0
	for {
		hdr := map[string]string{"x-ms-max-item-count": "2"}
		if cont != "" {
			hdr["x-ms-continuation"] = cont
		}
		a := e.do("POST", "/devices/query"+v, `{"query":"SELECT * FROM devices"}`, hdr)
		if a.status != 200 {
			t.Fatalf("query: %d %s", a.status, a.body)
		}
		if got := a.header.Get("x-ms-item-type"); got != "Twin" {
			t.Errorf("x-ms-item-type %q", got)
		}
		var items []struct {
			DeviceID string `json:"deviceId"`
		}
		a.json(t, &items)
		for _, it := range items {
			all = append(all, it.DeviceID)
		}
		pages++
		vals, present := a.header["X-Ms-Continuation"]
		if !present {
			break
		}
		if len(vals) != 1 || vals[0] == "" {
			t.Fatalf("x-ms-continuation %q", vals)
		}
		cont = vals[0]
		if pages > 10 {
			t.Fatal("paging does not end")
		}
	}
	if pages != 3 || strings.Join(all, ",") != "q0,q1,q2,q3,q4" {
		t.Errorf("%d pages: %v", pages, all)
	}

	items, err := e.client.Query(ctx, "SELECT deviceId FROM devices WHERE deviceId IN ['q1','q3']", 1)
	if err != nil || len(items) != 2 || compact(t, items[0]) != `{"deviceId":"q1"}` {
		t.Errorf("projection query: %v %s", err, items)
	}
	p, err := e.client.QueryPage(ctx, "SELECT COUNT() AS n FROM devices", 0, "")
	if err != nil || p.ItemType != "Raw" || len(p.Items) != 1 || compact(t, p.Items[0]) != `{"n":5}` || p.Continuation != "" {
		t.Errorf("count: %v %+v", err, p)
	}
	// Page size is capped, not refused.
	a := e.do("POST", "/devices/query"+v, `{"query":"SELECT * FROM devices"}`, map[string]string{"x-ms-max-item-count": "5000"})
	if a.status != 200 {
		t.Errorf("page size 5000: %d %s", a.status, a.body)
	}
	_, err = e.client.Query(ctx, "SELECT * FROM devices WHERE", 0)
	wantCode(t, err, iothub.CodeArgumentInvalid)
	a = e.do("POST", "/devices/query"+v, `{"query":"SELECT * FROM devices"}`, map[string]string{"x-ms-continuation": "garbage"})
	a.wantError(t, 400, "ArgumentInvalid", "continuation")
}

func TestKeepAlive(t *testing.T) {
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	e.createDevices("k1")
	before := e.conns.count()
	for range 20 {
		if _, err := e.client.GetTwin(ctx, "k1"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.client.GetDevice(ctx, "nope"); err == nil {
			t.Fatal("found nope")
		}
	}
	// Everything, errors included, went over the connection already open.
	if got := e.conns.count() - before; got != 0 {
		t.Errorf("%d new connections for 40 sequential requests", got)
	}
	if e.conns.count() != 1 {
		t.Errorf("%d connections in all", e.conns.count())
	}
}

func TestRequestIDAndHeaders(t *testing.T) {
	e := newEnv(t, envOptions{})
	a := e.do("GET", "/statistics/devices"+v, "", map[string]string{"Request-Id": "3f1c-given"})
	if got := a.header.Get("x-ms-request-id"); got != "3f1c-given" {
		t.Errorf("x-ms-request-id %q", got)
	}
	a = e.do("GET", "/devices/none"+v, "", map[string]string{"Request-Id": "abc-123"})
	if !strings.Contains(string(a.body), "Tracking ID:abc123-G:0") {
		t.Errorf("tracking id not derived from the request id: %s", a.body)
	}
}

func TestExtraHandlers(t *testing.T) {
	e := newEnv(t, envOptions{config: func(c *restapi.Config) {
		c.Extra = map[string]http.Handler{
			"/$iothub/websocket": http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ws")) }),
			"/debug/":            http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("debug " + r.URL.Path)) }),
		}
	}})
	for path, want := range map[string]string{"/$iothub/websocket": "ws", "/debug/x/y": "debug /debug/x/y"} {
		resp, err := e.http.Get(e.base + path)
		if err != nil {
			t.Fatal(err)
		}
		var sb strings.Builder
		_, _ = io.Copy(&sb, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || sb.String() != want {
			t.Errorf("GET %s: %d %q", path, resp.StatusCode, sb.String())
		}
	}
}

// TestClientBulkUpdateTakesIoTHubs400 plays IoT Hub, which answers a bulk
// request with failed entries with 400 and the BulkRegistryOperationResult:
// the client returns the result, and other 400s stay errors.
func TestClientBulkUpdateTakesIoTHubs400(t *testing.T) {
	for _, tt := range []struct {
		name, body string
		wantErr    bool
	}{
		{"result", `{"isSuccessful":false,"errors":[{"deviceId":"d1","errorCode":"DeviceAlreadyExists","errorStatus":"exists"}],"warnings":[]}`, false},
		{"error", `{"Message":"ErrorCode:ArgumentInvalid;bad","ExceptionMessage":""}`, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, tt.body)
			}))
			defer srv.Close()
			c, err := restapi.NewClient("HostName=hub.local;SharedAccessKeyName=iothubowner;SharedAccessKey=a2V5", restapi.ClientOptions{BaseURL: srv.URL})
			if err != nil {
				t.Fatal(err)
			}
			b, err := c.BulkUpdate(context.Background(), []map[string]any{{"id": "d1", "importMode": "create"}})
			if tt.wantErr {
				if err == nil {
					t.Errorf("no error for %s", tt.body)
				}
				return
			}
			if err != nil || string(b) != tt.body {
				t.Errorf("BulkUpdate = %s, %v", b, err)
			}
		})
	}
}
