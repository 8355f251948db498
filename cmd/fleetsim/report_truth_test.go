package main

import (
	"encoding/json"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/fleetsim/fleetsim/hubjobs/restapi"
	"github.com/fleetsim/fleetsim/internal/testkit"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
	"github.com/fleetsim/fleetsim/scenarios"
	"github.com/fleetsim/fleetsim/scenarios/runner"
)

// TestQuickstartFiguresAgreeWithGroundTruth plays the ready quickstart
// against a served hub on loopback, then checks that the figures the text,
// JSON and HTML reports and the last live snapshot show agree with each
// other, with the devices' own counters, and with what the hub itself
// recorded: every desired patch the twin job delivered to a connected
// device was acknowledged, and the hub stored every acknowledgement.
func TestQuickstartFiguresAgreeWithGroundTruth(t *testing.T) {
	ctx := t.Context()
	ep := testkit.StartHub(t, testkit.HubOptions{Persistent: true}).Endpoints()
	tlsConf, err := tlsutil.ClientConfig(tlsutil.Files{CAFile: ep.CAFile})
	if err != nil {
		t.Fatal(err)
	}
	remote := &runner.Remote{ServiceConnectionString: ep.ServiceConnectionString, RESTURL: "https://" + ep.HTTPSAddr,
		MQTTURL: "ssl://" + ep.MQTTAddr, TLSConfig: tlsConf}
	sc, err := scenarios.Load("quickstart")
	if err != nil {
		t.Fatal(err)
	}
	var last runner.Progress
	rep, err := runner.Run(ctx, sc, runner.Options{Remote: remote, Progress: func(p runner.Progress) { last = p }})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range rep.Expectations {
		if !e.Passed {
			t.Logf("expectation failed: %s: %s", e.Description, e.Detail)
		}
	}

	// What the hub recorded, asked through its REST API.
	hub, err := restapi.NewClient(ep.ServiceConnectionString, restapi.ClientOptions{BaseURL: "https://" + ep.HTTPSAddr, TLSConfig: tlsConf})
	if err != nil {
		t.Fatal(err)
	}
	count := func(where string) int {
		t.Helper()
		items, err := hub.Query(ctx, "SELECT COUNT() AS n FROM devices WHERE "+where, 0)
		if err != nil || len(items) != 1 {
			t.Fatalf("count %s: %v (%d rows)", where, err, len(items))
		}
		var row struct{ N int }
		if err := json.Unmarshal(items[0], &row); err != nil {
			t.Fatal(err)
		}
		return row.N
	}
	jobStats := func(id string) (succeeded, failed int) {
		t.Helper()
		raw, err := hub.GetJob(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		var j struct {
			Status string
			Stats  struct{ SucceededCount, FailedCount int } `json:"deviceJobStatistics"`
		}
		if err := json.Unmarshal(raw, &j); err != nil || j.Status != "completed" {
			t.Fatalf("job %s: %v, status %q", id, err, j.Status)
		}
		return j.Stats.SucceededCount, j.Stats.FailedCount
	}
	// A remote run names its jobs after the scenario's with the run's
	// suffix: read the hub's ids from the report.
	hubID := func(base string) string {
		t.Helper()
		for _, j := range rep.Jobs {
			if strings.HasPrefix(j.JobID, base) {
				return j.JobID
			}
		}
		t.Fatalf("no job %s in the report", base)
		return ""
	}
	pingOK, _ := jobStats(hubID("ping-all"))
	twinOK, twinFailed := jobStats(hubID("set-interval-b43"))
	acked := count("tags.building = 43 AND properties.reported.telemetryInterval.value = 30")
	if twinOK != 100 || twinFailed != 0 || acked != 100 || pingOK != 200 {
		t.Fatalf("hub: twin job %d succeeded, %d failed; %d twins acknowledged; ping %d succeeded; want 100, 0, 100, 200",
			twinOK, twinFailed, acked, pingOK)
	}

	// The figures as each report shows them.
	text := string(renderText(rep))
	page, err := renderHTML(rep)
	if err != nil {
		t.Fatal(err)
	}
	html := string(page)
	js, err := renderJSON(rep)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Devices int `json:"devices"`
		Fleet   struct {
			ConnectedAtEnd int `json:"connectedAtEnd"`
		} `json:"fleet"`
		Settle struct {
			Settled     bool  `json:"settled"`
			Outstanding int64 `json:"outstanding"`
		} `json:"settle"`
		DeviceSide struct {
			TwinAcks *jsonAcks `json:"twinAcks"`
		} `json:"deviceSide"`
		Jobs []struct {
			JobID      string `json:"jobId"`
			Succeeded  int    `json:"succeededCount"`
			DeviceSide *struct {
				TwinAcks *jsonAcks `json:"twinAcks"`
			} `json:"deviceSide"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal(js, &doc); err != nil {
		t.Fatal(err)
	}
	var raw struct {
		Fleet map[string]float64 `json:"fleet"` // counts, and allConnectedMs
	}
	if err := json.Unmarshal(js, &raw); err != nil {
		t.Fatal(err)
	}
	jsonFleet := make(map[string]int64, len(raw.Fleet))
	for k, v := range raw.Fleet {
		jsonFleet[k] = int64(v)
	}

	// The devices' own counters (the fleet summary) against the hub.
	if jsonFleet["desiredPatches"] != int64(twinOK) || jsonFleet["methodCalls"] != int64(pingOK) {
		t.Errorf("devices received %d desired patches and %d method calls; the hub delivered %d and %d",
			jsonFleet["desiredPatches"], jsonFleet["methodCalls"], twinOK, pingOK)
	}
	if !doc.Settle.Settled || doc.Settle.Outstanding != 0 {
		t.Errorf("JSON settle %+v", doc.Settle)
	}

	// Acknowledgements: the run's and the twin job's, in every report,
	// equal to the patches delivered and to the twins the hub updated.
	if doc.DeviceSide.TwinAcks == nil || len(doc.Jobs) != 2 || doc.Jobs[1].DeviceSide == nil || doc.Jobs[1].DeviceSide.TwinAcks == nil {
		t.Fatalf("report.json lacks the acknowledgements: %s", js)
	}
	want := []*jsonAcks{doc.DeviceSide.TwinAcks, doc.Jobs[1].DeviceSide.TwinAcks}
	for i, a := range want {
		if a.Acknowledged != acked || a.Failed != 0 || a.Acknowledged != doc.Jobs[1].Succeeded {
			t.Errorf("JSON acknowledgements %d: %+v; the hub stored %d, the job succeeded on %d", i, a, acked, doc.Jobs[1].Succeeded)
		}
		if !(0 < a.Latency.P50 && a.Latency.P50 <= a.Latency.P99 && a.Latency.P99 <= a.Latency.Max) {
			t.Errorf("JSON acknowledgement latency %d out of order: %+v", i, a.Latency)
		}
	}
	textAcks := regexp.MustCompile(`acknowledgements: (\d+) accepted by the hub(?: \(\d+ reports? the change was not applied\))?, (\d+) failed; latency p50 ([^,]+), p99 ([^,]+), max ([^\n]+)\n`).FindAllStringSubmatch(text, -1)
	htmlAcks := regexp.MustCompile(`<td>Acknowledgements<br><span class="sub">[^<]*</span>(?:<br><span class="sub note">[^<]*</span>)?</td><td class="num">(\d+)</td><td class="num">(\d+)</td><td class="num">-</td><td class="num">([^<]+)</td><td class="num">([^<]+)</td><td class="num">([^<]+)</td>`).FindAllStringSubmatch(html, -1)
	if len(textAcks) != 2 || len(htmlAcks) != 2 {
		t.Fatalf("acknowledgement lines: %d in the text, %d in the HTML, want 2 each (run, job)\n%s", len(textAcks), len(htmlAcks), text)
	}
	for i, a := range want {
		fields := []string{strconv.Itoa(a.Acknowledged), strconv.Itoa(a.Failed), fmtMs(a.Latency.P50), fmtMs(a.Latency.P99), fmtMs(a.Latency.Max)}
		for k, f := range fields {
			if textAcks[i][k+1] != f || htmlAcks[i][k+1] != f {
				t.Errorf("acknowledgements %d, figure %d: JSON %s, text %s, HTML %s", i, k, f, textAcks[i][k+1], htmlAcks[i][k+1])
			}
		}
	}

	// One reading of "connected at the end" in every report.
	connected := strconv.Itoa(doc.Fleet.ConnectedAtEnd)
	for what, re := range map[string]string{
		"text tile":       `(\d+) of \d+ connected at the end`,
		"text expect":     `fleet is connected at the end: (\d+) of \d+ connected`,
		"HTML tile":       `<div><b>(\d+)</b><span>connected at the end</span></div>`,
		"HTML expect row": `fleet is connected at the end</td><td>(\d+) of \d+ connected`,
	} {
		src := text
		if what[:4] == "HTML" {
			src = html
		}
		m := regexp.MustCompile(re).FindStringSubmatch(src)
		if m == nil || m[1] != connected || doc.Fleet.ConnectedAtEnd != doc.Devices {
			t.Errorf("%s: %v, JSON connectedAtEnd %s of %d", what, m, connected, doc.Devices)
		}
	}

	// Text and HTML say the run settled; the fleet line names the devices' counters.
	if !regexp.MustCompile(`(?m)^Run settled: `).MatchString(text) || !regexp.MustCompile(`<p class="settle">Settled: `).MatchString(html) {
		t.Errorf("text or HTML does not say the run settled")
	}
	if wantLine := fmt.Sprintf("%d method calls, %d desired patches, %d reported updates", jsonFleet["methodCalls"], jsonFleet["desiredPatches"], jsonFleet["reportedUpdates"]); !regexp.MustCompile(regexp.QuoteMeta(wantLine)).MatchString(text) {
		t.Errorf("text fleet line lacks %q", wantLine)
	}

	// The last live snapshot counted the same acknowledgements.
	if a := last.DeviceSide.TwinAcks; a == nil || a.Acknowledged != acked || !last.Settled {
		t.Errorf("last live snapshot: acknowledgements %+v, settled %v; want %d, true", a, last.Settled, acked)
	}
}

// jsonAcks is report.json's twinAcks object, decoded by its field names.
type jsonAcks struct {
	Acknowledged int `json:"acknowledged"`
	Failed       int `json:"failed"`
	Latency      struct {
		P50 float64 `json:"p50"`
		P99 float64 `json:"p99"`
		Max float64 `json:"max"`
	} `json:"latencyMs"`
}
