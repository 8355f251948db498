package rollout_test

import (
	"crypto/tls"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/hubjobs/restapi"
	"github.com/fleetsim/fleetsim/internal/iothub"
	"github.com/fleetsim/fleetsim/internal/testkit"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
	"github.com/fleetsim/fleetsim/scenarios/rollout"
)

// hostedHub starts a persistent hub that runs rollouts itself, as fleetsim
// serve does.
func hostedHub(t *testing.T, dir string) *hubjobs.Hub {
	t.Helper()
	return testkit.StartHub(t, testkit.HubOptions{DataDir: dir, Rollouts: func(h *hubjobs.Hub, dir string) (hubjobs.RolloutHost, error) {
		return rollout.NewHost(rollout.HubOf(h), dir, zerolog.Nop())
	}})
}

// policyClient is a REST client of h signed with one of its policies.
func policyClient(t *testing.T, h *hubjobs.Hub, dir, policy string) *restapi.Client {
	t.Helper()
	ep := h.Endpoints()
	cs := ep.ServiceConnectionString
	if policy != "" {
		b, err := os.ReadFile(filepath.Join(dir, "policies.json"))
		if err != nil {
			t.Fatal(err)
		}
		var ps []restapi.Policy
		if err := json.Unmarshal(b, &ps); err != nil {
			t.Fatal(err)
		}
		for _, p := range ps {
			if p.Name == policy {
				cs = restapi.ServiceConnectionString(h.Hostname(), p)
			}
		}
	}
	tlsConf, err := tlsutil.ClientConfig(tlsutil.Files{CAFile: ep.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	c, err := restapi.NewClient(cs, restapi.ClientOptions{BaseURL: "https://" + ep.HTTPSAddr, TLSConfig: tlsConf})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// hubStatus is the HTTP status and code of a hub error, or 0.
func hubStatus(err error) (int, string) {
	var ie *iothub.Error
	if errors.As(err, &ie) {
		return ie.HTTPStatus(), ie.Code.Name
	}
	return 0, ""
}

// waitRollout reads a hub-run rollout until cond holds.
func waitRollout(t *testing.T, c *restapi.Client, id string, cond func(*rollout.State) bool) *rollout.State {
	t.Helper()
	var st rollout.State
	testkit.Eventually(t, 60*time.Second, func() bool {
		b, err := c.Rollout(t.Context(), id)
		if err != nil {
			t.Fatalf("read rollout %s: %v", id, err)
		}
		st = rollout.State{}
		if err := json.Unmarshal(b, &st); err != nil {
			t.Fatal(err)
		}
		return cond(&st)
	}, "rollout %s never got there; last %s %s", id, st.Status, st.Reason)
	return &st
}

const approvalPlan = `
id: hosted-1
target: "tags.model = 'm1'"
action: {method: update}
stages: [{name: canary, share: 0.25}, {name: rest, rest: true}]
gates: {minSuccessRate: 0.5, approval: true}
poll: 20ms
`

// TestHostedRolloutOverREST drives rollouts that the hub runs itself
// through fleetsim's REST endpoints only: permissions, a plan with problems,
// an unknown rollout, an approval gate passed, an approval refused once the
// rollout ended, an abort with its reason.
func TestHostedRolloutOverREST(t *testing.T) {
	dir := t.TempDir()
	h := hostedHub(t, dir)
	startFleet(t, h, fleetOf(8, func(i int) map[string]any { return map[string]any{"model": "m1"} }))
	owner := policyClient(t, h, dir, "")
	reader := policyClient(t, h, dir, "registryRead")
	device := policyClient(t, h, dir, "device")
	ctx := t.Context()

	t.Run("permissions", func(t *testing.T) {
		if _, err := reader.Rollouts(ctx); err != nil {
			t.Errorf("registryRead lists rollouts: %v", err)
		}
		if _, err := device.Rollouts(ctx); !isStatus(err, 401) {
			t.Errorf("device policy lists rollouts: %v, want 401", err)
		}
		if _, err := reader.SubmitRollout(ctx, "plan.yaml", []byte(approvalPlan)); !isStatus(err, 401) {
			t.Errorf("registryRead submits a rollout: %v, want 401", err)
		}
		if _, err := reader.AbortRollout(ctx, "x", ""); !isStatus(err, 401) {
			t.Errorf("registryRead aborts a rollout: %v, want 401", err)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "https://"+h.Endpoints().HTTPSAddr+restapi.RolloutsPath+"?api-version=2021-04-12", nil)
		hc := &http.Client{Transport: &http.Transport{TLSClientConfig: mustTLS(t, h)}}
		defer hc.CloseIdleConnections()
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 401 || resp.Header.Get("iothub-errorcode") != "IotHubUnauthorizedAccess" {
			t.Errorf("no token: %d %s, want 401 IotHubUnauthorizedAccess", resp.StatusCode, resp.Header.Get("iothub-errorcode"))
		}
	})

	t.Run("a plan with problems is 400 with their positions", func(t *testing.T) {
		for _, tc := range []struct{ plan, want string }{
			{"id: ok-id\naction: {method: m}\nstages: [{name: a, rest: true}]\nbogus: 1\n", `bad.yaml:4:1: unknown key "bogus"`},
			{"id: ok-id\naction: {method: m}\nstages:\n  - {name: a, share: 2}\n", "bad.yaml:4:"},
			{"{\"id\": \"bad id\", \"action\": {\"method\": \"m\"}, \"stages\": [{\"name\": \"a\", \"rest\": true}]}", "bad.yaml:1:8"},
		} {
			_, err := owner.SubmitRollout(ctx, "bad.yaml", []byte(tc.plan))
			var ie *iothub.Error
			if !errors.As(err, &ie) || ie.HTTPStatus() != 400 || ie.Code.Name != "ArgumentInvalid" {
				t.Fatalf("bad plan: %v, want 400 ArgumentInvalid", err)
			}
			if !strings.Contains(ie.Message, tc.want) {
				t.Errorf("message %q lacks %q", ie.Message, tc.want)
			}
		}
	})

	t.Run("an unknown rollout is 404", func(t *testing.T) {
		for _, err := range []error{
			second(owner.Rollout(ctx, "nope")),
			second(owner.ApproveRollout(ctx, "nope", "")),
			second(owner.AbortRollout(ctx, "../etc", "")),
		} {
			if s, code := hubStatus(err); s != 404 || code != "RolloutNotFound" {
				t.Errorf("unknown rollout: %v, want 404 RolloutNotFound", err)
			}
		}
	})

	t.Run("approval", func(t *testing.T) {
		if _, err := owner.SubmitRollout(ctx, "plan.yaml", []byte(approvalPlan)); err != nil {
			t.Fatal(err)
		}
		if _, err := owner.SubmitRollout(ctx, "plan.yaml", []byte(approvalPlan)); !isStatus(err, 409) {
			t.Errorf("the same rollout again: %v, want 409", err)
		}
		waitRollout(t, reader, "hosted-1", func(s *rollout.State) bool { return s.Status == rollout.StatusWaiting })
		if _, err := owner.ApproveRollout(ctx, "hosted-1", "nostage"); !isStatus(err, 400) {
			t.Errorf("approve an unknown stage: %v, want 400", err)
		}
		if _, err := owner.ApproveRollout(ctx, "hosted-1", ""); err != nil {
			t.Fatal(err)
		}
		st := waitRollout(t, reader, "hosted-1", (*rollout.State).Terminal)
		if st.Status != rollout.StatusDone || st.Touched() != 8 {
			t.Fatalf("status %s (%s), %d touched", st.Status, st.Reason, st.Touched())
		}
		if _, err := owner.ApproveRollout(ctx, "hosted-1", ""); !isStatus(err, 412) {
			t.Errorf("approve an ended rollout: %v, want 412", err)
		}
		b, err := reader.Rollouts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var list []rollout.Summary
		if err := json.Unmarshal(b, &list); err != nil || len(list) != 1 || list[0].ID != "hosted-1" || list[0].Status != rollout.StatusDone {
			t.Errorf("list %s (%v)", b, err)
		}
	})

	t.Run("abort", func(t *testing.T) {
		plan := strings.ReplaceAll(approvalPlan, "hosted-1", "hosted-2")
		if _, err := owner.SubmitRollout(ctx, "plan.yaml", []byte(plan)); err != nil {
			t.Fatal(err)
		}
		waitRollout(t, reader, "hosted-2", func(s *rollout.State) bool { return s.Status == rollout.StatusWaiting })
		if _, err := owner.AbortRollout(ctx, "hosted-2", "bad batch"); err != nil {
			t.Fatal(err)
		}
		st := waitRollout(t, reader, "hosted-2", (*rollout.State).Terminal)
		if st.Status != rollout.StatusAborted || st.Abort == nil || st.Abort.Rule != "operator" || st.Reason != "bad batch" {
			t.Fatalf("status %s (%s), abort %+v", st.Status, st.Reason, st.Abort)
		}
	})
}

func second[T any](_ T, err error) error { return err }

func isStatus(err error, status int) bool {
	s, _ := hubStatus(err)
	return s == status
}

func mustTLS(t *testing.T, h *hubjobs.Hub) *tls.Config {
	t.Helper()
	c, err := tlsutil.ClientConfig(tlsutil.Files{CAFile: h.Endpoints().CAFile})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
