package restapi_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/hubjobs/restapi"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// TestConcurrentMethods holds 1,000 direct-method calls in flight at once
// over HTTPS: no device answers until every call has reached its device, so
// the test passes only if the API serves them all concurrently.
func TestConcurrentMethods(t *testing.T) {
	const n = 1000
	e := newEnv(t, envOptions{})
	ctx := context.Background()
	for i := range n {
		id := fmt.Sprintf("c%04d", i)
		if _, err := e.reg.CreateDevice(ctx, registry.Device{DeviceID: id}); err != nil {
			t.Fatal(err)
		}
		e.link.setOnline(id)
	}
	e.link.barrierN = n
	// 1,000 calls in flight over HTTP/1.1 need 1,000 connections; on two
	// busy cores their handshakes may take longer than net/http's default
	// 10 s, so this client waits for them, and resumes the session of a
	// first connection to make them cheaper.
	tc := clientTLS.Clone()
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

	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			id := fmt.Sprintf("c%04d", i)
			res, err := client.InvokeMethod(ctx, id, iothub.MethodRequest{MethodName: "barrier", Payload: []byte(fmt.Sprintf(`{"i":%d}`, i))})
			switch {
			case err != nil:
				errs <- fmt.Errorf("%s: %w", id, err)
			case res.Status != 200 || string(res.Payload) != fmt.Sprintf(`{"i":%d}`, i):
				errs <- fmt.Errorf("%s: answer %d %s", id, res.Status, res.Payload)
			}
		})
	}
	// A bound, not a measurement: if the calls were serialised the barrier
	// would never open, and the test must end rather than hang.
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
	t.Logf("%d concurrent method calls over HTTPS in %v (%d connections)", n, time.Since(start).Round(time.Millisecond), e.conns.count())
}
