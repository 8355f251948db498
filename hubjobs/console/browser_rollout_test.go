package console_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/rs/zerolog"

	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/hubjobs/restapi"
	"github.com/fleetsim/fleetsim/internal/testkit"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
	"github.com/fleetsim/fleetsim/scenarios/rollout"
)

// rolloutPlan is a two-stage rollout of the ping method with an approval
// gate after its canary.
func rolloutPlan(id string) []byte {
	return []byte(fmt.Sprintf(`id: %s
seed: 7
action: {method: ping}
stages:
  - {name: canary, share: 0.25}
  - {name: rest, rest: true}
gates: {minSuccessRate: 0.9, approval: true}
abort: {maxFailureRate: 0.2, minDevices: 5}
poll: 100ms
`, id))
}

// TestBrowserRollouts drives Chromium through the Rollouts pages of a hub
// that runs rollouts itself: a rollout started through the REST API waits
// on its approval gate, Approve lets it complete; another is aborted with a
// reason, which its page shows; a read-only session can neither approve
// nor abort. At a desktop and a phone width; the screenshots go where
// TestBrowser's go.
func TestBrowserRollouts(t *testing.T) {
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
	const n = 24
	h := testkit.StartHub(t, testkit.HubOptions{Persistent: true, Rollouts: func(h *hubjobs.Hub, dir string) (hubjobs.RolloutHost, error) {
		return rollout.NewHost(rollout.HubOf(h), dir, zerolog.Nop())
	}})
	browserFleet(t, h, n)
	ep := h.Endpoints()
	tlsConf, err := tlsutil.ClientConfig(tlsutil.Files{CAFile: ep.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	rest, err := restapi.NewClient(ep.ServiceConnectionString, restapi.ClientOptions{BaseURL: "https://" + ep.HTTPSAddr, TLSConfig: tlsConf})
	if err != nil {
		t.Fatal(err)
	}
	defer rest.CloseIdleConnections()
	submit := func(id string) {
		t.Helper()
		if _, err := rest.SubmitRollout(t.Context(), "plan.yaml", rolloutPlan(id)); err != nil {
			t.Fatalf("submit %s: %v", id, err)
		}
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
				// The rollout pages re-render twice a second: try again.
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
		sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
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
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 980)); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}

	submit("fw-approve")
	step("sign in and open the rollout, which waits on its approval gate",
		chromedp.Navigate(ep.ConsoleLoginURL), chromedp.WaitVisible("#grid"),
		chromedp.Navigate(base+"/#/rollout/fw-approve"), textIs("#rollout-status", "waitingApproval"),
		chromedp.WaitVisible("#approve"),
		textIs(`[data-stage="canary"] [data-gate="successRate"]`, "passed"),
		textIs(`[data-stage="canary"] [data-gate="approval"]`, "waiting for an operator's approval"),
		chromedp.Sleep(600), shot("console-rollout"))
	if status := fetchStatus(`fetch("/console/api/rollouts/fw-approve/approve", {method: "POST"}).then(r => r.status)`); status != 403 {
		t.Errorf("approve without a CSRF token: %d, want 403", status)
	}
	step("Approve: the rollout completes",
		chromedp.Click("#approve"), textIs("#rollout-msg", "Approved"),
		textIs("#rollout-status", "completed"), textIs(`[data-stage="rest"]`, "done"))
	step("the list shows it",
		chromedp.Navigate(base+"/#/rollouts"), textIs(`#rollouts-body [data-rollout="fw-approve"]`, "completed"))

	submit("fw-abort")
	step("Abort with a reason: the page shows the rule and the reason",
		chromedp.Navigate(base+"/#/rollout/fw-abort"), textIs("#rollout-status", "waitingApproval"),
		chromedp.SendKeys("#abort-reason", "bad batch"), chromedp.Click("#abort"),
		textIs("#rollout-status", "aborted"), textIs("#abort-rule", "operator"), textIs("#abort-rule", "bad batch"))

	step("phone size", chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile),
		chromedp.Navigate(base+"/#/rollout/fw-approve"), textIs("#rollout-status", "completed"), shot("console-rollout-phone"))

	submit("fw-readonly")
	step("registryRead signs in read-only: no approving, no aborting",
		chromedp.EmulateViewport(1280, 980), chromedp.Click("#logout"), chromedp.WaitVisible("#cs"),
		chromedp.SendKeys("#cs", policyConnectionString(t, h, "registryRead")), chromedp.Submit("#cs"),
		chromedp.WaitVisible("#read-only"), chromedp.Navigate(base+"/#/rollout/fw-readonly"),
		textIs("#rollout-status", "waitingApproval"), chromedp.WaitVisible("#approve[disabled]"), chromedp.WaitVisible("#abort[disabled]"))
	if status := fetchStatus(`fetch("/console/api/rollouts/fw-readonly/approve", {method: "POST", headers: {"X-CSRF-Token": S.csrf}}).then(r => r.status)`); status != 403 {
		t.Errorf("a read-only session approves: %d, want 403", status)
	}
	b, err := rest.Rollout(t.Context(), "fw-readonly")
	if err != nil || !strings.Contains(string(b), `"status":"waitingApproval"`) {
		t.Errorf("after the read-only session: %.200s %v", b, err)
	}
}
