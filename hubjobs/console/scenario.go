package console

import (
	"encoding/json"
	"net/http"
	"time"
)

// Scenario is a scenario being played against the hub, as its page shows
// it. The scenario runner implements it; the console asks for a snapshot on
// its ticks while a scenario page is open, so ScenarioState must return
// quickly and be safe to call from another goroutine.
type Scenario interface {
	// ScenarioState returns the scenario's state now.
	ScenarioState() ScenarioState
}

// ScenarioState is a snapshot of a running scenario.
type ScenarioState struct {
	// Version changes whenever anything else in the state does, so the
	// console sends a state only when it is new.
	Version     int64  `json:"version"`
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// Mode is "run" (fleetsim run plays the timeline) or "hosted"
	// (fleetsim serve --scenario hosts the fleet alone; the timeline is
	// not played).
	Mode string `json:"mode"`
	// Phase is "starting", "playing", "settling" or "ended".
	Phase string `json:"phase"`
	// Started is when the timeline's clock started (zero before).
	Started time.Time `json:"started"`
	// DurationMs is the scenario's longest duration.
	DurationMs int64                 `json:"durationMs"`
	Devices    int                   `json:"devices"`
	Steps      []ScenarioStep        `json:"steps"`
	Expect     []ScenarioExpectation `json:"expectations"`
	// Passed is set once the run has ended and every expectation held.
	Passed *bool `json:"passed,omitempty"`
}

// ScenarioStep is one action of the timeline.
type ScenarioStep struct {
	// AtMs is when the step is due, after the start.
	AtMs   int64  `json:"atMs"`
	Action string `json:"action"`
	// Done says it has played, DoneAtMs when, and Note what came of it.
	Done     bool   `json:"done"`
	DoneAtMs int64  `json:"doneAtMs,omitempty"`
	Note     string `json:"note,omitempty"`
}

// Expectation states.
const (
	ExpectPending = "pending"
	ExpectPassing = "passing"
	ExpectFailed  = "failed"
)

// ScenarioExpectation is one expectation as judged so far.
type ScenarioExpectation struct {
	Description string `json:"description"`
	// State is ExpectPending, ExpectPassing or ExpectFailed.
	State string `json:"state"`
	// Detail is what was measured, e.g. "198 of 200 succeeded (99.0%)".
	Detail string `json:"detail,omitempty"`
}

// SetScenario shows s on the console's scenario page (nil hides the page).
// The runner calls it once the hub is built.
func (c *Console) SetScenario(s Scenario) {
	c.live.scenario.Store(&scenarioRef{s})
}

// scenarioRef boxes a Scenario for an atomic.Pointer.
type scenarioRef struct{ s Scenario }

func (l *live) currentScenario() Scenario {
	if r := l.scenario.Load(); r != nil {
		return r.s
	}
	return nil
}

// sampleScenario takes the scenario's snapshot on a tick while a scenario
// page watches, and keeps the message when the state changed.
func (l *live) sampleScenario(now time.Time) {
	sc := l.currentScenario()
	if sc == nil || l.scenarioWatchers.Load() == 0 {
		return
	}
	st := sc.ScenarioState()
	l.mu.RLock()
	same := l.scenarioMsg != nil && st.Version == l.scenarioVer
	l.mu.RUnlock()
	if same {
		return
	}
	b := scenarioMessage(st, now)
	l.mu.Lock()
	l.scenarioMsg, l.scenarioVer = b, st.Version
	l.mu.Unlock()
}

func scenarioMessage(st ScenarioState, now time.Time) []byte {
	if st.Steps == nil {
		st.Steps = []ScenarioStep{}
	}
	if st.Expect == nil {
		st.Expect = []ScenarioExpectation{}
	}
	b, _ := json.Marshal(struct {
		ScenarioState
		Now int64 `json:"now"` // unix ms: the page counts the elapsed time from here
	}{st, now.UnixMilli()})
	return b
}

// scenarioSnapshot returns the latest scenario message and its version.
func (l *live) scenarioSnapshot() ([]byte, int64) {
	l.mu.RLock()
	defer l.mu.RUnlock()
	return l.scenarioMsg, l.scenarioVer
}

// apiScenario answers the scenario's state now, or 404 when none runs.
func (c *Console) apiScenario(w http.ResponseWriter, r *http.Request, s *session) error {
	sc := c.live.currentScenario()
	if sc == nil {
		return errorf(http.StatusNotFound, "no scenario runs on this hub")
	}
	rawJSON(w, scenarioMessage(sc.ScenarioState(), time.Now()))
	return nil
}
