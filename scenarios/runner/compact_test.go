package runner

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
)

// TestCompactRollout checks that a published rollout report stays within
// its budget on the coordination twin and keeps what expectations judge.
func TestCompactRollout(t *testing.T) {
	stage := func(n int) RolloutStageReport {
		return RolloutStageReport{Name: fmt.Sprintf("stage-%d", n), Devices: 100, Jobs: []string{"fw-abcdef12-s1-a1"}, Retries: []int{3},
			Gates:      []RolloutGateReport{{Gate: "converge", Passed: true, Figures: strings.Repeat("x", 150), Count: 99, Of: 100, Value: 0.99}},
			JobFigures: []RolloutJobReport{{ID: "fw-abcdef12-s1-a1", Kind: "action", Status: "completed", Devices: 100, Succeeded: 99}}}
	}
	for _, tt := range []struct {
		name       string
		stages     int
		wantStages bool
		wantFigs   bool
	}{
		{"small", 2, true, true},
		{"many stages", 5, true, false},
		{"too many stages", 40, false, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			rep := RolloutReport{ID: "fw", HubID: "fw-abcdef12", Status: "aborted", StoppedAt: "stage-1", Touched: 120, Reason: strings.Repeat("r", 200),
				Abort:  &RolloutAbortReport{Kind: "maxFailures", Stage: "stage-1"},
				Events: []RolloutEventReport{{Msg: strings.Repeat("e", 500)}}}
			for i := range tt.stages {
				rep.Stages = append(rep.Stages, stage(i))
			}
			s := compactRollout(rep)
			if len(s) > maxPublished {
				t.Fatalf("%d bytes, want at most %d", len(s), maxPublished)
			}
			var got RolloutReport
			if err := json.Unmarshal([]byte(s), &got); err != nil {
				t.Fatal(err)
			}
			if got.Status != "aborted" || got.StoppedAt != "stage-1" || got.Touched != 120 || got.Abort == nil || got.Abort.Kind != "maxFailures" || len(got.Events) != 0 {
				t.Errorf("lost what expectations judge: %+v", got)
			}
			if (len(got.Stages) > 0) != tt.wantStages || (len(got.Stages) > 0 && (got.Stages[0].Gates[0].Figures != "") != tt.wantFigs) {
				t.Errorf("stages %+v: want stages %v, gate figures %v", got.Stages, tt.wantStages, tt.wantFigs)
			}
		})
	}
}
