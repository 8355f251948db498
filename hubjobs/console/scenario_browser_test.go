package console_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/internal/testkit"
	"github.com/fleetsim/fleetsim/scenarios"
	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// browser is a headless Chromium for one test, with the helpers the
// scenario tests use.
type browser struct {
	t     *testing.T
	ctx   context.Context
	shots string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
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
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.NoFirstRun, chromedp.Flag("disable-sync", true),
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.UserDataDir(t.TempDir()),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	bctx, cancelBrowser := chromedp.NewContext(actx)
	ctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	t.Cleanup(func() { cancel(); cancelBrowser(); cancelAlloc() })
	// The first action starts the browser on the browser's own context.
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 900)); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	return &browser{t: t, ctx: ctx, shots: shots}
}

func (b *browser) step(name string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	sctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(sctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", name, err)
	}
}

func (b *browser) shot(name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		buf, err := chromedp.CaptureScreenshot()(ctx, tg)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(b.shots, name+".png"), buf, 0o644)
	})
}

// textIs waits until sel's text contains want; the pages re-render live
// parts, so a node read can fail between query and read: it tries again.
func textIs(sel, want string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		for {
			got, err := chromedp.Text(sel)(ctx, tg)
			if err == nil && strings.Contains(got, want) {
				return nil
			}
			select {
			case <-ctx.Done():
				return fmt.Errorf("%s reads %q (%v), want %q: %w", sel, got, err, want, ctx.Err())
			case <-time.After(50 * time.Millisecond):
			}
		}
	})
}

// TestBrowserScenario plays a small scenario with the console, as
// fleetsim run --console does, and watches its page: the timeline's first
// step becomes done and the expectation on its job turns passing while the
// run goes on, with the chart of connected devices.
func TestBrowserScenario(t *testing.T) {
	b := newBrowser(t)
	src, err := os.ReadFile("testdata/scenario.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sc, err := scenarios.Parse("scenario.yaml", src)
	if err != nil {
		t.Fatal(err)
	}
	login := make(chan string, 1)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	var rep *runner.Report
	go func() {
		var err error
		rep, err = runner.Run(ctx, sc, runner.Options{ConsoleAddr: "127.0.0.1:0", ConsoleReady: func(u string) { login <- u }})
		done <- err
	}()
	defer func() {
		cancel()
		<-done
	}()
	var u string
	select {
	case u = <-login:
	case err := <-done:
		t.Fatalf("run ended before the console was up: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no console login URL after 30 s")
	}
	base := u[:strings.Index(u, "/console/login")]
	b.step("sign in: the scenario's link shows",
		chromedp.Navigate(u), chromedp.WaitVisible("#grid"), chromedp.WaitVisible("#nav-scenario"))
	b.step("the scenario page lists the timeline",
		chromedp.Navigate(base+"/#/scenario"), textIs("h1", "console-scenario"),
		chromedp.WaitVisible(`#scenario-steps tr[data-step="1"][data-done="0"]`))
	b.step("the first step becomes done and its job's expectation passing",
		chromedp.WaitVisible(`#scenario-steps tr[data-step="0"][data-done="1"]`),
		chromedp.WaitVisible(`#scenario-expectations tr[data-expect="0"] td[data-state="passing"]`),
		textIs("#scenario-steps", "✓ T+"),
		textIs("#scenario-phase", "playing"),
		chromedp.Sleep(700), b.shot("console-scenario"))
	// The second job's expectation is still pending: the run goes on.
	pending, err := chromedp.Run(b.ctx, chromedp.Evaluate[int](`document.querySelectorAll('#scenario-expectations td[data-state="pending"]').length`))
	if err != nil {
		t.Fatal(err)
	}
	if pending == 0 {
		t.Errorf("no expectation is pending while the second job has not run")
	}
	if err := <-done; err != nil {
		t.Fatalf("run: %v", err)
	}
	done <- nil // for the deferred cancel
	if !rep.Passed {
		t.Errorf("the run did not pass: %+v", rep.Expectations)
	}
}

// TestBrowserQuickstartOnline is fleetsim serve --scenario quickstart in
// process: a hub with its HTTPS listener and the quickstart fleet hosted on
// it. Once the fleet is up, the console's first load shows every device
// connected from the page's own first requests: the event stream is blocked
// in the browser, so no live update and no timer can be what turns the
// grid green. The time from navigation to all green is logged.
func TestBrowserQuickstartOnline(t *testing.T) {
	b := newBrowser(t)
	sc, err := scenarios.Load("quickstart")
	if err != nil {
		t.Fatal(err)
	}
	h := testkit.StartHub(t, testkit.HubOptions{Persistent: true})
	started := make(chan int, 1)
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() {
		done <- runner.HostFleet(ctx, h, sc, runner.HostOptions{DataDir: t.TempDir(), Started: func(n int) { started <- n }})
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("fleet: %v", err)
		}
	}()
	var n int
	select {
	case n = <-started:
	case err := <-done:
		t.Fatalf("fleet ended: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("fleet not started after 30 s")
	}
	printed := time.Now()
	testkit.Eventually(t, 30*time.Second, func() bool { return connected(h) == n }, "all %d quickstart devices connected", n)
	t.Logf("from the URL printed to the fleet connected: %v", time.Since(printed).Round(time.Millisecond))

	ep := h.Endpoints()
	base := strings.TrimSuffix(ep.ConsoleURL, "/")
	b.step("sign in", chromedp.Navigate(ep.ConsoleLoginURL), chromedp.WaitVisible("#grid"))
	if _, err := chromedp.Call(b.ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatalf("network domain: %v", err)
	}
	if _, err := chromedp.Call(b.ctx, network.SetBlockedURLs, network.SetBlockedURLsParams{URLPatterns: []*network.BlockPattern{{URLPattern: "*://*:*/console/api/events*", Block: true}}}); err != nil {
		t.Fatalf("block the event stream: %v", err)
	}
	b.step("leave the console", chromedp.Navigate("about:blank"))
	begin := time.Now()
	b.step("the fleet page's first load shows every device connected",
		chromedp.Navigate(base+"/#/fleet"),
		textIs(`[data-stat="connected"]`, fmt.Sprint(n)), textIs(`[data-stat="devices"]`, fmt.Sprint(n)))
	inPage, err := chromedp.Run(b.ctx, chromedp.Evaluate[float64](`performance.now()`))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("page load to all %d devices green: %v (%.0f ms after navigation start in the page; event stream blocked)",
		n, time.Since(begin).Round(time.Millisecond), inPage)
	if live, err := chromedp.Run(b.ctx, chromedp.Evaluate[bool](`S.live !== null`)); err != nil || live {
		t.Errorf("a live update reached the page with the event stream blocked (%v): the grid was not the first load's", err)
	}
	b.step("the scenario page of a hosted fleet", chromedp.Navigate(base+"/#/scenario"), textIs("#scenario-phase", "hosting"))
}

func connected(h *hubjobs.Hub) int { return h.Registry.ConnectedCount() }
