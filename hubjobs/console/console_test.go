package console_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/hubjobs/restapi"
	"github.com/fleetsim/fleetsim/internal/testkit"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
)

func TestMain(m *testing.M) { testkit.VerifyNoLeaks(m) }

// consoleClient talks to a hub's console over HTTPS with the hub's CA,
// without following redirects.
type consoleClient struct {
	t    *testing.T
	base string
	hc   *http.Client
}

func newClient(t *testing.T, h *hubjobs.Hub) *consoleClient {
	t.Helper()
	ep := h.Endpoints()
	tc, err := tlsutil.ClientConfig(tlsutil.Files{CAFile: ep.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: tc}
	t.Cleanup(tr.CloseIdleConnections)
	return &consoleClient{t: t, base: strings.TrimSuffix(ep.ConsoleURL, "/"), hc: &http.Client{
		Transport:     tr,
		Timeout:       10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

func (c *consoleClient) do(method, path, body string, hdr map[string]string) (*http.Response, string) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.base+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func sessionCookie(t *testing.T, resp *http.Response) *http.Cookie {
	t.Helper()
	for _, ck := range resp.Cookies() {
		if ck.Name == "fleetsim_console" {
			return ck
		}
	}
	t.Fatalf("no session cookie in %v", resp.Header)
	return nil
}

func startHub(t *testing.T) *hubjobs.Hub {
	h := testkit.StartHub(t, testkit.HubOptions{Persistent: true})
	if _, err := h.Registry.CreateDevice(context.Background(), registry.Device{DeviceID: "dev-1"}); err != nil {
		t.Fatal(err)
	}
	return h
}

func TestAccess(t *testing.T) {
	h := startHub(t)
	c := newClient(t, h)
	ep := h.Endpoints()
	if !strings.HasPrefix(ep.ConsoleLoginURL, ep.ConsoleURL+"console/login?token=") {
		t.Fatalf("login URL %q is not under the console URL %q", ep.ConsoleLoginURL, ep.ConsoleURL)
	}
	loginPath := strings.TrimPrefix(ep.ConsoleLoginURL, c.base)

	// Without a session: pages redirect to the login page, the API answers 401.
	if resp, _ := c.do("GET", "/", "", nil); resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/console/login" {
		t.Errorf("GET / without a session: %d %q, want 303 to /console/login", resp.StatusCode, resp.Header.Get("Location"))
	}
	for _, p := range []string{"/console/api/session", "/console/api/events", "/console/api/devices/dev-1/twin", "/console/api/fleet/cells"} {
		if resp, _ := c.do("GET", p, "", nil); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("GET %s without a session: %d, want 401", p, resp.StatusCode)
		}
	}
	// The IoT Hub API is unchanged.
	if resp, _ := c.do("GET", "/devices/dev-1?api-version=2021-04-12", "", nil); resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("REST API without a token: %d, want 401", resp.StatusCode)
	}

	// The one-time URL signs in once.
	resp, _ := c.do("GET", loginPath, "", nil)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("one-time login: %d", resp.StatusCode)
	}
	ck := sessionCookie(t, resp)
	if !ck.HttpOnly || !ck.Secure || ck.SameSite != http.SameSiteStrictMode {
		t.Errorf("session cookie %+v: want HttpOnly, Secure, SameSite=Strict", ck)
	}
	if resp, _ := c.do("GET", loginPath, "", nil); resp.StatusCode != http.StatusUnauthorized || len(resp.Cookies()) != 0 {
		t.Errorf("second use of the one-time URL: %d with cookies %v, want 401 and none", resp.StatusCode, resp.Cookies())
	}
	cookie := map[string]string{"Cookie": ck.Name + "=" + ck.Value}
	_, body := c.do("GET", "/console/api/session", "", cookie)
	var sess struct {
		CSRF  string `json:"csrf"`
		Write bool   `json:"write"`
	}
	if err := json.Unmarshal([]byte(body), &sess); err != nil || sess.CSRF == "" || !sess.Write {
		t.Fatalf("session %s: %v", body, err)
	}

	patch := `{"tags":{"building":43}}`
	origin := c.base
	tests := []struct {
		name string
		hdr  map[string]string
		want int
	}{
		{"no CSRF token", map[string]string{"Origin": origin, "If-Match": "*"}, http.StatusForbidden},
		{"wrong CSRF token", map[string]string{"Origin": origin, "If-Match": "*", "X-CSRF-Token": "x" + sess.CSRF}, http.StatusForbidden},
		{"foreign Origin", map[string]string{"Origin": "https://evil.example", "If-Match": "*", "X-CSRF-Token": sess.CSRF}, http.StatusForbidden},
		{"no Origin", map[string]string{"If-Match": "*", "X-CSRF-Token": sess.CSRF}, http.StatusForbidden},
		{"no session", map[string]string{"Origin": origin, "If-Match": "*", "X-CSRF-Token": sess.CSRF, "Cookie": "fleetsim_console=forged"}, http.StatusUnauthorized},
		{"stale etag", map[string]string{"Origin": origin, "If-Match": `"AAAAAAAAAJk="`, "X-CSRF-Token": sess.CSRF}, http.StatusPreconditionFailed},
		{"good", map[string]string{"Origin": origin, "If-Match": "*", "X-CSRF-Token": sess.CSRF}, http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := map[string]string{"Cookie": cookie["Cookie"]}
			for k, v := range tt.hdr {
				hdr[k] = v
			}
			resp, body := c.do("PATCH", "/console/api/devices/dev-1/twin", patch, hdr)
			if resp.StatusCode != tt.want {
				t.Errorf("PATCH twin: %d %s, want %d", resp.StatusCode, body, tt.want)
			}
		})
	}
	tw, err := h.Registry.GetTwin("dev-1")
	if err != nil || tw.Tags["building"] != 43.0 {
		t.Errorf("twin tags after the patches: %v %v", tw.Tags, err)
	}
}

func TestConnectionStringLogin(t *testing.T) {
	h := startHub(t)
	c := newClient(t, h)
	// The policies are in the data directory next to connection.json.
	b, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(h.Endpoints().CAFile)), "policies.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ps []restapi.Policy
	if err := json.Unmarshal(b, &ps); err != nil {
		t.Fatal(err)
	}
	conn := map[string]string{}
	for _, p := range ps {
		conn[p.Name] = restapi.ServiceConnectionString("localhost", p)
	}
	form := func(cs string) string { return url.Values{"connectionString": {cs}}.Encode() }
	hdr := map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": c.base}

	for _, tt := range []struct {
		name, cs string
		want     int
	}{
		{"device policy", conn["device"], http.StatusUnauthorized},
		{"wrong key", strings.Replace(conn["service"], "SharedAccessKey=", "SharedAccessKey=AAAA", 1), http.StatusUnauthorized},
		{"other host", strings.Replace(conn["service"], "HostName=localhost", "HostName=other", 1), http.StatusUnauthorized},
		{"garbage", "not a connection string", http.StatusUnauthorized},
	} {
		if resp, _ := c.do("POST", "/console/login", form(tt.cs), hdr); resp.StatusCode != tt.want || len(resp.Cookies()) != 0 {
			t.Errorf("%s: %d, cookies %v; want %d and none", tt.name, resp.StatusCode, resp.Cookies(), tt.want)
		}
	}
	if resp, _ := c.do("POST", "/console/login", form(conn["iothubowner"]), map[string]string{"Content-Type": "application/x-www-form-urlencoded", "Origin": "https://evil.example"}); resp.StatusCode != http.StatusForbidden {
		t.Errorf("cross-origin login: %d, want 403", resp.StatusCode)
	}

	// registryRead signs in read-only; its writes are refused by the server.
	resp, _ := c.do("POST", "/console/login", form(conn["registryRead"]), hdr)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("registryRead login: %d", resp.StatusCode)
	}
	ck := sessionCookie(t, resp)
	cookie := ck.Name + "=" + ck.Value
	_, body := c.do("GET", "/console/api/session", "", map[string]string{"Cookie": cookie})
	var sess struct {
		CSRF  string `json:"csrf"`
		Write bool   `json:"write"`
	}
	_ = json.Unmarshal([]byte(body), &sess)
	if sess.Write {
		t.Errorf("registryRead session %s may write", body)
	}
	if resp, _ := c.do("GET", "/console/api/devices/dev-1/twin", "", map[string]string{"Cookie": cookie}); resp.StatusCode != http.StatusOK {
		t.Errorf("registryRead reads a twin: %d", resp.StatusCode)
	}
	w := map[string]string{"Cookie": cookie, "Origin": c.base, "X-CSRF-Token": sess.CSRF, "If-Match": "*"}
	if resp, body := c.do("PATCH", "/console/api/devices/dev-1/twin", `{"tags":{"a":1}}`, w); resp.StatusCode != http.StatusForbidden {
		t.Errorf("registryRead patches a twin: %d %s, want 403", resp.StatusCode, body)
	}
	if resp, _ := c.do("PUT", "/console/api/jobs/j1", `{"type":"scheduleDeviceMethod","queryCondition":"*","methodName":"ping"}`, w); resp.StatusCode != http.StatusForbidden {
		t.Errorf("registryRead creates a job: %d, want 403", resp.StatusCode)
	}

	// The service policy may write.
	resp, _ = c.do("POST", "/console/login", form(conn["service"]), hdr)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("service login: %d", resp.StatusCode)
	}
}
