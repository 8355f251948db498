// fleetsim console: the page of a running scenario (fleetsim run --console,
// fleetsim serve --scenario). It uses app.js's helpers (h, api, S,
// lineChart, statBox, fmt); its state comes from /console/api/scenario and
// then from the "scenario" events of the live stream.
"use strict";

function scenarioView(v) {
  const head = h("div", { class: "panel" }), steps = h("tbody", { id: "scenario-steps" }), exps = h("tbody", { id: "scenario-expectations" });
  const c1 = h("canvas", { class: "chart", id: "scenario-connected" }), c2 = h("canvas", { class: "chart", id: "scenario-ops" });
  const title = h("h1", {}, "Scenario");
  v.append(title, head,
    h("div", { class: "cols" }, h("div", { class: "panel" }, h("h2", {}, "Connected devices"), c1), h("div", { class: "panel" }, h("h2", {}, "Device operations/s (jobs)"), c2)),
    h("div", { class: "cols" },
      h("div", { class: "panel" }, h("h2", {}, "Timeline"), h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "at"), h("th", {}, "action"), h("th", {}, "done"))), steps)),
      h("div", { class: "panel" }, h("h2", {}, "Expectations"), h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "expectation"), h("th", {}, "state"), h("th", {}, "figures"))), exps))));
  let st = null, skew = 0, timer = null;
  const secs = (ms) => (ms / 1000).toFixed(ms < 10000 ? 1 : 0) + " s";
  function elapsed() {
    if (!st || !st.started || st.started.startsWith("0001")) return null;
    return Date.now() + skew - Date.parse(st.started);
  }
  function header() {
    if (!st) return;
    const e = elapsed(), next = st.steps.find((s) => !s.done);
    const phase = st.phase === "ended" ? (st.passed === undefined ? "ended" : st.passed ? "ended: passed" : "ended: failed") : st.phase;
    head.replaceChildren(h("div", { class: "row" },
      h("div", { class: "stat" }, h("b", { id: "scenario-phase" }, phase), h("span", {}, st.mode === "hosted" ? "hosted fleet" : "phase")),
      h("div", { class: "stat" }, h("b", { id: "scenario-elapsed" }, e === null ? "–" : st.phase === "ended" ? "–" : "T+" + secs(e)), h("span", {}, "elapsed")),
      statBox("devices", st.devices), statBox("connected", S.live ? S.live.totals.connected : 0),
      h("div", { class: "stat" }, h("b", { id: "scenario-next" }, next && e !== null && st.mode !== "hosted" ? "in " + secs(Math.max(0, next.atMs - e)) : "–"), h("span", {}, "to the next step")),
      h("div", { class: "stat" }, h("b", { id: "scenario-passing" }, st.expectations.filter((x) => x.state === "passing").length + " of " + st.expectations.length), h("span", {}, "expectations passing"))),
      h("p", { class: "dim" }, st.description || "", st.mode === "hosted" ? " · fleetsim serve hosts this scenario's fleet; its timeline is played by fleetsim run." : ""));
  }
  function show(s) {
    st = s; skew = s.now - Date.now();
    title.replaceChildren("Scenario ", h("code", {}, s.name));
    header();
    const nextIdx = s.steps.findIndex((x) => !x.done);
    steps.replaceChildren(...s.steps.map((x, i) => h("tr", { class: x.done ? "step-done" : i === nextIdx ? "step-next" : "", "data-step": i, "data-done": x.done ? "1" : "0" },
      h("td", {}, "T+" + secs(x.atMs)), h("td", {}, x.action, x.note ? h("div", { class: "dim" }, x.note) : null),
      h("td", {}, x.done ? "✓ T+" + secs(x.doneAtMs) : i === nextIdx ? "next" : "–"))));
    if (!s.steps.length) steps.append(h("tr", {}, h("td", { colspan: 3, class: "dim" }, "the timeline has no actions")));
    exps.replaceChildren(...s.expectations.map((x, i) => h("tr", { "data-expect": i },
      h("td", {}, x.description), h("td", { class: "exp-" + x.state, "data-state": x.state }, x.state), h("td", {}, x.detail || ""))));
    if (!s.expectations.length) exps.append(h("tr", {}, h("td", { colspan: 3, class: "dim" }, s.mode === "hosted" ? "fleetsim run judges the expectations; serve hosts the fleet" : "the scenario expects nothing")));
  }
  function draw() {
    header();
    const pts = S.hub, t0 = st && st.started && !st.started.startsWith("0001") ? Date.parse(st.started) : 0;
    const s = t0 ? pts.filter((p) => p.t >= t0 - 2000) : pts;
    lineChart(c1, [{ name: "connected", color: "#2ecc71", points: s.map((p) => [p.t, p.connected]) }], { max: st ? st.devices : 0 });
    lineChart(c2, [{ name: "job device-ops/s", color: "#f0a020", points: s.map((p) => [p.t, p.jobOpsPerSec]) }]);
  }
  api("GET", "/scenario").then((s) => { show(s); draw(); }).catch((e) => head.replaceChildren(h("p", { class: "err" }, e.message)));
  api("GET", "/hub/series").then((s) => { S.hub = s; draw(); });
  timer = setInterval(header, 500);
  return { scenario: show, live: draw, close: () => clearInterval(timer) };
}
