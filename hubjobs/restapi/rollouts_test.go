package restapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/fleetsim/fleetsim/hubjobs/restapi"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// fakeRollouts answers as a rollout host does: JSON, and *iothub.Error for
// an unknown rollout. It records what it was asked.
type fakeRollouts struct {
	mu    sync.Mutex
	calls []string
}

func (f *fakeRollouts) record(s string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, s)
}

func (f *fakeRollouts) last() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.calls) == 0 {
		return ""
	}
	return f.calls[len(f.calls)-1]
}

var errNoRollout = &iothub.Error{Code: iothub.Code{Name: "RolloutNotFound", Number: 404901}, Message: "rollout \"nope\" does not exist"}

func (f *fakeRollouts) Submit(ctx context.Context, file string, plan []byte) ([]byte, error) {
	f.record(fmt.Sprintf("submit %s %s", file, plan))
	return []byte(`{"id":"r1","status":"running"}`), ctx.Err()
}

func (f *fakeRollouts) List() ([]byte, error) { f.record("list"); return []byte(`[]`), nil }

func (f *fakeRollouts) Get(id string) ([]byte, error) {
	f.record("get " + id)
	if id == "nope" {
		return nil, errNoRollout
	}
	return []byte(`{"id":"` + id + `"}`), nil
}

func (f *fakeRollouts) Approve(id, stage string) ([]byte, error) {
	f.record("approve " + id + " " + stage)
	return json.Marshal(map[string]string{"id": id, "stage": stage})
}

func (f *fakeRollouts) Abort(id, reason string) ([]byte, error) {
	f.record("abort " + id + " " + reason)
	return json.Marshal(map[string]string{"id": id, "reason": reason})
}

// TestRolloutEndpoints: who may read and change rollouts, what reaches the
// host, and the answers' statuses.
func TestRolloutEndpoints(t *testing.T) {
	f := &fakeRollouts{}
	e := newEnv(t, envOptions{config: func(c *restapi.Config) { c.Rollouts = f }})
	for _, tc := range []struct {
		name, method, path, body, policy string
		status                           int
		call                             string
	}{
		{"owner lists", "GET", "/fleetsim/v1/rollouts", "", "iothubowner", 200, "list"},
		{"registryRead lists", "GET", "/fleetsim/v1/rollouts", "", "registryRead", 200, "list"},
		{"service reads one", "GET", "/fleetsim/v1/rollouts/r1", "", "service", 200, "get r1"},
		{"device may not read", "GET", "/fleetsim/v1/rollouts/r1", "", "device", 401, ""},
		{"registryReadWrite may not submit", "POST", "/fleetsim/v1/rollouts", "id: r1", "registryReadWrite", 401, ""},
		{"service submits YAML", "POST", "/fleetsim/v1/rollouts?file=p.yaml", "id: r1", "service", 201, "submit p.yaml id: r1"},
		{"an empty plan is 400", "POST", "/fleetsim/v1/rollouts", "", "service", 400, ""},
		{"approve with no body", "POST", "/fleetsim/v1/rollouts/r1/approve", "", "service", 200, "approve r1 "},
		{"approve a stage", "POST", "/fleetsim/v1/rollouts/r1/approve", `{"stage":"rest"}`, "service", 200, "approve r1 rest"},
		{"approve with an unknown member", "POST", "/fleetsim/v1/rollouts/r1/approve", `{"stages":"rest"}`, "service", 400, ""},
		{"registryRead may not approve", "POST", "/fleetsim/v1/rollouts/r1/approve", "", "registryRead", 401, ""},
		{"abort with a reason", "POST", "/fleetsim/v1/rollouts/r1/abort", `{"reason":"bad batch"}`, "service", 200, "abort r1 bad batch"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := f.last()
			a := e.do(tc.method, tc.path+sep(tc.path)+"api-version=2021-04-12", tc.body, map[string]string{"Authorization": e.token(tc.policy)})
			if a.status != tc.status {
				t.Fatalf("status %d, want %d: %s", a.status, tc.status, a.body)
			}
			if tc.call != "" && f.last() != tc.call {
				t.Errorf("host asked %q, want %q", f.last(), tc.call)
			}
			if tc.call == "" && f.last() != before {
				t.Errorf("a refused request reached the host: %q", f.last())
			}
			if a.status == 401 {
				a.wantError(t, 401, "IotHubUnauthorizedAccess", "Unauthorized")
			}
		})
	}
	e.do("GET", "/fleetsim/v1/rollouts/nope?api-version=2021-04-12", "", nil).wantError(t, 404, "RolloutNotFound", "does not exist")
	if _, err := e.client.Rollout(t.Context(), "nope"); err == nil {
		t.Error("client: an unknown rollout is no error")
	} else if he := wantCode(t, err, iothub.Code{Name: "RolloutNotFound", Number: 404901}); he != nil && he.HTTPStatus() != 404 {
		t.Errorf("client: %v", err)
	}
}

// TestRolloutEndpointsWithoutHost: a hub that runs no rollouts does not
// serve the endpoints.
func TestRolloutEndpointsWithoutHost(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.do("GET", "/fleetsim/v1/rollouts?api-version=2021-04-12", "", nil).wantError(t, 400, "GenericBadRequest", "is not an endpoint")
}

func sep(path string) string {
	if strings.Contains(path, "?") {
		return "&"
	}
	return "?"
}
