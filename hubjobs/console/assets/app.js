// fleetsim console: a small single-page app over /console/api. No build step.
"use strict";
const S = { csrf: "", write: false, es: null, live: null, cells: null, view: null, hub: [] };

function h(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else if (k === "text") e.textContent = v;
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const k of kids.flat()) if (k !== null && k !== undefined) e.append(k instanceof Node ? k : String(k));
  return e;
}
const $ = (id) => document.getElementById(id);
const fmt = (n) => (n === undefined || n === null) ? "–" : Number(n).toLocaleString("en-US", { maximumFractionDigits: 1 });

async function api(method, path, body, headers) {
  const opt = { method, headers: Object.assign({}, headers || {}), credentials: "same-origin" };
  if (method !== "GET") opt.headers["X-CSRF-Token"] = S.csrf;
  if (body !== undefined) { opt.headers["Content-Type"] = "application/json"; opt.body = typeof body === "string" ? body : JSON.stringify(body); }
  const r = await fetch("/console/api" + path, opt);
  if (r.status === 401) { location.href = "/console/login"; throw new Error("signed out"); }
  const t = await r.text();
  let j = null; try { j = t ? JSON.parse(t) : null; } catch (e) { j = { error: t }; }
  if (!r.ok) throw new Error((j && j.error) || r.statusText);
  return j;
}

// ---- live events ----
function openEvents(job, scenario) {
  if (S.es) S.es.close();
  S.es = new EventSource("/console/api/events" + (job ? "?job=" + encodeURIComponent(job) : scenario ? "?scenario=1" : ""));
  S.es.addEventListener("scenario", (e) => { if (S.view && S.view.scenario) S.view.scenario(JSON.parse(e.data)); });
  S.es.addEventListener("live", (e) => { S.live = JSON.parse(e.data); S.hub.push(S.live.hub); if (S.hub.length > 600) S.hub.shift(); if (S.view && S.view.live) S.view.live(S.live); });
  S.es.addEventListener("cells", (e) => { S.cells = decodeCells(JSON.parse(e.data)); if (S.view && S.view.cells) S.view.cells(S.cells); });
  S.es.addEventListener("job", (e) => { if (S.view && S.view.job) S.view.job(JSON.parse(e.data)); });
}

function decodeCells(c) {
  const bin = atob(c.cells || ""), codes = new Uint8Array(c.devices);
  if (c.enc === "raw") { for (let i = 0; i < bin.length && i < codes.length; i++) codes[i] = bin.charCodeAt(i); return { version: c.version, n: c.devices, codes, counts: c.counts || {} }; }
  let p = 0, i = 0;
  while (i < bin.length) {
    const code = bin.charCodeAt(i++);
    let n = 0, shift = 0, b;
    do { b = bin.charCodeAt(i++); n += (b & 0x7f) * Math.pow(2, shift); shift += 7; } while (b & 0x80);
    codes.fill(code, p, p + n); p += n;
  }
  return { version: c.version, n: c.devices, codes, counts: c.counts || {} };
}

// ---- charts ----
function lineChart(canvas, series, opts) {
  const dpr = window.devicePixelRatio || 1, w = canvas.clientWidth || 300, hgt = canvas.clientHeight || 160;
  canvas.width = w * dpr; canvas.height = hgt * dpr;
  const g = canvas.getContext("2d"); g.scale(dpr, dpr); g.clearRect(0, 0, w, hgt);
  const pts = series.flatMap((s) => s.points);
  if (!pts.length) { g.fillStyle = "#8b98a5"; g.fillText("no data yet", 8, 20); return; }
  const x0 = Math.min(...pts.map((p) => p[0])), x1 = Math.max(...pts.map((p) => p[0]), x0 + 1);
  const y1 = Math.max(opts && opts.max || 0, ...pts.map((p) => p[1]), 1);
  const L = 48, B = 18, T = 22;
  g.strokeStyle = "#2a343f"; g.fillStyle = "#8b98a5"; g.font = "11px system-ui";
  for (let i = 0; i <= 4; i++) { const y = T + (hgt - B - T) * (1 - i / 4) + 0.5; g.beginPath(); g.moveTo(L, y); g.lineTo(w, y); g.stroke(); g.fillText(fmt(y1 * i / 4), 2, y + 4); }
  g.fillText(((x1 - x0) / 1000).toFixed(x1 - x0 < 10000 ? 1 : 0) + " s", w - 44, hgt - 4);
  for (const s of series) {
    g.strokeStyle = s.color; g.lineWidth = 1.5; g.beginPath();
    s.points.forEach((p, i) => { const x = L + (p[0] - x0) / (x1 - x0) * (w - L), y = T + (hgt - B - T) * (1 - p[1] / y1); i ? g.lineTo(x, y) : g.moveTo(x, y); });
    g.stroke();
  }
  let lx = L + 4; g.font = "11px system-ui";
  for (const s of series) { g.fillStyle = s.color; g.fillText(s.name, lx, 12); lx += g.measureText(s.name).width + 14; }
}

function barChart(canvas, labels, values, color) {
  const dpr = window.devicePixelRatio || 1, w = canvas.clientWidth || 300, hgt = canvas.clientHeight || 160;
  canvas.width = w * dpr; canvas.height = hgt * dpr;
  const g = canvas.getContext("2d"); g.scale(dpr, dpr); g.clearRect(0, 0, w, hgt);
  const m = Math.max(1, ...values), bw = w / values.length, B = 18;
  g.font = "10px system-ui";
  values.forEach((v, i) => {
    const bh = (hgt - B - 12) * v / m; g.fillStyle = color; g.fillRect(i * bw + 1, hgt - B - bh, bw - 2, bh);
    g.fillStyle = "#8b98a5"; if (i % 2 === 0 || bw > 40) g.fillText(labels[i], i * bw + 1, hgt - 4);
    if (v) { g.fillStyle = "#dde3ea"; g.fillText(fmt(v), i * bw + 1, hgt - B - bh - 2); }
  });
}

function progress(st) {
  const n = st.deviceCount || 0, ok = st.succeededCount || 0, f = st.failedCount || 0;
  const pct = n ? Math.floor((ok + f) * 100 / n) : 0;
  const a = h("i", { class: "ok" }), b = h("i", { class: "fail" });
  a.style.width = (n ? ok * 100 / n : 0) + "%"; b.style.left = a.style.width; b.style.width = (n ? f * 100 / n : 0) + "%";
  return h("div", { class: "row" }, h("div", { class: "bar", "data-pct": pct }, a, b), h("span", { class: "pct" }, pct + " %"));
}

// ---- fleet ----
const COLORS = { conn: [46, 204, 113], disc: [86, 96, 107], dis: [42, 47, 53], run: [74, 163, 255], sched: [163, 113, 247], ok: [31, 157, 85], fail: [255, 92, 92], cancel: [240, 160, 32] };
function cellColor(code, by) {
  const conn = code & 3, job = code >> 2;
  const cc = conn === 1 ? COLORS.conn : conn === 2 ? COLORS.disc : COLORS.dis;
  if (by === "connection") return cc;
  const jc = [null, COLORS.sched, COLORS.run, COLORS.ok, COLORS.fail, COLORS.cancel][job];
  if (by === "job") return jc || COLORS.dis;
  return (job === 1 || job === 2 || job === 4 || job === 5) ? jc : cc;
}

function fleetView(v) {
  let mask = null, by = "status", timer = null, cell = 4, cols = 1;
  const canvas = h("canvas", { id: "grid" });
  const countEl = h("span", { id: "match-count", class: "dim" });
  const input = h("input", { id: "filter", class: "wide", placeholder: "filter: an IoT Hub query condition, e.g. tags.building = 43", autocomplete: "off" });
  const stats = h("div", { class: "row", id: "fleet-stats" });
  const sel = h("select", { id: "colour-by" }, h("option", { value: "status" }, "status"), h("option", { value: "connection" }, "connection"), h("option", { value: "job" }, "latest job"));
  sel.addEventListener("change", () => { by = sel.value; draw(); });
  input.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(filter, 200); });
  async function filter() {
    const q = input.value.trim();
    if (!q) { mask = null; countEl.textContent = ""; countEl.className = "dim"; draw(); return; }
    try {
      const r = await api("GET", "/fleet/match?mask=1&q=" + encodeURIComponent(q));
      if (input.value.trim() !== q) return;
      countEl.textContent = fmt(r.count) + " devices match"; countEl.className = "okmsg";
      const bin = atob(r.mask); mask = new Uint8Array(bin.length); for (let i = 0; i < bin.length; i++) mask[i] = bin.charCodeAt(i);
    } catch (e) { countEl.textContent = e.message; countEl.className = "err"; mask = null; }
    draw();
  }
  function draw() {
    const c = S.cells; if (!c) return;
    const w = Math.max(200, canvas.clientWidth || v.clientWidth);
    cell = Math.max(1, Math.min(16, Math.floor(Math.sqrt(w * 520 / Math.max(1, c.n)))));
    cols = Math.max(1, Math.floor(w / cell)); const rows = Math.max(1, Math.ceil(c.n / cols));
    canvas.width = cols * cell; canvas.height = rows * cell;
    const g = canvas.getContext("2d"), img = g.createImageData(canvas.width, canvas.height), d = img.data;
    const gap = cell >= 4 ? 1 : 0;
    for (let i = 0; i < c.n; i++) {
      let col = cellColor(c.codes[i], by), a = 255;
      if (mask && !(mask[i >> 3] & (1 << (i & 7)))) a = 40;
      const x0 = (i % cols) * cell, y0 = Math.floor(i / cols) * cell;
      for (let y = y0; y < y0 + cell - gap; y++) { let o = (y * canvas.width + x0) * 4; for (let x = 0; x < cell - gap; x++, o += 4) { d[o] = col[0]; d[o + 1] = col[1]; d[o + 2] = col[2]; d[o + 3] = a; } }
    }
    g.putImageData(img, 0, 0);
    canvas.style.height = (rows * cell * canvas.clientWidth / canvas.width) + "px";
    const k = c.counts;
    stats.replaceChildren(
      statBox("devices", c.n), statBox("connected", k.connected || 0), statBox("disconnected", k.disconnected || 0), statBox("disabled", k.disabled || 0),
      statBox("job running", k["job:running"] || 0), statBox("job failed", k["job:failed"] || 0));
  }
  canvas.addEventListener("click", async (e) => {
    const r = canvas.getBoundingClientRect(), sx = canvas.width / r.width;
    const x = Math.floor((e.clientX - r.left) * sx / cell), y = Math.floor((e.clientY - r.top) * sx / cell), i = y * cols + x;
    if (!S.cells || i >= S.cells.n) return;
    const d = await api("GET", "/fleet/device?i=" + i); location.hash = "#/device/" + encodeURIComponent(d.deviceId);
  });
  v.append(h("h1", {}, "Fleet"), h("div", { class: "panel" }, stats),
    h("div", { class: "panel" }, h("div", { class: "row" }, input, countEl, h("label", {}, "colour by"), sel),
      h("div", { class: "legend" }, h("span", {}, h("i", { class: "sw conn" }), "connected"), h("span", {}, h("i", { class: "sw disc" }), "disconnected"), h("span", {}, h("i", { class: "sw dis" }), "disabled"),
        h("span", {}, h("i", { class: "sw sched" }), "job scheduled"), h("span", {}, h("i", { class: "sw run" }), "job running"), h("span", {}, h("i", { class: "sw ok" }), "job completed"), h("span", {}, h("i", { class: "sw fail" }), "job failed"), h("span", {}, h("i", { class: "sw cancel" }), "job canceled")),
      h("p", { class: "dim" }, "One square per device, in id order; click one to open it.")),
    h("div", { class: "panel" }, canvas));
  api("GET", "/fleet/cells").then((c) => { if (c.version) { S.cells = decodeCells(c); draw(); } });
  const onResize = () => draw(); window.addEventListener("resize", onResize);
  return { cells: draw, close: () => window.removeEventListener("resize", onResize) };
}
function statBox(name, n) { return h("div", { class: "stat" }, h("b", { "data-stat": name }, fmt(n)), h("span", {}, name)); }

// ---- device: send a cloud-to-device message ----
// c2dPanel is the device page's form that queues a cloud-to-device message
// (POST /console/api/devices/{id}/messages); the device gets it once it
// subscribes to its devicebound topic.
function c2dPanel(id) {
  const data = h("textarea", { id: "c2d-data" }, ""), props = h("input", { id: "c2d-props", placeholder: "kind=command, priority=high" });
  const mid = h("input", { id: "c2d-mid", placeholder: "generated" }), ttl = h("input", { id: "c2d-ttl", placeholder: "3600" });
  const out = h("p", { id: "c2d-result" });
  async function send() {
    const properties = {};
    for (const kv of props.value.split(",").map((x) => x.trim()).filter(Boolean)) {
      const i = kv.indexOf("=");
      if (i <= 0) { out.textContent = "properties are name=value pairs separated by commas"; out.className = "err"; return; }
      properties[kv.slice(0, i).trim()] = kv.slice(i + 1).trim();
    }
    const body = { data: data.value, messageId: mid.value.trim(), properties, ttlSeconds: Number(ttl.value) || 0 };
    try { const r = await api("POST", "/devices/" + encodeURIComponent(id) + "/messages", body); out.textContent = "Queued " + r.messageId + " (" + r.queued + " waiting)"; out.className = "okmsg"; }
    catch (e) { out.textContent = e.message; out.className = "err"; }
  }
  return h("div", { class: "panel" }, h("h2", {}, "Send cloud-to-device message"), h("label", {}, "body"), data,
    h("label", {}, "properties"), props, h("div", { class: "row" }, h("div", {}, h("label", {}, "message id"), mid), h("div", {}, h("label", {}, "time to live (s)"), ttl)),
    h("div", { class: "row" }, h("button", { id: "c2d-send", onclick: send, disabled: !S.write }, "Send")), out);
}

// ---- device ----
function deviceView(v, id) {
  const out = h("div", {});
  v.append(h("h1", {}, "Device ", h("code", {}, id)), out);
  let twin = null;
  const tagsTA = h("textarea", { id: "tags" }), desTA = h("textarea", { id: "desired" }), msg = h("p", { id: "twin-msg" });
  const mName = h("input", { id: "method-name", value: "ping" }), mPayload = h("textarea", { id: "method-payload" }, "{}"), mOut = h("pre", { id: "method-result" }, "–");
  const jobsBody = h("tbody", {});
  const info = h("div", { class: "row" }), sections = h("div", { class: "cols" });
  function strip(o) { const c = Object.assign({}, o || {}); delete c.$metadata; delete c.$version; return c; }
  function show(t) {
    twin = t;
    info.replaceChildren(statBox("connection", 0), statBox("twin version", t.version));
    info.firstChild.firstChild.textContent = t.connectionState;
    info.append(h("div", { class: "stat" }, h("b", { id: "etag" }, t.etag), h("span", {}, "etag")),
      h("div", { class: "stat" }, h("b", {}, t.properties.desired.$version), h("span", {}, "desired $version")),
      h("div", { class: "stat" }, h("b", {}, t.properties.reported.$version), h("span", {}, "reported $version")));
    tagsTA.value = JSON.stringify(t.tags || {}, null, 2); desTA.value = JSON.stringify(strip(t.properties.desired), null, 2);
    sections.replaceChildren(h("div", {}, h("h2", {}, "Reported"), h("pre", { id: "reported" }, JSON.stringify(strip(t.properties.reported), null, 2))),
      h("div", {}, h("h2", {}, "Metadata (desired)"), h("pre", {}, JSON.stringify(t.properties.desired.$metadata || {}, null, 2))));
  }
  async function load() { try { show(await api("GET", "/devices/" + encodeURIComponent(id) + "/twin")); } catch (e) { msg.textContent = e.message; msg.className = "err"; } }
  async function save() {
    let patch;
    try { patch = { tags: JSON.parse(tagsTA.value), properties: { desired: JSON.parse(desTA.value) } }; } catch (e) { msg.textContent = "not JSON: " + e.message; msg.className = "err"; return; }
    // A patch sets keys; keys removed in the editor are sent as null.
    for (const k of Object.keys(twin.tags || {})) if (!(k in patch.tags)) patch.tags[k] = null;
    for (const k of Object.keys(strip(twin.properties.desired))) if (!(k in patch.properties.desired)) patch.properties.desired[k] = null;
    try { show(await api("PATCH", "/devices/" + encodeURIComponent(id) + "/twin", patch, { "If-Match": twin.etag })); msg.textContent = "Saved: twin version " + twin.version; msg.className = "okmsg"; }
    catch (e) { msg.textContent = e.message; msg.className = "err"; }
  }
  async function invoke() {
    mOut.textContent = "calling…";
    let payload; try { payload = mPayload.value.trim() ? JSON.parse(mPayload.value) : null; } catch (e) { mOut.textContent = "payload is not JSON: " + e.message; return; }
    try { const r = await api("POST", "/devices/" + encodeURIComponent(id) + "/methods", { methodName: mName.value, payload, responseTimeoutInSeconds: 30 }); mOut.textContent = "status " + r.status + "\n" + JSON.stringify(r.payload, null, 2); }
    catch (e) { mOut.textContent = e.message; }
  }
  const ro = !S.write;
  out.append(h("div", { class: "panel" }, info),
    h("div", { class: "cols" },
      h("div", { class: "panel" }, h("h2", {}, "Tags"), tagsTA, h("h2", {}, "Desired properties"), desTA,
        h("div", { class: "row" }, h("button", { id: "save-twin", onclick: save, disabled: ro }, "Save with etag"), h("button", { class: "secondary", onclick: load }, "Reload")), msg),
      h("div", { class: "panel" }, h("h2", {}, "Direct method"), h("label", {}, "method name"), mName, h("label", {}, "payload (JSON)"), mPayload,
        h("div", { class: "row" }, h("button", { id: "invoke", onclick: invoke, disabled: ro }, "Invoke")), h("label", {}, "answer"), mOut)),
    c2dPanel(id),
    h("div", { class: "panel" }, sections),
    h("div", { class: "panel" }, h("h2", {}, "Recent job results on this device"), h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "job"), h("th", {}, "status"), h("th", {}, "ended"), h("th", {}, "outcome"))), jobsBody)));
  const events = deviceEventsPanel(id);
  out.append(events.el);
  load();
  api("GET", "/devices/" + encodeURIComponent(id) + "/jobs").then((rows) => {
    rows.sort((a, b) => String(b.lastUpdatedDateTimeUtc).localeCompare(String(a.lastUpdatedDateTimeUtc)));
    jobsBody.replaceChildren(...rows.slice(0, 20).map((r) => h("tr", {}, h("td", {}, h("a", { href: "#/job/" + encodeURIComponent(r.jobId) }, r.jobId)), h("td", { class: "status-" + r.status }, r.status), h("td", {}, r.endTimeUtc || "–"),
      h("td", {}, r.error ? r.error.code : (r.outcome && r.outcome.deviceMethodResponse ? "status " + r.outcome.deviceMethodResponse.status : "")))));
    if (!rows.length) jobsBody.append(h("tr", {}, h("td", { colspan: 4, class: "dim" }, "no jobs have reached this device")));
  }).catch(() => {});
  return { close: events.close };
}

// ---- device: recent events ----
// A live panel of one device's events (messages, connects, methods, twin
// patches, firmware phases) from /devices/{id}/events, newest first.
function deviceEventsPanel(id) {
  const max = 50, body = h("tbody", { id: "device-events" }), note = h("p", { class: "dim" });
  const el = h("div", { class: "panel" }, h("h2", {}, "Recent events"), note,
    h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "time"), h("th", {}, "event"), h("th", {}, "details"))), body));
  if (!S.write) { note.textContent = "Device events need a policy with ServiceConnect."; return { el, close() {} }; }
  note.textContent = "Live; the last " + max + " events.";
  function detail(m) {
    const parts = [];
    if (m.method) parts.push(m.method);
    if (m.status !== undefined) parts.push("status " + m.status);
    if (m.version) parts.push("$version " + m.version);
    if (m.payload !== undefined) parts.push(JSON.stringify(m.payload) + (m.truncated ? " (" + m.size + " bytes, cut)" : ""));
    const sys = m.systemProperties || {};
    for (const k of ["content-type", "content-encoding", "message-id", "correlation-id"]) if (sys[k]) parts.push(k + "=" + sys[k]);
    for (const [k, v] of Object.entries(m.applicationProperties || {})) parts.push(k + "=" + v);
    return parts.join("  ");
  }
  const es = new EventSource("/console/api/devices/" + encodeURIComponent(id) + "/events");
  es.addEventListener("events", (e) => {
    const rows = JSON.parse(e.data).map((m) => h("tr", { class: "ev-" + m.type }, h("td", {}, new Date(m.time).toLocaleTimeString()),
      h("td", {}, m.type + (m.moduleId ? " (" + m.moduleId + ")" : "")), h("td", {}, h("code", {}, detail(m)))));
    body.prepend(...rows.reverse());
    while (body.children.length > max) body.lastChild.remove();
  });
  return { el, close() { es.close(); } };
}

// ---- jobs ----
function jobsView(v) {
  const body = h("tbody", { id: "jobs-body" });
  const f = {
    type: h("select", { id: "job-type" }, h("option", { value: "scheduleDeviceMethod" }, "direct method"), h("option", { value: "scheduleUpdateTwin" }, "twin update")),
    cond: h("input", { id: "job-condition", class: "wide", value: "*", autocomplete: "off" }),
    count: h("span", { id: "job-count", class: "dim" }),
    method: h("input", { id: "job-method", value: "ping" }),
    payload: h("textarea", { id: "job-payload" }, "{}"),
    twin: h("textarea", { id: "job-twin" }, '{\n  "properties": {"desired": {"telemetryInterval": 10}}\n}'),
    start: h("input", { id: "job-start", type: "datetime-local" }),
    maxExec: h("input", { id: "job-maxexec", type: "number", value: "3600", min: "1" }),
    timeout: h("input", { id: "job-timeout", type: "number", value: "30", min: "5", max: "300" }),
    msg: h("p", { id: "job-msg" }),
  };
  const methodPart = h("div", {}, h("label", {}, "method name"), f.method, h("label", {}, "payload (JSON)"), f.payload, h("label", {}, "response timeout (s)"), f.timeout);
  const twinPart = h("div", {}, h("label", {}, "twin patch (tags, properties.desired)"), f.twin);
  const sync = () => { methodPart.hidden = f.type.value !== "scheduleDeviceMethod"; twinPart.hidden = !methodPart.hidden; };
  f.type.addEventListener("change", sync); sync();
  let timer = null;
  const count = async () => {
    const q = f.cond.value.trim() || "*";
    try { const r = await api("GET", "/fleet/match?q=" + encodeURIComponent(q)); if ((f.cond.value.trim() || "*") === q) { f.count.textContent = fmt(r.count) + " devices"; f.count.className = "okmsg"; } }
    catch (e) { f.count.textContent = e.message; f.count.className = "err"; }
  };
  f.cond.addEventListener("input", () => { clearTimeout(timer); timer = setTimeout(count, 200); }); count();
  async function create(e) {
    e.preventDefault();
    const id = "console-" + new Date().toISOString().replace(/[-:.TZ]/g, "").slice(0, 17);
    const req = { type: f.type.value, queryCondition: f.cond.value.trim() || "*", maxExecutionTimeInSeconds: Number(f.maxExec.value) || 3600 };
    if (f.start.value) req.startTime = new Date(f.start.value).toISOString();
    try {
      if (req.type === "scheduleDeviceMethod") { req.methodName = f.method.value; req.payload = f.payload.value.trim() ? JSON.parse(f.payload.value) : null; req.responseTimeoutInSeconds = Number(f.timeout.value) || 30; }
      else req.updateTwin = JSON.parse(f.twin.value);
    } catch (err) { f.msg.textContent = "not JSON: " + err.message; f.msg.className = "err"; return; }
    try { const j = await api("PUT", "/jobs/" + id, req); f.msg.replaceChildren("Created ", h("a", { href: "#/job/" + j.jobId }, j.jobId)); f.msg.className = "okmsg"; }
    catch (err) { f.msg.textContent = err.message; f.msg.className = "err"; }
  }
  v.append(h("h1", {}, "Jobs"),
    h("div", { class: "panel" }, h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "job"), h("th", { class: "hide" }, "type"), h("th", {}, "status"), h("th", {}, "progress"), h("th", { class: "hide" }, "devices"), h("th", {}, ""))), body)),
    h("form", { class: "panel", id: "job-form", onsubmit: create }, h("h2", {}, "New job"),
      h("label", {}, "type"), f.type, h("label", {}, "devices: a query condition"), h("div", { class: "row" }, f.cond, f.count),
      methodPart, twinPart, h("div", { class: "row" }, h("div", {}, h("label", {}, "start time (empty: now)"), f.start), h("div", {}, h("label", {}, "max execution time (s)"), f.maxExec)),
      h("p", {}, h("button", { id: "create-job", type: "submit", disabled: !S.write }, "Create job")), f.msg));
  // Rows are kept per job and updated in place, so a button is not
  // replaced under the pointer by the next update.
  const rowsById = new Map();
  function row(j) {
    let r = rowsById.get(j.jobId);
    if (!r) {
      r = { tr: h("tr", { "data-job": j.jobId }), status: h("td", {}), prog: h("td", {}), n: h("td", { class: "hide" }), act: h("td", {}) };
      r.tr.append(h("td", {}, h("a", { href: "#/job/" + encodeURIComponent(j.jobId) }, j.jobId)), h("td", { class: "hide" }, j.type === "scheduleDeviceMethod" ? "method" : "twin"), r.status, r.prog, r.n, r.act);
      rowsById.set(j.jobId, r);
    }
    if (r.status.textContent !== j.status) { r.status.textContent = j.status; r.status.className = "status-" + j.status; }
    r.prog.replaceChildren(progress(j.deviceJobStatistics)); r.n.textContent = fmt(j.deviceJobStatistics.deviceCount);
    const active = j.status === "running" || j.status === "scheduled" || j.status === "queued";
    if (active && !r.act.firstChild) r.act.append(h("button", { class: "danger", "data-cancel": j.jobId, disabled: !S.write, onclick: () => cancelJob(j.jobId) }, "Cancel"));
    if (!active && r.act.firstChild) r.act.replaceChildren();
    return r.tr;
  }
  function live(m) {
    const trs = m.jobs.map(row);
    if (trs.length !== body.children.length || trs.some((tr, i) => body.children[i] !== tr)) body.replaceChildren(...trs);
    if (!m.jobs.length) body.replaceChildren(h("tr", {}, h("td", { colspan: 6, class: "dim" }, "no jobs yet")));
  }
  if (S.live) live(S.live);
  return { live };
}
async function cancelJob(id) { try { await api("POST", "/jobs/" + encodeURIComponent(id) + "/cancel"); } catch (e) { alert(e.message); } }

function jobView(v, id) {
  const head = h("div", { class: "panel" }), chart = h("canvas", { class: "chart", id: "completion" }), hist = h("canvas", { class: "chart", id: "latency" });
  const fails = h("tbody", {}), rows = h("tbody", { id: "job-rows" }), more = h("button", { class: "secondary" }, "More");
  let cont = "", lastAnalysis = 0, terminal = false;
  const cancelBtn = h("button", { class: "danger", id: "cancel-job", disabled: !S.write, onclick: () => cancelJob(id) }, "Cancel");
  cancelBtn.hidden = true;
  v.append(h("h1", {}, "Job ", h("code", {}, id), " ", cancelBtn), head,
    h("div", { class: "cols" }, h("div", { class: "panel" }, h("h2", {}, "Completion over time"), chart), h("div", { class: "panel" }, h("h2", {}, "Latency of completed devices (ms)"), hist)),
    h("div", { class: "panel" }, h("h2", {}, "Failures by cause"), h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "cause"), h("th", {}, "devices"), h("th", {}, "examples"))), fails)),
    h("div", { class: "panel" }, h("h2", {}, "Devices (devices.jobs)"), h("table", {}, h("thead", {}, h("tr", {}, h("th", {}, "device"), h("th", {}, "status"), h("th", { class: "hide" }, "start"), h("th", { class: "hide" }, "end"), h("th", {}, "outcome"))), rows), more));
  function show(d) {
    const j = d.job, st = j.deviceJobStatistics;
    terminal = ["completed", "failed", "cancelled"].includes(j.status);
    cancelBtn.hidden = terminal;
    head.replaceChildren(h("div", { class: "row" }, h("div", { class: "stat" }, h("b", { id: "job-status", class: "status-" + j.status }, j.status), h("span", {}, "status")),
      statBox("devices", st.deviceCount), statBox("succeeded", st.succeededCount), statBox("failed", st.failedCount), statBox("running", st.runningCount), statBox("pending", st.pendingCount)),
      progress(st), h("p", { class: "dim" }, (j.type === "scheduleDeviceMethod" ? "method " + j.cloudToDeviceMethod.methodName : "twin update") + " · condition " + j.queryCondition + " · started " + j.startTime + (j.failureReason ? " · " + j.failureReason : "")));
    const t0 = Date.parse(j.startTime), tEnd = j.endTime ? Date.parse(j.endTime) : null;
    const ser = [{ t: t0, succeeded: 0, failed: 0 }].concat(d.series.filter((p) => p.t > t0));
    if (tEnd && ser[ser.length - 1].t < tEnd) ser.push({ t: tEnd, succeeded: st.succeededCount, failed: st.failedCount });
    lineChart(chart, [{ name: "succeeded", color: "#2ecc71", points: ser.map((p) => [p.t, p.succeeded]) }, { name: "failed", color: "#ff5c5c", points: ser.map((p) => [p.t, p.failed]) }], { max: st.deviceCount });
    if (Date.now() - lastAnalysis > 2000) { lastAnalysis = Date.now(); analysis(); }
  }
  async function analysis() {
    const a = await api("GET", "/jobs/" + encodeURIComponent(id) + "/analysis");
    barChart(hist, a.latencyEdgesMs.map((e) => "≤" + e).concat([">" + a.latencyEdgesMs[a.latencyEdgesMs.length - 1]]), a.latencyCounts, "#4aa3ff");
    fails.replaceChildren(...a.failures.map((f) => h("tr", {}, h("td", {}, f.code), h("td", {}, fmt(f.count)), h("td", {}, ...f.examples.map((d) => [h("a", { href: "#/device/" + encodeURIComponent(d) }, d), " "])))));
    if (!a.failures.length) fails.append(h("tr", {}, h("td", { colspan: 3, class: "dim" }, "no failures")));
  }
  async function page(first) {
    if (first) { cont = ""; rows.replaceChildren(); }
    const p = await api("GET", "/jobs/" + encodeURIComponent(id) + "/devices" + (cont ? "?continuation=" + encodeURIComponent(cont) : ""));
    cont = p.continuation || ""; more.hidden = !cont;
    rows.append(...p.items.map((r) => h("tr", {}, h("td", {}, h("a", { href: "#/device/" + encodeURIComponent(r.deviceId) }, r.deviceId)), h("td", { class: "status-" + r.status }, r.status), h("td", { class: "hide" }, r.startTimeUtc || "–"), h("td", { class: "hide" }, r.endTimeUtc || "–"),
      h("td", {}, r.error ? r.error.code + ": " + r.error.description : (r.outcome && r.outcome.deviceMethodResponse ? "status " + r.outcome.deviceMethodResponse.status + " " + JSON.stringify(r.outcome.deviceMethodResponse.payload) : "")))));
  }
  more.addEventListener("click", () => page(false));
  api("GET", "/jobs/" + encodeURIComponent(id)).then(show).catch((e) => head.replaceChildren(h("p", { class: "err" }, e.message)));
  page(true);
  return { job: show };
}

// ---- hub ----
function hubView(v) {
  const stats = h("div", { class: "row" }), c1 = h("canvas", { class: "chart" }), c2 = h("canvas", { class: "chart" }), c3 = h("canvas", { class: "chart" });
  v.append(h("h1", {}, "The hub"), h("div", { class: "panel" }, stats),
    h("div", { class: "cols" }, h("div", { class: "panel" }, h("h2", {}, "Connected devices"), c1), h("div", { class: "panel" }, h("h2", {}, "Messages/s"), c2), h("div", { class: "panel" }, h("h2", {}, "Method calls/s and job device-ops/s"), c3)),
    h("p", { class: "dim" }, "The same counters as /metrics, sampled a few times a second."));
  function draw() {
    const s = S.hub, m = S.live;
    if (m) stats.replaceChildren(statBox("devices", m.totals.devices), statBox("connected", m.totals.connected), statBox("messages/s", m.hub.messagesPerSec), statBox("method calls/s", m.hub.methodsPerSec), statBox("job ops/s", m.hub.jobOpsPerSec));
    lineChart(c1, [{ name: "connected", color: "#2ecc71", points: s.map((p) => [p.t, p.connected]) }]);
    lineChart(c2, [{ name: "messages/s", color: "#4aa3ff", points: s.map((p) => [p.t, p.messagesPerSec]) }]);
    lineChart(c3, [{ name: "method calls/s", color: "#a371f7", points: s.map((p) => [p.t, p.methodsPerSec]) }, { name: "job ops/s", color: "#f0a020", points: s.map((p) => [p.t, p.jobOpsPerSec]) }]);
  }
  api("GET", "/hub/series").then((s) => { S.hub = s; draw(); });
  return { live: draw };
}

// ---- routing ----
function route() {
  const v = $("view"), parts = (location.hash || "#/fleet").slice(2).split("/");
  if (S.view && S.view.close) S.view.close();
  v.replaceChildren();
  if (!S.write) v.append(h("p", { class: "ro", id: "read-only" }, "Read-only: this policy cannot change twins, call methods, run jobs or drive rollouts."));
  for (const n of ["fleet", "jobs", "rollouts", "hub", "scenario"]) $("nav-" + n).className = (parts[0] === n || parts[0] + "s" === n) ? "on" : "";
  const id = decodeURIComponent(parts.slice(1).join("/"));
  switch (parts[0]) {
    case "device": S.view = deviceView(v, id); openEvents(""); break;
    case "jobs": S.view = jobsView(v); openEvents(""); break;
    case "job": S.view = jobView(v, id); openEvents(id); break;
    case "hub": S.view = hubView(v); openEvents(""); break;
    case "rollouts": S.view = rolloutsView(v); openEvents(""); break; // rollouts.js
    case "rollout": S.view = rolloutView(v, id); openEvents(""); break;
    case "scenario": S.view = scenarioView(v); openEvents("", true); break;
    default: S.view = fleetView(v); openEvents("");
  }
}

async function start() {
  const s = await api("GET", "/session");
  S.csrf = s.csrf; S.write = s.write;
  if (s.scenario) { $("nav-scenario").hidden = false; $("nav-scenario").textContent = "Scenario " + s.scenario; }
  $("who").textContent = "signed in: " + s.policy + (s.write ? "" : " (read-only)");
  $("logout").addEventListener("click", async () => { await api("POST", "/logout"); location.href = "/console/login"; });
  window.addEventListener("hashchange", route);
  route();
}
start();
