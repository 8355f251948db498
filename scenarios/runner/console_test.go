package runner_test

import (
	"crypto/tls"
	"encoding/json"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs/console"
	"github.com/fleetsim/fleetsim/scenarios"
	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// TestConsoleScenarioState plays a scenario with the console and reads its
// scenario page's data while it runs: every step is listed from the start
// and marked done no sooner than it was due, and the first job's
// expectation turns passing while the second job's is still pending.
func TestConsoleScenarioState(t *testing.T) {
	sc, err := scenarios.Parse("console.yaml", []byte(`
name: console-state
seed: 1
duration: 30s
devices:
  - name: d
    count: 20
    idPattern: "cst-{index:02}"
    behavior:
      methods:
        ping: {latency: {constant: 5ms}}
timeline:
  - at: 500ms
    job: {id: first, method: ping, condition: "*", connectTimeout: 5s}
  - at: 4s
    job: {id: second, method: ping, condition: "*"}
expect:
  - job: first
    status: completed
  - job: second
    status: completed
`))
	if err != nil {
		t.Fatal(err)
	}
	login := make(chan string, 1)
	done := make(chan error, 1)
	var rep *runner.Report
	go func() {
		var err error
		rep, err = runner.Run(t.Context(), sc, runner.Options{ConsoleAddr: "127.0.0.1:0", ConsoleReady: func(u string) { login <- u }})
		done <- err
	}()
	var u string
	select {
	case u = <-login:
	case err := <-done:
		t.Fatalf("run ended before the console was up: %v", err)
	}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	defer hc.CloseIdleConnections()
	if resp, err := hc.Get(u); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}
	base := u[:strings.Index(u, "/console/login")]
	var states []console.ScenarioState
	sawPassingWhilePending := false
	for len(states) < 400 {
		resp, err := hc.Get(base + "/console/api/scenario")
		if err != nil {
			break // the run ended and its hub with it
		}
		var st console.ScenarioState
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("scenario state: %d %v", resp.StatusCode, err)
		}
		states = append(states, st)
		if len(st.Expect) == 2 && st.Expect[0].State == console.ExpectPassing && st.Expect[1].State == console.ExpectPending {
			sawPassingWhilePending = true
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if !rep.Passed {
		t.Errorf("run failed: %+v", rep.Expectations)
	}
	if len(states) == 0 {
		t.Fatal("no scenario state read")
	}
	if !sawPassingWhilePending {
		t.Errorf("never saw the first job's expectation passing while the second's was pending; last %+v", states[len(states)-1])
	}
	for _, st := range states {
		if st.Name != "console-state" || st.Mode != "run" || len(st.Steps) != 2 {
			t.Fatalf("state %+v", st)
		}
		for _, s := range st.Steps {
			if s.Done && s.DoneAtMs < s.AtMs {
				t.Errorf("step %q done at %d ms, due at %d ms", s.Action, s.DoneAtMs, s.AtMs)
			}
		}
	}
}
