package restapi_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/fleetsim/fleetsim/hubjobs/jobs"
	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/hubjobs/restapi"
	"github.com/fleetsim/fleetsim/internal/iothub"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
)

// hubHost is the hub name tokens are signed for; the server is reached at
// 127.0.0.1, as ClientOptions.BaseURL allows.
const hubHost = "testhub.azure-devices.net"

var (
	serverTLS *tls.Config
	clientTLS *tls.Config
)

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "restapi-test-")
	if err != nil {
		panic(err)
	}
	files, err := tlsutil.EnsureCerts(dir, hubHost)
	if err == nil {
		serverTLS, err = tlsutil.ServerConfig(files)
	}
	if err == nil {
		clientTLS, err = tlsutil.ClientConfig(files)
	}
	if err != nil {
		panic(err)
	}
	clientTLS.ServerName = "localhost"
	code := m.Run()
	os.RemoveAll(dir)
	if code == 0 {
		if err := goleak.Find(); err != nil {
			os.Stderr.WriteString("goroutine leak: " + err.Error() + "\n")
			code = 1
		}
	}
	os.Exit(code)
}

// env is one server on 127.0.0.1:0 over TLS with a real in-memory registry
// (behind a fault-injecting wrapper), a fake broker link whose devices answer
// direct methods, and clients.
type env struct {
	t        testing.TB
	srv      *restapi.Server
	reg      *registry.Registry
	faults   *faultRegistry
	link     *fakeLink
	engine   *jobs.Engine
	base     string
	policies map[string]restapi.Policy
	client   *restapi.Client // iothubowner
	http     *http.Client
	conns    *connCounter
	stop     func() error // ends Serve and returns its error; idempotent
}

type envOptions struct {
	// jobs runs a real jobs engine (memory store) over the registry.
	jobs bool
	// pacing is the engine's pacing profile (default unlimited).
	pacing string
	config func(*restapi.Config)
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	link := newFakeLink()
	reg, err := registry.New(registry.Options{Hostname: hubHost, Link: link})
	if err != nil {
		t.Fatalf("registry: %v", err)
	}
	t.Cleanup(func() { reg.Close() })
	link.reg = reg
	ps, err := restapi.DefaultPolicies()
	if err != nil {
		t.Fatalf("policies: %v", err)
	}
	e := &env{t: t, reg: reg, link: link, faults: &faultRegistry{Registry: reg}, policies: map[string]restapi.Policy{}}
	for _, p := range ps {
		e.policies[p.Name] = p
	}
	cfg := restapi.Config{Hostname: hubHost, Policies: ps}
	serveRegistry(&cfg, e.faults)
	if o.jobs {
		profile := jobs.Unlimited
		if o.pacing != "" {
			if profile, err = jobs.ParseProfile(o.pacing); err != nil {
				t.Fatal(err)
			}
		}
		e.engine, err = jobs.NewEngine(jobs.Config{Store: jobs.NewMemStore(), Methods: reg, Twins: reg, Devices: reg, Pacing: profile})
		if err != nil {
			t.Fatalf("jobs engine: %v", err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- e.engine.Run(ctx) }()
		t.Cleanup(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("engine: %v", err)
			}
		})
		cfg.Jobs = e.engine
	}
	if o.config != nil {
		o.config(&cfg)
	}
	if e.srv, err = restapi.New(cfg); err != nil {
		t.Fatalf("restapi.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	e.conns = &connCounter{Listener: ln}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(ctx, e.conns, serverTLS) }()
	e.base = "https://" + ln.Addr().String()
	tr := &http.Transport{TLSClientConfig: clientTLS, MaxIdleConnsPerHost: 16}
	e.http = &http.Client{Transport: tr}
	e.client = e.newClient("iothubowner")
	var once sync.Once
	var serveErr error
	e.stop = func() error {
		once.Do(func() {
			cancel()
			serveErr = <-done
		})
		return serveErr
	}
	t.Cleanup(func() {
		e.http.CloseIdleConnections()
		e.client.CloseIdleConnections()
		if err := e.stop(); err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return e
}

// newClient is a restapi.Client signing with the named policy.
func (e *env) newClient(policy string) *restapi.Client {
	e.t.Helper()
	c, err := restapi.NewClient(restapi.ServiceConnectionString(hubHost, e.policies[policy]), restapi.ClientOptions{BaseURL: e.base, TLSConfig: clientTLS})
	if err != nil {
		e.t.Fatalf("NewClient: %v", err)
	}
	e.t.Cleanup(c.CloseIdleConnections)
	return c
}

// token is a service SAS token for the named policy, valid for an hour.
func (e *env) token(policy string) string {
	p := e.policies[policy]
	return iothub.NewSAS(hubHost, p.PrimaryKey, p.Name, time.Now().Add(time.Hour))
}

// answer is a raw HTTP answer.
type answer struct {
	status int
	header http.Header
	body   []byte
}

// do sends a raw request signed as iothubowner unless hdr sets
// Authorization ("" to send none). path is sent as is; api-version is
// appended unless noVersion.
func (e *env) do(method, path, body string, hdr map[string]string) answer {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.base+path, rd)
	if err != nil {
		e.t.Fatalf("request: %v", err)
	}
	req.Header.Set("Authorization", e.token("iothubowner"))
	if body != "" {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	for k, v := range hdr {
		if v == "" {
			req.Header.Del(k)
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read: %v", method, path, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json; charset=utf-8" {
		e.t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	if resp.Header.Get("x-ms-request-id") == "" {
		e.t.Errorf("%s %s: no x-ms-request-id", method, path)
	}
	return answer{resp.StatusCode, resp.Header, b}
}

// wantError checks an error answer: status, iothub-errorcode header, and a
// body the Node SDK and C# SDK can parse, whose message contains msg.
func (a answer) wantError(t *testing.T, status int, code, msg string) {
	t.Helper()
	if a.status != status {
		t.Errorf("status %d, want %d (body %s)", a.status, status, a.body)
	}
	if got := a.header.Get("iothub-errorcode"); got != code {
		t.Errorf("iothub-errorcode %q, want %q", got, code)
	}
	var outer struct{ Message, ExceptionMessage string }
	if err := json.Unmarshal(a.body, &outer); err != nil || outer.Message == "" || !strings.HasPrefix(outer.ExceptionMessage, "Tracking ID:") {
		t.Errorf("body %s is not an IoT Hub error body (%v)", a.body, err)
	}
	he := restapi.ParseError(a.status, a.header, a.body)
	if he.Code.Name != code {
		t.Errorf("parsed code %q, want %q", he.Code.Name, code)
	}
	if !strings.Contains(he.Message, msg) {
		t.Errorf("message %q does not contain %q", he.Message, msg)
	}
}

// json decodes a success body.
func (a answer) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(a.body, v); err != nil {
		t.Fatalf("body %s: %v", a.body, err)
	}
}

// wantCode checks an error returned by the Client.
func wantCode(t *testing.T, err error, code iothub.Code) *iothub.Error {
	t.Helper()
	var he *iothub.Error
	if !errors.As(err, &he) {
		t.Fatalf("error %v (%T), want *iothub.Error %s", err, err, code.Name)
	}
	if he.Code != code {
		t.Fatalf("code %+v, want %+v (%v)", he.Code, code, err)
	}
	return he
}

// connCounter counts accepted connections, to see keep-alive at work.
type connCounter struct {
	net.Listener
	mu sync.Mutex
	n  int
}

func (c *connCounter) Accept() (net.Conn, error) {
	conn, err := c.Listener.Accept()
	if err == nil {
		c.mu.Lock()
		c.n++
		c.mu.Unlock()
	}
	return conn, err
}

func (c *connCounter) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n
}

// deviceHandlers is every device handler group's interface, as the registry
// (or faultRegistry around it) meets them all.
type deviceHandlers interface {
	restapi.Devices
	restapi.Statistics
	restapi.Twins
	restapi.Methods
	restapi.DeviceQueries
}

// serveRegistry gives r to every device handler group of cfg, as the hub's
// root does with its registry.
func serveRegistry(cfg *restapi.Config, r deviceHandlers) {
	cfg.Devices, cfg.Statistics, cfg.Twins, cfg.Methods, cfg.Queries = r, r, r, r, r
}

// faultRegistry is the real registry with injectable errors and method
// answers, for the error paths the real one reaches only with time.
type faultRegistry struct {
	*registry.Registry
	mu        sync.Mutex
	invokeErr error
	panicOn   string
}

func (f *faultRegistry) setInvokeErr(err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.invokeErr = err
}

func (f *faultRegistry) InvokeMethod(ctx context.Context, id string, req iothub.MethodRequest) (iothub.MethodResult, error) {
	f.mu.Lock()
	err, panicOn := f.invokeErr, f.panicOn
	f.mu.Unlock()
	if panicOn != "" && req.MethodName == panicOn {
		panic("injected panic")
	}
	if err != nil {
		return iothub.MethodResult{}, err
	}
	return f.Registry.InvokeMethod(ctx, id, req)
}

// fakeLink stands in for the broker (registry.DeviceLink): online devices
// are subscribed to methods and answer them on the calling goroutine.
// Method "echo" answers 200 with the payload, "fail" answers 500, "empty"
// answers with no body, "silent" never answers, and "barrier" waits until
// barrierN calls are in flight before answering.
type fakeLink struct {
	reg *registry.Registry

	mu       sync.Mutex
	online   map[string]bool
	inFlight int
	barrierN int
	barrier  chan struct{}
	abort    chan struct{}
	// silentArrived receives when a "silent" call reached its device.
	silentArrived chan struct{}
}

// newFakeLink returns a link whose reg the test sets once the registry is built.
func newFakeLink() *fakeLink {
	return &fakeLink{online: map[string]bool{}, barrier: make(chan struct{}), abort: make(chan struct{}), silentArrived: make(chan struct{}, 1)}
}

func (l *fakeLink) setOnline(id string) {
	l.mu.Lock()
	l.online[id] = true
	l.mu.Unlock()
	l.reg.DeviceConnected(id, []string{iothub.FilterDesired, iothub.FilterMethods})
}

// count is how many barrier calls arrived.
func (l *fakeLink) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inFlight
}

func (l *fakeLink) Disconnect(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.online, id)
}

func (l *fakeLink) Deliver(id, topic string, payload []byte) error {
	method, rid, err := iothub.ParseMethodRequestTopic(topic)
	if err != nil {
		return nil // twin answers and desired pushes: nothing to do
	}
	status, body := 200, payload
	switch method {
	case "fail":
		status, body = 500, []byte(`{"error":"device failed"}`)
	case "empty":
		body = nil
	case "silent":
		select {
		case l.silentArrived <- struct{}{}:
		default:
		}
		return nil // never answers
	case "barrier":
		l.mu.Lock()
		l.inFlight++
		if l.inFlight == l.barrierN {
			close(l.barrier)
		}
		l.mu.Unlock()
		select {
		case <-l.barrier:
		case <-l.abort:
			return errors.New("aborted")
		}
	}
	t, err := iothub.ParseDeviceTopic(id, iothub.MethodResponseTopic(status, rid))
	if err != nil {
		return err
	}
	l.reg.DevicePublished(id, t, body)
	return nil
}

// createDevices registers devices through the API and brings them online.
func (e *env) createDevices(ids ...string) {
	e.t.Helper()
	for _, id := range ids {
		if _, err := e.client.CreateDevice(context.Background(), id); err != nil {
			e.t.Fatalf("create %s: %v", id, err)
		}
		e.link.setOnline(id)
	}
}

// compact re-encodes JSON without spaces, for comparisons.
func compact(t *testing.T, s []byte) string {
	t.Helper()
	var buf bytes.Buffer
	if err := json.Compact(&buf, s); err != nil {
		t.Fatalf("compact %s: %v", s, err)
	}
	return buf.String()
}

// b64sig signs rawResource and se with key, base64-encoded.
func b64sig(key []byte, rawResource, se string) string {
	return base64.StdEncoding.EncodeToString(iothub.Sign(key, rawResource, se))
}
