// fleetsim console: the Rollouts pages (rollouts the hub runs). It uses
// app.js's helpers (h, api, fmt, progress, statBox) and is routed from there.
"use strict";

const ROLLOUT_POLL_MS = 500; // two reads a second while a rollout page is open
const rolloutEnded = (s) => ["completed", "aborted", "stopped", "failed"].includes(s);
const rolloutClass = (s) => "rollout-" + s;
const when = (t) => t ? new Date(t).toLocaleTimeString() : "–";
const pctOf = (x) => (100 * x).toFixed(1) + " %";
const secs = (ns) => (ns / 1e9).toFixed(ns % 1e9 ? 1 : 0) + " s";

// pollView calls load now and every ROLLOUT_POLL_MS, one read at a time,
// until the view is closed.
function pollView(load) {
  let busy = false, closed = false;
  const tick = async () => {
    if (busy || closed) return;
    busy = true;
    try { await load(); } finally { busy = false; }
  };
  const timer = setInterval(tick, ROLLOUT_POLL_MS);
  tick();
  return { close: () => { closed = true; clearInterval(timer); } };
}

function rolloutsView(v) {
  const body = h("tbody", { id: "rollouts-body" }), msg = h("p", { class: "dim" });
  v.append(h("h1", {}, "Rollouts"),
    h("div", { class: "panel" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "rollout"), h("th", {}, "status"), h("th", {}, "stage"),
      h("th", { class: "hide" }, "devices touched"), h("th", { class: "hide" }, "updated"))), body), msg),
    h("p", { class: "dim" }, "Rollouts the hub runs: submit one with ", h("code", {}, "fleetsim rollout submit PLAN"), " or POST /fleetsim/v1/rollouts."));
  return pollView(async () => {
    let list;
    try { list = await api("GET", "/rollouts"); } catch (e) { msg.textContent = e.message; return; }
    body.replaceChildren(...list.map((r) => h("tr", { "data-rollout": r.id },
      h("td", {}, h("a", { href: "#/rollout/" + encodeURIComponent(r.id) }, r.id)),
      h("td", { class: rolloutClass(r.status) }, r.status),
      h("td", {}, r.currentStage ? r.stage + "/" + r.stages + " " + r.currentStage : "–"),
      h("td", { class: "hide" }, fmt(r.touched)), h("td", { class: "hide" }, when(r.updated)))));
    if (!list.length) body.replaceChildren(h("tr", {}, h("td", { colspan: 5, class: "dim" }, "no rollouts yet")));
  });
}

// stageGates is the plan's gates of stage i (its own, else the plan's).
function stageGates(plan, i) { return (plan.Stages[i] && plan.Stages[i].Gates) || plan.Gates || null; }

// gateRows lists a stage's gates: the verdicts with their figures, and the
// ones still to judge with what they ask.
function gateRows(st, i, s) {
  const g = stageGates(st.plan, i), rows = [], judged = new Set();
  for (const r of s.gates || []) {
    judged.add(r.gate);
    rows.push(h("tr", { "data-gate": r.gate }, h("td", {}, r.gate), h("td", { class: r.passed ? "okmsg" : "err" }, r.passed ? "passed" : "FAILED"), h("td", {}, r.figures), h("td", { class: "hide" }, when(r.at))));
  }
  if (g && !rolloutEnded(st.status) && i >= st.stage) {
    const current = i === st.stage && (s.step === "gates" || s.step === "approval");
    const pending = (gate, text) => { if (!judged.has(gate)) rows.push(h("tr", { "data-gate": gate }, h("td", {}, gate), h("td", { class: "dim" }, current ? "judging" : "to come"), h("td", {}, text), h("td", { class: "hide" }, ""))); };
    if (g.MinSuccessRate != null) pending("successRate", "at least " + pctOf(g.MinSuccessRate) + " of the stage's devices succeed");
    if (g.Converge) pending("converge", "at least " + pctOf(g.Converge.MinFraction == null ? 1 : g.Converge.MinFraction) + " match " + g.Converge.Match + " within " + secs(g.Converge.Within));
    if (g.Bake) {
      const left = s.bakeUntil ? Math.max(0, (Date.parse(s.bakeUntil) - Date.now()) / 1000) : null;
      pending("bake", left === null ? "bake " + secs(g.Bake) : "baking: " + left.toFixed(0) + " s of " + secs(g.Bake) + " left");
    }
    if (g.Approval && i < st.stages.length - 1) pending("approval", st.status === "waitingApproval" && current ? "waiting for an operator's approval" : "an operator approves");
  }
  return rows;
}

function stagePanel(st, i) {
  const s = st.stages[i], sum = { deviceCount: 0, succeededCount: 0, failedCount: 0 };
  for (const j of s.jobs) if (j.kind === "action" || j.kind === "retry") { sum.deviceCount += j.stats.deviceCount; sum.succeededCount += j.stats.succeededCount; sum.failedCount += j.stats.failedCount; }
  if (!sum.deviceCount) sum.deviceCount = s.devices;
  const cls = i === st.stage && !rolloutEnded(st.status) ? "panel stage current" : "panel stage";
  const jobs = s.jobs.filter((j) => j.kind !== "mark");
  const gates = gateRows(st, i, s);
  return h("div", { class: cls, "data-stage": s.name },
    h("h2", {}, (i + 1) + ". " + s.name, " ", h("span", { class: "dim" }, s.step)),
    h("div", { class: "row" }, statBox("devices", s.devices), statBox("succeeded", sum.succeededCount), statBox("failed", sum.failedCount), statBox("retries", s.attempt),
      s.retryAt && s.step === "retry" ? h("span", { class: "dim" }, "next retry at " + when(s.retryAt)) : null),
    progress(sum),
    jobs.length ? h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "job"), h("th", {}, "kind"), h("th", {}, "status"), h("th", {}, "progress"))),
      h("tbody", {}, ...jobs.map((j) => h("tr", {}, h("td", {}, h("a", { href: "#/job/" + encodeURIComponent(j.id) }, j.id)), h("td", {}, j.kind),
        h("td", { class: "status-" + j.status }, j.status || "creating"), h("td", {}, progress(j.stats)))))) : null,
    gates.length ? h("table", { class: "gates" }, h("thead", {}, h("tr", {}, h("th", {}, "gate"), h("th", {}, "verdict"), h("th", {}, "figures"), h("th", { class: "hide" }, "at"))), h("tbody", {}, ...gates)) : null);
}

function rolloutView(v, id) {
  const head = h("div", { class: "panel", id: "rollout-head" }), abortBox = h("div", { id: "rollout-abort" }), stages = h("div", { id: "rollout-stages" }), events = h("tbody", {});
  const msg = h("p", { id: "rollout-msg" }), reason = h("input", { id: "abort-reason", placeholder: "reason for the abort", autocomplete: "off", disabled: !S.write });
  const approveBtn = h("button", { id: "approve", disabled: !S.write, onclick: () => act("approve", {}) }, "Approve");
  const abortBtn = h("button", { id: "abort", class: "danger", disabled: !S.write, onclick: () => act("abort", { reason: reason.value.trim() }) }, "Abort");
  const controls = h("div", { class: "row" }, approveBtn, reason, abortBtn);
  controls.style.display = "none"; // .row's display would override the hidden attribute
  v.append(h("h1", {}, "Rollout ", h("code", {}, id)), head, controls, msg, abortBox, stages,
    h("div", { class: "panel" }, h("h2", {}, "History"), h("table", {}, h("tbody", {}, events))));
  async function act(what, body) {
    try { await api("POST", "/rollouts/" + encodeURIComponent(id) + "/" + what, body); msg.textContent = what === "approve" ? "Approved" : "Abort requested"; msg.className = "okmsg"; }
    catch (e) { msg.textContent = e.message; msg.className = "err"; }
  }
  function show(st) {
    const ended = rolloutEnded(st.status);
    controls.style.display = ended ? "none" : "";
    approveBtn.hidden = st.status !== "waitingApproval";
    const cur = st.stages[st.stage];
    head.replaceChildren(h("div", { class: "row" },
      h("div", { class: "stat" }, h("b", { id: "rollout-status", class: rolloutClass(st.status) }, st.status), h("span", {}, "status")),
      h("div", { class: "stat" }, h("b", {}, cur ? (st.stage + 1) + "/" + st.stages.length : "–"), h("span", {}, cur ? "stage " + cur.name : "stage")),
      statBox("devices touched", st.stages.reduce((n, s) => n + s.jobs.filter((j) => j.kind === "action").reduce((m, j) => m + j.stats.succeededCount + j.stats.failedCount, 0), 0)),
      h("div", { class: "stat" }, h("b", {}, when(st.started)), h("span", {}, "started")),
      h("div", { class: "stat" }, h("b", {}, when(st.ended)), h("span", {}, "ended"))),
      h("p", { class: "dim" }, "target " + (st.plan.Target || "*") + (st.reason ? " · " : ""), st.reason ? h("span", { id: "rollout-reason" }, st.reason) : null));
    const a = st.abort;
    abortBox.replaceChildren(...(a ? [h("div", { class: "panel abort" }, h("h2", {}, "Aborted at stage " + a.stage),
      h("p", { id: "abort-rule" }, "rule ", h("b", {}, a.rule), " fired at " + when(a.at) + (a.job ? " on job " + a.job : "") + (st.reason ? ": " + st.reason : "")),
      h("div", { class: "row" }, statBox("failed", a.failed), statBox("finished", a.finished), statBox("devices", a.devices), statBox("touched before", a.touched)))] : []));
    stages.replaceChildren(...st.stages.map((_, i) => stagePanel(st, i)));
    events.replaceChildren(...st.events.slice(-15).reverse().map((e) => h("tr", {}, h("td", { class: "dim" }, when(e.at)), h("td", {}, e.stage || ""), h("td", {}, e.msg))));
  }
  return pollView(async () => {
    try { show(await api("GET", "/rollouts/" + encodeURIComponent(id))); }
    catch (e) { head.replaceChildren(h("p", { class: "err" }, e.message)); }
  });
}
