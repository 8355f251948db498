package rollout_test

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fleetsim/fleetsim/scenarios"
	"github.com/fleetsim/fleetsim/scenarios/rollout"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden and plan.schema.json")

// TestGoodPlans parses every good fixture.
func TestGoodPlans(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.good.yaml")
	if len(files) == 0 {
		t.Fatal("no good fixtures")
	}
	for _, f := range files {
		if _, err := rollout.LoadPlan(f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

// TestGrowthStages: growth becomes share stages growing by the factor, the
// last one taking the rest.
func TestGrowthStages(t *testing.T) {
	p, err := rollout.LoadPlan("testdata/growth.good.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range p.Stages {
		if s.Rest {
			got = append(got, "rest")
		} else {
			got = append(got, strconv.FormatFloat(*s.Share, 'g', 4, 64))
		}
	}
	if strings.Join(got, " ") != "0.01 0.04 0.16 0.64 rest" {
		t.Errorf("stages %v", got)
	}
}

// TestBadPlans compares every bad fixture's problems with its golden file;
// go test -update rewrites them.
func TestBadPlans(t *testing.T) {
	files, _ := filepath.Glob("testdata/*.bad.yaml")
	for _, file := range files {
		t.Run(filepath.Base(file), func(t *testing.T) {
			_, err := rollout.LoadPlan(file)
			var pe *scenarios.ParseError
			if !errors.As(err, &pe) {
				t.Fatalf("got %v, want a ParseError", err)
			}
			got := strings.Join(pe.Lines(), "\n") + "\n"
			golden := file + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if got != string(want) {
				t.Errorf("problems differ from %s\ngot:\n%s\nwant:\n%s", golden, got, want)
			}
		})
	}
}

// TestJSONSchema fails when plan.schema.json is stale; go test -update
// rewrites it.
func TestJSONSchema(t *testing.T) {
	got := rollout.JSONSchema()
	if *update {
		if err := os.WriteFile("plan.schema.json", got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile("plan.schema.json")
	if err != nil || string(want) != string(got) {
		t.Errorf("plan.schema.json is stale (%v): run go test ./scenarios/rollout -update", err)
	}
}
