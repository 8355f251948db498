package console_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/fleetsim/fleetsim/devicesim"
	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/hubjobs/restapi"
	"github.com/fleetsim/fleetsim/internal/testkit"
)

// chromium is Debian's Chromium, which CI installs.
const chromium = "/usr/bin/chromium"

// browserFleet registers n devices (tags.ring 'a' for even, 'b' for odd
// ones) and runs them on the in-process transport: "ping" answers at once,
// "slow" after 4 s, so a job calling it can be cancelled while it runs (its calls in flight are recorded, then it reads cancelled).
func browserFleet(t *testing.T, h *hubjobs.Hub, n int) {
	t.Helper()
	ctx := t.Context()
	id := func(i int) string { return fmt.Sprintf("dev-%03d", i) }
	key := func(i int) []byte { return []byte(fmt.Sprintf("key-of-device-%03d-0123456789abcdef", i)) }
	var ops []registry.ExportImportDevice
	for i := range n {
		k := base64.StdEncoding.EncodeToString(key(i))
		ring := map[bool]string{true: "a", false: "b"}[i%2 == 0]
		ops = append(ops, registry.ExportImportDevice{ID: id(i), ImportMode: "create", Tags: map[string]any{"ring": ring},
			Authentication: &registry.Authentication{Type: "sas", SymmetricKey: registry.SymmetricKey{PrimaryKey: k, SecondaryKey: k}}})
	}
	if _, err := h.BulkUpdate(ctx, ops); err != nil {
		t.Fatal(err)
	}
	behavior := devicesim.Behavior{Methods: map[string]devicesim.MethodBehavior{
		"ping": {Latency: devicesim.Constant(5 * time.Millisecond), Payload: json.RawMessage(`{"pong":"{{deviceId}}"}`)},
		"slow": {Latency: devicesim.Constant(4 * time.Second)},
	}}
	fleet := devicesim.NewFleet(devicesim.FleetConfig{Count: n, Generate: func(i int) devicesim.DeviceConfig {
		b := behavior
		if i == 0 {
			// The device page shows dev-000's messages as they arrive.
			b.Telemetry = &devicesim.TelemetryBehavior{Interval: devicesim.Constant(time.Second), PayloadSize: 16, QoS: 1}
		}
		return devicesim.DeviceConfig{
			Identity:  devicesim.Identity{DeviceID: id(i), Key: key(i), Hostname: h.Hostname()},
			Transport: devicesim.Transport{Dial: h.DialDevice},
			Behavior:  b,
		}
	}})
	fctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fleet.Run(fctx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("fleet: %v", err)
		}
	})
	wctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := fleet.WaitConnected(wctx, n); err != nil {
		t.Fatal(err)
	}
}

// TestBrowser drives Chromium through the console: the one-time login, the
// fleet with a filter, a twin edit and a method call, a job created from the
// form reaching 100 %, another cancelled, the hub page; at a desktop and a
// phone width. Screenshots go to $FLEETSIM_SCREENSHOTS (docs/img to update
// the README's) or a temporary directory.
func TestBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("drives a browser")
	}
	if _, err := os.Stat(chromium); err != nil {
		t.Skipf("no Chromium at %s", chromium)
	}
	shots := os.Getenv("FLEETSIM_SCREENSHOTS")
	if shots == "" {
		shots = t.TempDir()
	}
	const n = 60
	h := testkit.StartHub(t, testkit.HubOptions{Persistent: true})
	browserFleet(t, h, n)
	ep := h.Endpoints()

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.NoFirstRun, chromedp.Flag("disable-sync", true),
		// The hub's certificate is signed by its own local CA.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelBrowser := chromedp.NewContext(actx)
	defer cancelBrowser()
	ctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	defer cancel()

	shot := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			buf, err := chromedp.CaptureScreenshot()(ctx, tg)
			if err != nil {
				return err
			}
			return os.WriteFile(filepath.Join(shots, name+".png"), buf, 0o644)
		})
	}
	textIs := func(sel, want string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			for {
				// The pages re-render live parts a few times a second, so a
				// node can go between the query and the read: try again.
				got, err := chromedp.Text(sel)(ctx, tg)
				if err == nil && strings.Contains(got, want) {
					return nil
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("%s reads %q (%v), want %q: %w", sel, got, err, want, ctx.Err())
				case <-time.After(100 * time.Millisecond):
				}
			}
		})
	}
	step := func(name string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		if err := chromedp.Do(sctx, actions...); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	fetchStatus := func(js string) int {
		t.Helper()
		st, err := chromedp.Run(ctx, chromedp.Evaluate[int](js, chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return st
	}

	base := strings.TrimSuffix(ep.ConsoleURL, "/")
	// The first action starts the browser; it must run on the browser's own
	// context, since cancelling that context closes the browser.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 860)); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	step("without a session the console shows the login form",
		chromedp.Navigate(ep.ConsoleURL), chromedp.WaitVisible("#cs"))
	if status := fetchStatus(`fetch("/console/api/session").then(r => r.status)`); status != 401 {
		t.Errorf("API without a session: %d, want 401", status)
	}
	begin := time.Now()
	step("one-time login opens the fleet",
		chromedp.Navigate(ep.ConsoleLoginURL), chromedp.WaitVisible("#grid"),
		textIs(`[data-stat="connected"]`, fmt.Sprint(n)))
	t.Logf("from the one-time URL to the fleet online: %v", time.Since(begin).Round(time.Millisecond))
	step("filter counts as you type",
		chromedp.SendKeys("#filter", "tags.ring = 'a'"), textIs("#match-count", fmt.Sprintf("%d devices match", n/2)),
		shot("console-fleet"))
	if status := fetchStatus(`fetch("/console/api/jobs/x/cancel", {method: "POST"}).then(r => r.status)`); status != 403 {
		t.Errorf("POST without a CSRF token: %d, want 403", status)
	}

	step("edit a twin and invoke a method",
		chromedp.Navigate(base+"/#/device/dev-000"), chromedp.WaitVisible("#etag"),
		chromedp.SetValue("#tags", `{"ring": "a", "room": "lab"}`),
		chromedp.Click("#save-twin"), textIs("#twin-msg", "Saved"),
		chromedp.Click("#invoke"), textIs("#method-result", "status 200"),
		textIs("#device-events", "methodResult"), textIs("#device-events", "telemetry"),
		shot("console-device"))
	if tw, err := h.Registry.GetTwin("dev-000"); err != nil || tw.Tags["room"] != "lab" {
		t.Errorf("twin after the edit: %v %v", tw.Tags, err)
	}

	step("create a method job from the form and watch it reach 100 %",
		chromedp.Navigate(base+"/#/jobs"), textIs("#job-count", fmt.Sprintf("%d devices", n)),
		chromedp.Click("#create-job"), textIs("#job-msg", "Created"),
		chromedp.WaitVisible(`#jobs-body .bar[data-pct="100"]`))
	step("the job's page",
		chromedp.Click("#job-msg a"), textIs("#job-status", "completed"),
		chromedp.WaitVisible("#job-rows tr"), chromedp.Sleep(700), shot("console-job"))

	step("create a slow job and cancel it",
		chromedp.Navigate(base+"/#/jobs"), chromedp.WaitVisible("#job-method"),
		chromedp.SetValue("#job-method", "slow"),
		chromedp.Clear("#job-condition"), chromedp.SendKeys("#job-condition", "tags.ring = 'b'"),
		textIs("#job-count", fmt.Sprintf("%d devices", n/2)),
		chromedp.Click("#create-job"), textIs("#job-msg", "Created"),
		chromedp.WaitVisible("button[data-cancel]"), shot("console-jobs"),
		chromedp.Click("button[data-cancel]"),
		textIs("#jobs-body tr:first-child td:nth-child(3)", "cancelled"))

	step("the hub page", chromedp.Navigate(base+"/#/hub"), chromedp.WaitVisible("canvas.chart"),
		chromedp.Sleep(1500), shot("console-hub"))

	// A phone: a fresh session from a new one-time URL.
	step("phone size", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Navigate(base+h.Console.LoginURLPath()), chromedp.WaitVisible("#grid"),
		textIs(`[data-stat="connected"]`, fmt.Sprint(n)), shot("console-fleet-phone"),
		chromedp.Navigate(base+"/#/jobs"), chromedp.WaitVisible(`#jobs-body .bar`), shot("console-jobs-phone"))

	// Sign out, and in again at the form with registryRead: read-only.
	step("sign out", chromedp.EmulateViewport(1280, 860), chromedp.Click("#logout"), chromedp.WaitVisible("#cs"))
	if status := fetchStatus(`fetch("/console/api/session").then(r => r.status)`); status != 401 {
		t.Errorf("API after signing out: %d, want 401", status)
	}
	step("a wrong connection string is refused",
		chromedp.SendKeys("#cs", "HostName=localhost;SharedAccessKeyName=iothubowner;SharedAccessKey=d3Jvbmc="),
		chromedp.Submit("#cs"), textIs("#login-error", "does not sign in"))
	step("registryRead signs in read-only",
		chromedp.SendKeys("#cs", policyConnectionString(t, h, "registryRead")), chromedp.Submit("#cs"),
		chromedp.WaitVisible("#read-only"), chromedp.Navigate(base+"/#/jobs"), chromedp.WaitVisible("#create-job[disabled]"),
		chromedp.WaitVisible(`#jobs-body .bar`))
}

// policyConnectionString reads a shared access policy from the hub's data
// directory and returns its connection string.
func policyConnectionString(t *testing.T, h *hubjobs.Hub, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(filepath.Dir(filepath.Dir(h.Endpoints().CAFile)), "policies.json"))
	if err != nil {
		t.Fatal(err)
	}
	var ps []restapi.Policy
	if err := json.Unmarshal(b, &ps); err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Name == name {
			return restapi.ServiceConnectionString(h.Hostname(), p)
		}
	}
	t.Fatalf("no policy %s", name)
	return ""
}
