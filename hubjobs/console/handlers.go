package console

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs/jobs"
	"github.com/fleetsim/fleetsim/hubjobs/query"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// maxBody caps the console's request bodies.
const maxBody = 256 << 10

// apiFunc is an API handler: it writes a success, or returns an error for
// writeError.
type apiFunc func(w http.ResponseWriter, r *http.Request, s *session) error

// httpError is an answer with a status and a message for the page.
type httpError struct {
	status int
	msg    string
}

func (e *httpError) Error() string { return e.msg }

func errorf(status int, format string, args ...any) error {
	return &httpError{status: status, msg: fmt.Sprintf(format, args...)}
}

func (c *Console) routes() {
	c.mux.HandleFunc("GET /{$}", c.index)
	c.mux.HandleFunc("GET /console/{$}", c.index)
	c.mux.HandleFunc("GET /console/login", c.loginPage)
	c.mux.HandleFunc("POST /console/login", c.loginForm)
	c.mux.Handle("GET /console/assets/", http.StripPrefix("/console/assets/", http.FileServerFS(c.assets)))

	c.api("GET /console/api/session", false, c.apiSession)
	c.api("POST /console/api/logout", false, c.apiLogout)
	c.api("GET /console/api/events", false, c.apiEvents)
	c.api("GET /console/api/fleet/cells", false, c.apiCells)
	c.api("GET /console/api/fleet/match", false, c.apiMatch)
	c.api("GET /console/api/fleet/device", false, c.apiCellDevice)
	c.api("GET /console/api/hub/series", false, c.apiHubSeries)
	c.api("GET /console/api/scenario", false, c.apiScenario)
	c.api("GET /console/api/devices/{id}/twin", false, c.apiTwin)
	c.api("PATCH /console/api/devices/{id}/twin", true, c.apiPatchTwin)
	c.api("POST /console/api/devices/{id}/methods", true, c.apiInvoke)
	c.api("POST /console/api/devices/{id}/messages", true, c.apiSendC2D)
	c.api("GET /console/api/devices/{id}/jobs", false, c.apiDeviceJobs)
	c.api("GET /console/api/devices/{id}/events", true, c.apiDeviceEvents) // device_events.go
	c.api("GET /console/api/jobs/{id}", false, c.apiJob)
	c.api("PUT /console/api/jobs/{id}", true, c.apiCreateJob)
	c.api("POST /console/api/jobs/{id}/cancel", true, c.apiCancelJob)
	c.api("GET /console/api/jobs/{id}/analysis", false, c.apiJobAnalysis)
	c.api("GET /console/api/jobs/{id}/devices", false, c.apiJobDevices)
	c.rolloutRoutes() // rollouts.go
	c.mux.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no such console path"})
	})
}

// ServeHTTP serves the console with its security headers.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	c.mux.ServeHTTP(w, r)
}

// api registers an API route behind the session check; a state-changing
// method also needs a same-origin request and the session's CSRF token,
// and write needs a policy that may change things.
func (c *Console) api(pattern string, write bool, h apiFunc) {
	c.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		s := c.auth.session(r, time.Now())
		if s == nil {
			writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "sign in first", "login": "/console/login"})
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if !sameOrigin(r) {
				writeJSON(w, http.StatusForbidden, map[string]string{"error": "cross-origin request refused"})
				return
			}
			if !csrfOK(r, s) {
				writeJSON(w, http.StatusForbidden, map[string]string{"error": "missing or wrong CSRF token"})
				return
			}
		}
		if write && !s.write {
			writeJSON(w, http.StatusForbidden, map[string]string{"error": fmt.Sprintf("policy %s is read-only here: changes need ServiceConnect", s.policy)})
			return
		}
		if err := h(w, r, s); err != nil {
			c.writeError(w, r, err)
		}
	})
}

func (c *Console) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	var ie *iothub.Error
	var me *http.MaxBytesError
	switch {
	case errors.As(err, &he):
		writeJSON(w, he.status, map[string]string{"error": he.msg})
	case errors.As(err, &ie):
		writeJSON(w, ie.HTTPStatus(), map[string]string{"error": ie.Message, "code": ie.Code.Name})
	case errors.Is(err, query.ErrInvalidQuery):
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
	case errors.As(err, &me):
		writeJSON(w, http.StatusRequestEntityTooLarge, map[string]string{"error": "request body too large"})
	default:
		c.log.Error().Err(err).Str("method", r.Method).Str("path", r.URL.Path).Msg("console request failed")
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "internal error; see the hub's log"})
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// index serves the single-page app to a signed-in browser; others go to
// the login page.
func (c *Console) index(w http.ResponseWriter, r *http.Request) {
	if c.auth.session(r, time.Now()) == nil {
		http.Redirect(w, r, "/console/login", http.StatusSeeOther)
		return
	}
	c.serveAsset(w, "index.html")
}

func (c *Console) serveAsset(w http.ResponseWriter, name string) {
	b, err := fs.ReadFile(c.assets, name)
	if err != nil {
		http.Error(w, "missing asset", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(b)
}

var loginTmpl = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>fleetsim console: sign in</title><link rel="stylesheet" href="/console/assets/app.css"></head>
<body class="login"><main class="card">
<h1>fleetsim console</h1>
{{if .Msg}}<p class="err" id="login-error">{{.Msg}}</p>{{end}}
<p>Open the one-time URL that <code>fleetsim serve</code> printed, or paste a service connection string of this hub
(<code>fleetsim serve</code> prints the owner's; it is also in <code>connection.json</code>).</p>
<form method="post" action="/console/login">
<label for="cs">Service connection string</label>
<input id="cs" name="connectionString" type="password" autocomplete="off" required placeholder="HostName=...;SharedAccessKeyName=...;SharedAccessKey=...">
<button type="submit">Sign in</button>
</form></main></body></html>`))

// signedIn is the page a one-time login answers with: a same-site
// navigation to the console, so that the SameSite=Strict cookie goes with it.
const signedIn = `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="0;url=/">
<title>signed in</title></head><body><p>Signed in. <a href="/">Open the console</a>.</p></body></html>`

func (c *Console) loginPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	if tok := r.URL.Query().Get("token"); tok != "" {
		if !c.auth.useToken(tok, time.Now()) {
			c.log.Info().Msg("console: a used, expired or unknown login token was refused")
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(http.StatusUnauthorized)
			_ = loginTmpl.Execute(w, map[string]string{"Msg": "That login link was already used or is not valid. Sign in with a connection string."})
			return
		}
		c.auth.start(w, "login-url", true, time.Now())
		c.log.Info().Msg("console: signed in with the one-time login URL")
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, signedIn)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = loginTmpl.Execute(w, map[string]string{})
}

func (c *Console) loginForm(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if !sameOrigin(r) {
		w.WriteHeader(http.StatusForbidden)
		_ = loginTmpl.Execute(w, map[string]string{"Msg": "Cross-origin sign-in refused."})
		return
	}
	p, ok := c.auth.checkConnectionString(r.PostFormValue("connectionString"))
	if !ok {
		c.log.Info().Msg("console: a sign-in with a wrong connection string was refused")
		w.WriteHeader(http.StatusUnauthorized)
		_ = loginTmpl.Execute(w, map[string]string{"Msg": "That connection string does not sign in to this hub (wrong host, policy or key, or a policy without RegistryRead or ServiceConnect)."})
		return
	}
	c.auth.start(w, p.Name, p.Write, time.Now())
	c.log.Info().Str("policy", p.Name).Bool("write", p.Write).Msg("console: signed in with a connection string")
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (c *Console) apiSession(w http.ResponseWriter, r *http.Request, s *session) error {
	out := map[string]any{"policy": s.policy, "write": s.write, "csrf": s.csrf}
	if sc := c.live.currentScenario(); sc != nil {
		out["scenario"] = sc.ScenarioState().Name
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (c *Console) apiLogout(w http.ResponseWriter, r *http.Request, s *session) error {
	c.auth.end(w, r)
	writeJSON(w, http.StatusOK, map[string]string{})
	return nil
}

// apiEvents streams the live aggregates as server-sent events: "live"
// (hub rates, counts, the jobs list) on every tick, "cells" when the grid
// changed, and "job" (one job's statistics and series) when ?job= names one.
func (c *Console) apiEvents(w http.ResponseWriter, r *http.Request, s *session) error {
	c.runMu.Lock()
	select {
	case <-c.stopped:
		c.runMu.Unlock()
		return errorf(http.StatusServiceUnavailable, "the console is shutting down")
	default:
	}
	c.streams.Add(1)
	c.runMu.Unlock()
	defer c.streams.Done()
	c.live.watchers.Add(1)
	c.live.wantFleet.Store(true)
	defer c.live.watchers.Add(-1)

	rc := http.NewResponseController(w)
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	_, _ = io.WriteString(w, "retry: 2000\n\n")
	jobID := r.URL.Query().Get("job")
	watchScenario := r.URL.Query().Get("scenario") == "1"
	if watchScenario {
		c.live.scenarioWatchers.Add(1)
		defer c.live.scenarioWatchers.Add(-1)
	}
	var lastSeq, lastCells, lastScenario int64 = -1, -1, -1
	for {
		msg, seq, fleet, next := c.live.snapshot()
		if seq != lastSeq && msg != nil {
			lastSeq = seq
			if err := sse(w, "live", msg); err != nil {
				return nil
			}
			if fleet.version != lastCells && fleet.version > 0 {
				lastCells = fleet.version
				b, _ := json.Marshal(cellsBody(fleet))
				if err := sse(w, "cells", b); err != nil {
					return nil
				}
			}
			if b, v := c.live.scenarioSnapshot(); watchScenario && b != nil && v != lastScenario {
				lastScenario = v
				if err := sse(w, "scenario", b); err != nil {
					return nil
				}
			}
			if jobID != "" {
				if b, err := c.jobBody(jobID); err == nil {
					if err := sse(w, "job", b); err != nil {
						return nil
					}
				}
			}
			if rc.Flush() != nil {
				return nil
			}
		}
		select {
		case <-next:
		case <-r.Context().Done():
			return nil
		case <-c.stopped:
			return nil
		}
	}
}

func sse(w io.Writer, event string, data []byte) error {
	_, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", event, data)
	return err
}

func cellsBody(f *fleetSnapshot) map[string]any {
	return map[string]any{"version": f.version, "devices": len(f.ids), "enc": f.enc, "cells": f.cells, "counts": f.counts}
}

// apiCells answers the grid. A grid older than the event stream rebuilds
// it is built now, so that a page's first load shows the fleet at once.
func (c *Console) apiCells(w http.ResponseWriter, r *http.Request, s *session) error {
	f := c.live.freshFleet(r.Context(), time.Now(), fleetEveryTick*c.cfg.Rate)
	writeJSON(w, http.StatusOK, cellsBody(f))
	return nil
}

// apiMatch counts the devices a query condition selects and, with
// ?mask=1, marks them in a bitset over the grid's current devices.
func (c *Console) apiMatch(w http.ResponseWriter, r *http.Request, s *session) error {
	cond := strings.TrimSpace(r.URL.Query().Get("q"))
	if cond == "" {
		cond = "*"
	}
	q, err := query.ParseCondition(cond)
	if err != nil {
		return err
	}
	ids, err := c.cfg.Devices.SelectDeviceIDs(r.Context(), q)
	if err != nil {
		return err
	}
	out := map[string]any{"count": len(ids)}
	if r.URL.Query().Get("mask") == "1" {
		_, _, f, _ := c.live.snapshot()
		bits := make([]byte, (len(f.ids)+7)/8)
		i := 0
		for _, id := range ids {
			for i < len(f.ids) && f.ids[i] < id {
				i++
			}
			if i < len(f.ids) && f.ids[i] == id {
				bits[i/8] |= 1 << (i % 8)
			}
		}
		out["version"] = f.version
		out["mask"] = base64.StdEncoding.EncodeToString(bits)
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

func (c *Console) apiCellDevice(w http.ResponseWriter, r *http.Request, s *session) error {
	i, err := strconv.Atoi(r.URL.Query().Get("i"))
	_, _, f, _ := c.live.snapshot()
	if err != nil || i < 0 || i >= len(f.ids) {
		return errorf(http.StatusNotFound, "no device at that cell")
	}
	writeJSON(w, http.StatusOK, map[string]string{"deviceId": f.ids[i]})
	return nil
}

func (c *Console) apiHubSeries(w http.ResponseWriter, r *http.Request, s *session) error {
	hub, _ := c.live.series("")
	writeJSON(w, http.StatusOK, hub)
	return nil
}

func rawJSON(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(b)
}

func (c *Console) apiTwin(w http.ResponseWriter, r *http.Request, s *session) error {
	b, err := c.cfg.Devices.TwinJSON(r.PathValue("id"))
	if err != nil {
		return err
	}
	rawJSON(w, b)
	return nil
}

func (c *Console) apiPatchTwin(w http.ResponseWriter, r *http.Request, s *session) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	ifMatch := r.Header.Get("If-Match")
	if ifMatch == "" {
		return errorf(http.StatusPreconditionRequired, "send the twin's etag in If-Match (or * to overwrite)")
	}
	b, err := c.cfg.Devices.PatchTwinJSON(r.Context(), r.PathValue("id"), body, ifMatch)
	if err != nil {
		return err
	}
	c.log.Info().Str("policy", s.policy).Str("deviceId", r.PathValue("id")).Msg("console: twin patched")
	rawJSON(w, b)
	return nil
}

func (c *Console) apiInvoke(w http.ResponseWriter, r *http.Request, s *session) error {
	var req iothub.MethodRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		return errorf(http.StatusBadRequest, "the method call is not JSON: %v", err)
	}
	if req.MethodName == "" {
		return errorf(http.StatusBadRequest, "methodName is required")
	}
	if len(req.Payload) == 0 {
		req.Payload = json.RawMessage("null")
	}
	res, err := c.cfg.Devices.InvokeMethod(r.Context(), r.PathValue("id"), req)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, res)
	return nil
}

// apiSendC2D queues a cloud-to-device message from the device page's form.
func (c *Console) apiSendC2D(w http.ResponseWriter, r *http.Request, s *session) error {
	if c.cfg.C2D == nil {
		return errorf(http.StatusNotFound, "this hub sends no cloud-to-device messages")
	}
	var m C2DMessage
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return errorf(http.StatusBadRequest, "the message is not JSON of the form's fields: %v", err)
	}
	if m.TTLSeconds < 0 {
		return errorf(http.StatusBadRequest, "ttlSeconds is negative")
	}
	id, queued, err := c.cfg.C2D.SendC2D(r.PathValue("id"), m)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, map[string]any{"messageId": id, "queued": queued})
	return nil
}

// quoted writes s as a query string literal, or fails for text the
// console does not put in a query.
func quoted(s string) (string, error) {
	if strings.ContainsAny(s, `'\`) {
		return "", errorf(http.StatusBadRequest, "ids with quotes or backslashes cannot be queried here")
	}
	return "'" + s + "'", nil
}

func (c *Console) runJobsQuery(where string, pageSize int, cont string) (query.Page, error) {
	q, err := query.Parse("SELECT * FROM devices.jobs WHERE " + where)
	if err != nil {
		return query.Page{}, err
	}
	return c.cfg.Jobs.Query(q, pageSize, cont)
}

func (c *Console) apiDeviceJobs(w http.ResponseWriter, r *http.Request, s *session) error {
	id, err := quoted(r.PathValue("id"))
	if err != nil {
		return err
	}
	p, err := c.runJobsQuery("deviceId = "+id, 100, "")
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, p.Items)
	return nil
}

// jobBody is a job with its progress series.
func (c *Console) jobBody(id string) ([]byte, error) {
	j, err := c.cfg.Jobs.Get(id)
	if err != nil {
		return nil, err
	}
	_, ser := c.live.series(id)
	if ser == nil {
		ser = []jobSample{}
	}
	return json.Marshal(map[string]any{"job": j, "series": ser})
}

func (c *Console) apiJob(w http.ResponseWriter, r *http.Request, s *session) error {
	b, err := c.jobBody(r.PathValue("id"))
	if err != nil {
		return err
	}
	rawJSON(w, b)
	return nil
}

// jobForm is what the console's job form sends.
type jobForm struct {
	Type                      jobs.JobType    `json:"type"`
	QueryCondition            string          `json:"queryCondition"`
	MethodName                string          `json:"methodName"`
	Payload                   json.RawMessage `json:"payload"`
	ResponseTimeoutInSeconds  *int            `json:"responseTimeoutInSeconds"`
	UpdateTwin                json.RawMessage `json:"updateTwin"`
	StartTime                 *time.Time      `json:"startTime"`
	MaxExecutionTimeInSeconds *int64          `json:"maxExecutionTimeInSeconds"`
}

func (c *Console) apiCreateJob(w http.ResponseWriter, r *http.Request, s *session) error {
	var f jobForm
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return errorf(http.StatusBadRequest, "the job is not valid JSON: %v", err)
	}
	req := jobs.JobRequest{JobID: r.PathValue("id"), Type: f.Type, QueryCondition: f.QueryCondition, StartTime: f.StartTime, MaxExecutionTimeInSeconds: f.MaxExecutionTimeInSeconds}
	switch f.Type {
	case jobs.TypeDeviceMethod:
		p := f.Payload
		if len(p) == 0 {
			p = json.RawMessage("null")
		}
		req.CloudToDeviceMethod = &iothub.MethodRequest{MethodName: f.MethodName, Payload: p, ResponseTimeoutInSeconds: f.ResponseTimeoutInSeconds}
	case jobs.TypeUpdateTwin:
		req.UpdateTwin = f.UpdateTwin
	default:
		return errorf(http.StatusBadRequest, "type must be %s or %s", jobs.TypeDeviceMethod, jobs.TypeUpdateTwin)
	}
	j, err := c.cfg.Jobs.Create(r.Context(), req)
	if err != nil {
		return err
	}
	c.log.Info().Str("policy", s.policy).Str("jobId", j.JobID).Msg("console: job created")
	writeJSON(w, http.StatusOK, j)
	return nil
}

func (c *Console) apiCancelJob(w http.ResponseWriter, r *http.Request, s *session) error {
	j, err := c.cfg.Jobs.Cancel(r.Context(), r.PathValue("id"))
	if err != nil {
		return err
	}
	c.log.Info().Str("policy", s.policy).Str("jobId", j.JobID).Msg("console: job cancelled")
	writeJSON(w, http.StatusOK, j)
	return nil
}

// latencyEdges are the upper bounds, in milliseconds, of the latency
// histogram's buckets; the last bucket is everything above.
var latencyEdges = []float64{1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 30000, 60000}

// failureCause is one cause of failed device jobs.
type failureCause struct {
	Code     string   `json:"code"`
	Count    int      `json:"count"`
	Examples []string `json:"examples"`
}

// apiJobAnalysis reads a job's devices.jobs rows: the latency histogram of
// finished device jobs and the failures by cause with example devices.
func (c *Console) apiJobAnalysis(w http.ResponseWriter, r *http.Request, s *session) error {
	id := r.PathValue("id")
	if _, err := c.cfg.Jobs.Get(id); err != nil {
		return err
	}
	counts := make([]int, len(latencyEdges)+1)
	causes := map[string]*failureCause{}
	c.cfg.Jobs.Rows(id, func(doc map[string]any) bool {
		st, _ := doc["status"].(string)
		if st == "failed" || st == "canceled" {
			code := st
			if e, ok := doc["error"].(map[string]any); ok {
				if s, ok := e["code"].(string); ok && s != "" {
					code = s
				}
			}
			fc := causes[code]
			if fc == nil {
				fc = &failureCause{Code: code}
				causes[code] = fc
			}
			fc.Count++
			if len(fc.Examples) < 5 {
				fc.Examples = append(fc.Examples, str(doc["deviceId"]))
			}
		}
		start, err1 := time.Parse(time.RFC3339Nano, str(doc["startTimeUtc"]))
		end, err2 := time.Parse(time.RFC3339Nano, str(doc["endTimeUtc"]))
		if err1 == nil && err2 == nil && st == "completed" {
			ms := float64(end.Sub(start)) / float64(time.Millisecond)
			i, _ := slices.BinarySearch(latencyEdges, ms)
			counts[i]++
		}
		return r.Context().Err() == nil
	})
	list := []*failureCause{}
	for _, fc := range causes {
		list = append(list, fc)
	}
	slices.SortFunc(list, func(a, b *failureCause) int { return b.Count - a.Count })
	writeJSON(w, http.StatusOK, map[string]any{"latencyEdgesMs": latencyEdges, "latencyCounts": counts, "failures": list})
	return nil
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

func (c *Console) apiJobDevices(w http.ResponseWriter, r *http.Request, s *session) error {
	id, err := quoted(r.PathValue("id"))
	if err != nil {
		return err
	}
	p, err := c.runJobsQuery("jobId = "+id, 50, r.URL.Query().Get("continuation"))
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": p.Items, "continuation": p.Continuation})
	return nil
}
