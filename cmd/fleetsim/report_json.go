package main

import (
	"encoding/json"
	"fmt"

	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// renderJSON renders the report as indented JSON, the report's own schema.
func renderJSON(r *runner.Report) ([]byte, error) {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encode report: %w", err)
	}
	return append(b, '\n'), nil
}
