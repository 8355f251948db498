package restapi_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/hubjobs/restapi"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// TestConcurrentMethods holds 1,000 direct-method calls in flight at once:
// no device answers until every call has reached its device, so the test
// passes only if the API serves them all concurrently. It runs once through
// the handler alone and once over HTTPS, where 1,000 calls in flight over
// HTTP/1.1 take 1,000 connections.
func TestConcurrentMethods(t *testing.T) {
	const n = 1000
	for _, overHTTPS := range []bool{false, true} {
		name := "handler"
		if overHTTPS {
			name = "https"
		}
		t.Run(name, func(t *testing.T) {
			// On two busy cores 1,000 handshakes may take longer than the
			// usual bounds, so the server and client wait for them.
			e := newEnv(t, envOptions{config: func(c *restapi.Config) { c.ReadHeaderTimeout = 5 * time.Minute }})
			ctx := context.Background()
			for i := range n {
				id := fmt.Sprintf("c%04d", i)
				if _, err := e.reg.CreateDevice(ctx, registry.Device{DeviceID: id}); err != nil {
					t.Fatal(err)
				}
				e.link.setOnline(id)
			}
			e.link.barrierN = n
			call := e.handlerCall
			if overHTTPS {
				tc := clientTLS.Clone()
				// Resume the first connection's session to make the rest cheaper.
				tc.ClientSessionCache = tls.NewLRUClientSessionCache(0)
				hc := &http.Client{Transport: &http.Transport{TLSClientConfig: tc, MaxIdleConnsPerHost: n}}
				defer hc.CloseIdleConnections()
				client, err := restapi.NewClient(restapi.ServiceConnectionString(hubHost, e.policies["service"]), restapi.ClientOptions{BaseURL: e.base, HTTPClient: hc})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := client.InvokeMethod(ctx, "c0000", iothub.MethodRequest{MethodName: "echo"}); err != nil {
					t.Fatal(err)
				}
				call = func(id string, req iothub.MethodRequest) (iothub.MethodResult, error) {
					return client.InvokeMethod(ctx, id, req)
				}
			}

			start := time.Now()
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i := range n {
				wg.Go(func() {
					id := fmt.Sprintf("c%04d", i)
					want := fmt.Sprintf(`{"i":%d}`, i)
					// The longest timeout IoT Hub allows: the calls wait at the
					// barrier until the last of the n connections is made.
					timeout := 300
					res, err := call(id, iothub.MethodRequest{MethodName: "barrier", Payload: []byte(want), ResponseTimeoutInSeconds: &timeout})
					switch {
					case err != nil:
						errs <- fmt.Errorf("%s: %w", id, err)
					case res.Status != 200 || string(res.Payload) != want:
						errs <- fmt.Errorf("%s: answer %d %s", id, res.Status, res.Payload)
					}
				})
			}
			// A bound, not a measurement: if the calls were serialised the
			// barrier would never open, and the test must end rather than hang.
			select {
			case <-e.link.barrier:
			case <-time.After(3 * time.Minute):
				close(e.link.abort)
				t.Errorf("only %d of %d calls reached their devices together", e.link.count(), n)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			t.Logf("%d concurrent method calls in %v (%d connections)", n, time.Since(start).Round(time.Millisecond), e.conns.count())
		})
	}
}

// handlerCall invokes a method through the server's handler, without a network.
func (e *env) handlerCall(id string, req iothub.MethodRequest) (iothub.MethodResult, error) {
	body := fmt.Sprintf(`{"methodName":%q,"payload":%s}`, req.MethodName, req.Payload)
	r := httptest.NewRequest("POST", "/twins/"+id+"/methods"+v, strings.NewReader(body))
	r.Header.Set("Authorization", e.token("service"))
	w := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(w, r)
	if w.Code != 200 {
		return iothub.MethodResult{}, restapi.ParseError(w.Code, w.Header(), w.Body.Bytes())
	}
	var res iothub.MethodResult
	err := json.Unmarshal(w.Body.Bytes(), &res)
	return res, err
}
