package restapi_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs/restapi"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// TestServeShutdown: ending Serve's context stops it even while a method
// call waits for a device that never answers; the graceful part is bounded
// by ShutdownTimeout, after which the call's context is cancelled.
func TestServeShutdown(t *testing.T) {
	e := newEnv(t, envOptions{config: func(c *restapi.Config) { c.ShutdownTimeout = 50 * time.Millisecond }})
	e.createDevices("s1")
	callErr := make(chan error, 1)
	go func() {
		_, err := e.client.InvokeMethod(context.Background(), "s1", iothub.MethodRequest{MethodName: "silent", ResponseTimeoutInSeconds: ptr(300)})
		callErr <- err
	}()
	select {
	case <-e.link.silentArrived:
	case err := <-callErr:
		t.Fatalf("the call ended before reaching the device: %v", err)
	}
	if err := e.stop(); err != nil {
		t.Fatalf("Serve returned %v", err)
	}
	if err := <-callErr; err == nil {
		t.Error("the cut call succeeded")
	}
}

func ptr[T any](v T) *T { return &v }

func TestParseError(t *testing.T) {
	tests := []struct {
		name   string
		status int
		header string
		body   string
		want   iothub.Code
		msg    string
	}{
		{"legacy form", 404, "DeviceNotFound", `{"Message":"ErrorCode:DeviceNotFound;Device d1 not found","ExceptionMessage":"Tracking ID:x-TimeStamp:y"}`, iothub.CodeDeviceNotFound, "Device d1 not found"},
		{"legacy form without header", 401, "", `{"Message":"ErrorCode:IotHubUnauthorizedAccess;Unauthorized","ExceptionMessage":""}`, iothub.CodeIotHubUnauthorizedAccess, "Unauthorized"},
		{"json form", 404, "DeviceNotOnline", `{"Message":"{\"errorCode\":404103,\"trackingId\":\"t\",\"message\":\"Timed out waiting for device to connect.\",\"info\":{\"timeout\":\"00:00:00\"},\"timestampUtc\":\"2018-08-24T17:49:33.201157Z\"}","ExceptionMessage":""}`, iothub.CodeDeviceNotOnline, "Timed out waiting for device to connect."},
		{"not JSON", 502, "", `<html>bad gateway</html>`, iothub.Code{Name: "Bad Gateway", Number: 502000}, "<html>bad gateway</html>"},
		{"empty", 503, "", ``, iothub.Code{Name: "Service Unavailable", Number: 503000}, "Service Unavailable"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.header != "" {
				h.Set("iothub-errorcode", tc.header)
			}
			got := restapi.ParseError(tc.status, h, []byte(tc.body))
			if got.Code != tc.want || got.Message != tc.msg {
				t.Errorf("got %+v %q, want %+v %q", got.Code, got.Message, tc.want, tc.msg)
			}
		})
	}
	// Round trip: every body the server writes parses back to its code.
	for _, c := range []iothub.Code{iothub.CodeDeviceNotFound, iothub.CodeArgumentInvalid, iothub.CodeGatewayTimeout, iothub.CodeJobNotFound, iothub.CodeThrottlingMaxActiveJobCountExceeded} {
		e := &iothub.Error{Code: c, Message: "m;with:odd chars", Info: map[string]any{"k": "v"}}
		h := http.Header{"Iothub-Errorcode": {c.Name}}
		got := restapi.ParseError(e.HTTPStatus(), h, e.HTTPBody("tid", time.Now()))
		if got.Code != c {
			t.Errorf("%s: parsed %+v", c.Name, got.Code)
		}
		var outer map[string]string
		if json.Unmarshal(e.HTTPBody("tid", time.Now()), &outer) != nil {
			t.Errorf("%s: body is not JSON", c.Name)
		}
	}
}

// TestSlowBodyIsCut: a request whose body never arrives does not hold its
// connection. Refused before its body is read, it is answered at once and
// the connection closed; authorized, its body read is cut after
// BodyReadTimeout.
func TestSlowBodyIsCut(t *testing.T) {
	tests := []struct {
		name        string
		bodyTimeout time.Duration
		auth        bool
		wantStatus  string
	}{
		// An hour: only not waiting for the body answers this one in time.
		{name: "unauthenticated", bodyTimeout: time.Hour, auth: false, wantStatus: "401"},
		{name: "authenticated", bodyTimeout: 50 * time.Millisecond, auth: true, wantStatus: "400"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, envOptions{config: func(c *restapi.Config) { c.BodyReadTimeout = tt.bodyTimeout }})
			c, err := tls.Dial("tcp", strings.TrimPrefix(e.base, "https://"), clientTLS)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			hdr := "POST /devices/query?api-version=2021-04-12 HTTP/1.1\r\nHost: " + hubHost +
				"\r\nContent-Type: application/json\r\nContent-Length: 100\r\n"
			if tt.auth {
				hdr += "Authorization: " + e.token("iothubowner") + "\r\n"
			}
			// One byte of the hundred promised, then silence.
			if _, err := io.WriteString(c, hdr+"\r\n{"); err != nil {
				t.Fatal(err)
			}
			_ = c.SetReadDeadline(time.Now().Add(20 * time.Second)) // a hang guard, not a measurement
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no answer while the body is incomplete: %v", err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("read answer: %v", err)
			}
			if got := strconv.Itoa(resp.StatusCode); got != tt.wantStatus {
				t.Errorf("status %s, want %s: %s", got, tt.wantStatus, body)
			}
			if resp.Header.Get("iothub-errorcode") == "" {
				t.Errorf("no iothub-errorcode: %v", resp.Header)
			}
			if !resp.Close {
				t.Error("the connection is kept for a body that never came")
			}
			if n, err := c.Read(make([]byte, 1)); err != io.EOF {
				t.Errorf("connection still open: read %d, %v", n, err)
			}
		})
	}
}

// TestRequestsNetHTTPRefusesGetHubErrors: requests net/http answers on its
// own, before any handler, get IoT Hub's error body and errorcode header.
func TestRequestsNetHTTPRefusesGetHubErrors(t *testing.T) {
	e := newEnv(t, envOptions{})
	tests := []struct {
		name   string
		req    string
		status int
	}{
		{"malformed URL", "GET /devices/%zz?api-version=2021-04-12 HTTP/1.1\r\nHost: h\r\n\r\n", 400},
		{"malformed request line", "GET\r\nHost: h\r\n\r\n", 400},
		{"no Host header", "GET /devices?api-version=2021-04-12 HTTP/1.1\r\n\r\n", 400},
		{"headers too large", "GET /devices?api-version=2021-04-12 HTTP/1.1\r\nHost: h\r\nX-Big: " + strings.Repeat("b", restapi.MaxHeaderBytes+8192) + "\r\n\r\n", 431},
		{"unknown transfer coding", "POST /devices/query?api-version=2021-04-12 HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip\r\n\r\n", 501},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tls.Dial("tcp", strings.TrimPrefix(e.base, "https://"), clientTLS)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second)) // a hang guard
			go func() { _, _ = io.WriteString(c, tt.req) }()    // the server may answer before reading it all
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("read answer: %v", err)
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				t.Fatalf("read body: %v", err)
			}
			a := answer{status: resp.StatusCode, header: resp.Header, body: body}
			a.wantError(t, tt.status, "GenericBadRequest", "")
		})
	}
}
