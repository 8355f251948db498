// Package rollout runs staged, gated job campaigns (rollouts) against an
// IoT hub using only its public service API: jobs, cancel, queries of
// devices and devices.jobs, and twin jobs that tag devices. The same plan
// runs against fleetsim's embedded hub, a fleetsim serve and a real IoT hub.
//
// A plan names a population (a query condition), stages (by condition or by
// a seeded share of the population), each stage's job, the gates before the
// next stage, an abort rule, retries and an optional rollback. The engine
// keeps its state in a JSON file, written atomically after every step, so a
// rollout resumes where it was after a restart.
package rollout

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"reflect"

	"github.com/fleetsim/fleetsim/scenarios"
)

// SchemaID is the $id of the plan files' JSON Schema.
const SchemaID = "https://github.com/fleetsim/fleetsim/scenarios/rollout/plan.schema.json"

// The plan's types are the scenarios package's, so that a scenario's
// timeline can hold a plan inline.
type (
	// Plan is a rollout plan.
	Plan = scenarios.RolloutPlan
	// ActionSpec is a stage's job: a method job or a twin job.
	ActionSpec = scenarios.RolloutJob
	// StageSpec is one stage.
	StageSpec = scenarios.RolloutStage
	// GatesSpec are a stage's gates.
	GatesSpec = scenarios.RolloutGates
)

// ParsePlan decodes and validates a plan file strictly: every problem is
// reported at once in a *scenarios.ParseError with file:line:col positions.
func ParsePlan(filename string, data []byte) (*Plan, error) {
	return scenarios.ParseRolloutPlan(filename, data)
}

// LoadPlan reads and parses a plan file.
func LoadPlan(path string) (*Plan, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read plan: %w", err)
	}
	return ParsePlan(path, data)
}

// JSONSchema returns the JSON Schema of plan files; the committed copy is
// scenarios/rollout/plan.schema.json.
func JSONSchema() []byte {
	return scenarios.JSONSchemaOf(reflect.TypeFor[Plan](), SchemaID, "fleetsim rollout plan",
		"A fleetsim rollout plan: stages of IoT Hub jobs over a population, gates between them, an abort rule, retries and a rollback.")
}

// errStopped is returned inside the engine when the rollout stopped
// (aborted or a gate failed); the state says why.
var errStopped = errors.New("the rollout stopped")

// payloadJSON returns a job's payload as JSON.
func payloadJSON(a *ActionSpec) (json.RawMessage, error) {
	if a.Payload == nil {
		return nil, nil
	}
	b, err := json.Marshal(a.Payload)
	if err != nil {
		return nil, fmt.Errorf("payload: %w", err)
	}
	return b, nil
}
