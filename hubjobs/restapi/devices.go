package restapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"

	"github.com/fleetsim/fleetsim/hubjobs/query"
	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// putDevice creates a device (no If-Match) or updates it (If-Match "*" or an
// etag), docs/iothub.md §4.3. The body's deviceId may be left out; if given it
// must be the path's.
func (s *Server) putDevice(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	body, err := readBody(r, true)
	if err != nil {
		return err
	}
	var d registry.Device
	// Tolerant: SDKs send whole Device objects with read-only members.
	if err := decodeJSON(body, &d, false, "device identity"); err != nil {
		return err
	}
	if d.DeviceID == "" {
		d.DeviceID = id
	} else if d.DeviceID != id {
		return badRequest("the body's deviceId %q does not match the device id %q in the path", d.DeviceID, id)
	}
	var out registry.Device
	if ifMatch := r.Header.Get("If-Match"); ifMatch == "" {
		out, err = s.cfg.Devices.CreateDevice(r.Context(), d)
	} else {
		out, err = s.cfg.Devices.UpdateDevice(r.Context(), d, ifMatch)
	}
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, out)
	return nil
}

func (s *Server) getDevice(w http.ResponseWriter, r *http.Request) error {
	d, err := s.cfg.Devices.GetDevice(r.PathValue("id"))
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, d)
	return nil
}

// deleteDevice answers 204 (docs/iothub.md §4.3).
func (s *Server) deleteDevice(w http.ResponseWriter, r *http.Request) error {
	if err := s.cfg.Devices.DeleteDevice(r.Context(), r.PathValue("id"), r.Header.Get("If-Match")); err != nil {
		return err
	}
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// listDevices answers GET /devices[?top=n]: at most 1000 identities.
func (s *Server) listDevices(w http.ResponseWriter, r *http.Request) error {
	top := MaxListDevices
	if raw := r.URL.Query().Get("top"); raw != "" {
		n, err := strconv.Atoi(raw)
		if err != nil || n < 1 {
			return badRequest("top %q is not a positive integer", raw)
		}
		top = min(n, MaxListDevices)
	}
	ds := s.cfg.Devices.ListDevices(top)
	if ds == nil {
		ds = []registry.Device{}
	}
	s.writeJSON(w, r, http.StatusOK, ds)
	return nil
}

// bulkDevices applies a bulk registry request of 1..100 ExportImportDevice
// entries (docs/iothub.md §4.3). The result comes back with 200 whether or not
// every entry succeeded; isSuccessful and errors tell.
func (s *Server) bulkDevices(w http.ResponseWriter, r *http.Request) error {
	body, err := readBody(r, true)
	if err != nil {
		return err
	}
	// The entries' tags and desired properties are twin content: a key or
	// string that is not UTF-8 is refused, not repaired by the decoder.
	if err := iothub.CheckJSONText(body); err != nil {
		return err
	}
	var ops []registry.ExportImportDevice
	if err := decodeJSON(body, &ops, false, "bulk registry request"); err != nil {
		return err
	}
	switch n := len(ops); {
	case ops == nil:
		return badRequest("malformed bulk registry request: expected a JSON array of devices, got null")
	case n == 0:
		return badRequest("the bulk registry request is empty; send 1 to %d devices", MaxBulkDevices)
	case n > MaxBulkDevices:
		return iothub.Errorf(iothub.CodeTooManyDevices, "the bulk registry request has %d devices; at most %d are allowed", n, MaxBulkDevices)
	}
	for i, op := range ops {
		if op.ID == "" {
			return badRequest("bulk registry entry %d has no id", i)
		}
		if op.ImportMode == "" {
			return badRequest("bulk registry entry %d (%s) has no importMode", i, op.ID)
		}
	}
	res, err := s.cfg.Devices.BulkUpdate(r.Context(), ops)
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, res)
	return nil
}

func (s *Server) deviceStatistics(w http.ResponseWriter, r *http.Request) error {
	s.writeJSON(w, r, http.StatusOK, s.cfg.Statistics.Statistics())
	return nil
}

// serviceStatistics answers {"connectedDeviceCount": n} (docs/iothub.md §4.4).
func (s *Server) serviceStatistics(w http.ResponseWriter, r *http.Request) error {
	s.writeJSON(w, r, http.StatusOK, struct {
		ConnectedDeviceCount int `json:"connectedDeviceCount"`
	}{s.cfg.Statistics.ConnectedCount()})
	return nil
}

func (s *Server) getTwin(w http.ResponseWriter, r *http.Request) error {
	t, err := s.cfg.Twins.GetTwin(r.PathValue("id"))
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, t)
	return nil
}

// patchTwin merges a twin patch; If-Match may be quoted or not, "*" or
// absent for any version (docs/iothub.md §3.6).
func (s *Server) patchTwin(w http.ResponseWriter, r *http.Request) error {
	return s.writeTwin(w, r, s.cfg.Twins.PatchTwinWith)
}

// replaceTwin replaces tags and desired properties.
func (s *Server) replaceTwin(w http.ResponseWriter, r *http.Request) error {
	return s.writeTwin(w, r, s.cfg.Twins.ReplaceTwinWith)
}

// writeTwin parses and checks a twin patch or replacement against IoT
// Hub's twin rules, once, before the registry applies it.
func (s *Server) writeTwin(w http.ResponseWriter, r *http.Request, apply func(ctx context.Context, id string, p iothub.TwinPatch, ifMatch string) (registry.Twin, error)) error {
	body, err := readBody(r, true)
	if err != nil {
		return err
	}
	if err := requireObject(body, "twin"); err != nil {
		return err
	}
	p, err := iothub.ParseTwinPatch(body)
	if err != nil {
		return err
	}
	t, err := apply(r.Context(), r.PathValue("id"), p, r.Header.Get("If-Match"))
	if err != nil {
		return err
	}
	s.writeJSON(w, r, http.StatusOK, t)
	return nil
}

// methodBody is CloudToDeviceMethod as SDKs send it (docs/iothub.md §2.2), with
// the old timeoutInSeconds as an alias of responseTimeoutInSeconds.
type methodBody struct {
	MethodName               string          `json:"methodName"`
	Payload                  json.RawMessage `json:"payload"`
	ResponseTimeoutInSeconds *int            `json:"responseTimeoutInSeconds"`
	ConnectTimeoutInSeconds  *int            `json:"connectTimeoutInSeconds"`
	TimeoutInSeconds         *int            `json:"timeoutInSeconds"`
}

// invokeMethod calls a direct method and answers 200 {status, payload}
// whatever status the device chose: a device's 500 must not become an HTTP
// 500, which the Node SDK would retry for 240 s (docs/sdk-notes.md §1.6).
func (s *Server) invokeMethod(w http.ResponseWriter, r *http.Request) error {
	return s.callMethod(w, r, s.cfg.Methods.InvokeMethod)
}

// callMethod reads a direct-method request and answers with what invoke
// returns for the path's device id.
func (s *Server) callMethod(w http.ResponseWriter, r *http.Request, invoke func(ctx context.Context, id string, req iothub.MethodRequest) (iothub.MethodResult, error)) error {
	body, err := readBody(r, true)
	if err != nil {
		return err
	}
	var b methodBody
	if err := decodeJSON(body, &b, true, "direct method request"); err != nil {
		return err
	}
	req := iothub.MethodRequest{
		MethodName:               b.MethodName,
		Payload:                  b.Payload,
		ResponseTimeoutInSeconds: b.ResponseTimeoutInSeconds,
		ConnectTimeoutInSeconds:  b.ConnectTimeoutInSeconds,
	}
	if req.ResponseTimeoutInSeconds == nil {
		req.ResponseTimeoutInSeconds = b.TimeoutInSeconds
	}
	if err := req.Validate(); err != nil {
		return err
	}
	res, err := invoke(r.Context(), r.PathValue("id"), req)
	if err != nil {
		return err
	}
	if len(res.Payload) == 0 {
		res.Payload = json.RawMessage("null")
	}
	s.writeJSON(w, r, http.StatusOK, res)
	return nil
}

// queryBody is the body of POST /devices/query.
type queryBody struct {
	Query *string `json:"query"`
}

// query runs a query (docs/iothub.md §4.5): FROM devices.jobs goes to the jobs
// engine, everything else to the registry. The answer is a bare array with
// x-ms-item-type and, unless this is the last page, x-ms-continuation.
func (s *Server) query(w http.ResponseWriter, r *http.Request) error {
	size, cont, err := pageParams(r)
	if err != nil {
		return err
	}
	body, err := readBody(r, true)
	if err != nil {
		return err
	}
	var b queryBody
	if err := decodeJSON(body, &b, true, "query request"); err != nil {
		return err
	}
	if b.Query == nil || strings.TrimSpace(*b.Query) == "" {
		return badRequest("the query request has no query; send {\"query\": \"SELECT * FROM devices\"}")
	}
	if n := len(*b.Query); n > iothub.MaxQueryLength {
		return badRequest("the query is %d characters long; the limit is %d", n, iothub.MaxQueryLength)
	}
	q, err := query.Parse(*b.Query)
	if err != nil {
		return err
	}
	var page query.Page
	if q.From() == query.Jobs {
		if s.cfg.Jobs == nil {
			return errNoJobs
		}
		page, err = s.cfg.Jobs.Query(q, size, cont)
	} else {
		page, err = s.cfg.Queries.Query(q, size, cont)
	}
	if err != nil {
		return err
	}
	items := page.Items
	if items == nil {
		items = []any{}
	}
	itemType := page.ItemType
	if itemType == "" {
		itemType = q.ItemType()
	}
	s.writePage(w, r, items, itemType, page.Continuation)
	return nil
}
