package jobs_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"testing"
	"testing/synctest"

	"github.com/fleetsim/fleetsim/hubjobs/jobs"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// twinRuleFixtures reads the twin patches that every twin writer accepts
// (verdict "accept") or refuses with 400 ArgumentInvalid ("refuse").
func twinRuleFixtures(t *testing.T, verdict string) map[string][]byte {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("..", "..", "internal", "iothub", "testdata", "twinrules", verdict, "*.json"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no %s fixtures: %v", verdict, err)
	}
	out := make(map[string][]byte, len(files))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		out[filepath.Base(f)] = b
	}
	return out
}

// TestTwinJobFollowsTheTwinRules: a twin job is accepted exactly when the
// registry's twin rules accept its patch (the shared fixtures), so that a
// job never fails on its devices for a rule its creation could check.
func TestTwinJobFollowsTheTwinRules(t *testing.T) {
	e, err := jobs.NewEngine(jobs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	create := func(patch []byte) error {
		n++
		_, err := e.Create(t.Context(), jobs.JobRequest{
			JobID: fmt.Sprintf("twin-%d", n), Type: jobs.TypeUpdateTwin,
			QueryCondition: "*", UpdateTwin: json.RawMessage(patch),
		})
		return err
	}
	for name, patch := range twinRuleFixtures(t, "accept") {
		if _, err := iothub.ParseTwinPatch(patch); err != nil {
			t.Fatalf("%s: the twin rules refuse it: %v", name, err)
		}
		if err := create(patch); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	for name, patch := range twinRuleFixtures(t, "refuse") {
		err := create(patch)
		if ie := iothub.AsError(err); err == nil || ie.Code != iothub.CodeArgumentInvalid || ie.HTTPStatus() != 400 {
			t.Errorf("%s: %v, want 400 ArgumentInvalid", name, err)
		}
	}
}

// patchSeen records which patch each device got, by the identity of its
// tags map.
type patchSeen struct {
	*fleet
	mu   sync.Mutex
	tags map[string]uintptr
}

func (p *patchSeen) ForceUpdateTwin(ctx context.Context, id string, patch iothub.TwinPatch) error {
	p.mu.Lock()
	p.tags[id] = reflect.ValueOf(patch.Tags()).Pointer()
	p.mu.Unlock()
	return p.fleet.ForceUpdateTwin(ctx, id, patch)
}

// TestTwinJobPatchParsedOnce: every device of a twin job gets the one patch
// the job parsed and checked, not a fresh parse of its own.
func TestTwinJobPatchParsedOnce(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFleet(20)
		seen := &patchSeen{fleet: f, tags: map[string]uintptr{}}
		cfg := config(f, nil)
		cfg.Twins = seen
		e := start(t, cfg)
		_, err := e.Create(t.Context(), jobs.JobRequest{
			JobID: "twin", Type: jobs.TypeUpdateTwin, QueryCondition: "*",
			UpdateTwin: json.RawMessage(`{"etag":"*","tags":{"ring":"canary"}}`),
		})
		if err != nil {
			t.Fatal(err)
		}
		waitStatus(t, e, "twin", jobs.StatusCompleted)
		seen.mu.Lock()
		defer seen.mu.Unlock()
		if len(seen.tags) != 20 {
			t.Fatalf("%d devices patched, want 20", len(seen.tags))
		}
		var first uintptr
		for id, p := range seen.tags {
			if first == 0 {
				first = p
			}
			if p != first || p == 0 {
				t.Fatalf("%s got a patch of its own", id)
			}
		}
	})
}
