package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

const testServiceCS = "HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=c2VjcmV0"

func TestHubClient(t *testing.T) {
	var seen []string
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen = append(seen, r.Method+" "+r.URL.Path+" "+r.URL.RawQuery+" "+r.Header.Get("If-Match"))
		if !strings.HasPrefix(r.Header.Get("Authorization"), "SharedAccessSignature sr=localhost&sig=") ||
			!strings.Contains(r.Header.Get("Authorization"), "&skn=iothubowner") {
			t.Errorf("authorization %q", r.Header.Get("Authorization"))
		}
		w.Header().Set("Content-Type", "application/json; charset=utf-8")
		switch {
		case r.URL.Path == "/devices/missing":
			w.Header().Set("iothub-errorcode", "DeviceNotFound")
			w.WriteHeader(404)
			w.Write([]byte(`{"Message":"ErrorCode:DeviceNotFound;Device missing not found","ExceptionMessage":"Tracking ID:x"}`))
		case r.URL.Path == "/twins/slow/methods":
			w.WriteHeader(504)
			w.Write([]byte(`{"Message":"{\"errorCode\":504101,\"message\":\"Timed out waiting for the response from device.\"}"}`))
		case r.URL.Path == "/devices/query" && r.Header.Get("x-ms-continuation") == "":
			w.Header().Set("x-ms-continuation", "page2")
			w.Write([]byte(`[{"deviceId":"a"}]`))
		case r.URL.Path == "/devices/query":
			w.Write([]byte(`[{"deviceId":"b"}]`))
		case r.URL.Path == "/jobs/v2/query":
			w.Write([]byte(`[]`))
		case r.Method == http.MethodDelete:
			w.WriteHeader(204)
		default:
			w.Write([]byte(`{"ok":true}`))
		}
	}))
	defer srv.Close()
	pool := srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs
	h, err := newHubClient(testServiceCS, srv.URL, &tls.Config{RootCAs: pool, ServerName: "example.com"})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	_, err = h.GetDevice(ctx, "missing")
	var he *iothub.Error
	if !errors.As(err, &he) || he.Code.Name != "DeviceNotFound" || he.Message != "Device missing not found" {
		t.Errorf("GetDevice(missing) = %#v, want DeviceNotFound", err)
	}
	_, err = h.Invoke(ctx, "slow", methodRequest{MethodName: "m"})
	if !errors.As(err, &he) || he.Code.Number != 504101 || he.Message != "Timed out waiting for the response from device." {
		t.Errorf("Invoke(slow) = %#v", err)
	}
	raw, err := h.Query(ctx, "SELECT * FROM devices")
	if err != nil {
		t.Fatal(err)
	}
	var items []map[string]string
	json.Unmarshal(raw, &items)
	if len(items) != 2 || items[0]["deviceId"] != "a" || items[1]["deviceId"] != "b" {
		t.Errorf("query pages joined into %s", raw)
	}
	if err := h.DeleteDevice(ctx, "d 1"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.UpdateTwin(ctx, "d", json.RawMessage(`{}`), "AAA"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.ListJobs(ctx, "", "running"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		`DELETE /devices/d 1 api-version=2021-04-12 "*"`, // quoted, as the Node SDK sends it
		`PATCH /twins/d api-version=2021-04-12 "AAA"`,
		"GET /jobs/v2/query jobStatus=running&api-version=2021-04-12 ",
	}
	got := strings.Join(seen, "\n")
	for _, w := range want {
		if !strings.Contains(got, w) {
			t.Errorf("requests:\n%s\nlack %q", got, w)
		}
	}
}
