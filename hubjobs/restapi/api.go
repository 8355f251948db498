package restapi

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs/query"
	"github.com/fleetsim/fleetsim/hubjobs/registry"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// The device endpoints call the registry through one small interface per
// handler group, each declared here and given in Config. Every error they
// return is an *iothub.Error (DeviceNotFound, DeviceAlreadyExists,
// PreconditionFailed, ArgumentInvalid, DeviceNotOnline, GatewayTimeout, ...),
// which the API writes as is; anything else becomes a 500.

// Devices is what the identity registry endpoints need (/devices).
type Devices interface {
	CreateDevice(ctx context.Context, d registry.Device) (registry.Device, error)
	UpdateDevice(ctx context.Context, d registry.Device, ifMatch string) (registry.Device, error)
	GetDevice(id string) (registry.Device, error)
	DeleteDevice(ctx context.Context, id, ifMatch string) error
	ListDevices(max int) []registry.Device
	BulkUpdate(ctx context.Context, ops []registry.ExportImportDevice) (registry.BulkResult, error)
}

// Statistics is what the statistics endpoints need (/statistics).
type Statistics interface {
	Statistics() registry.Statistics
	ConnectedCount() int
}

// Twins is what the device twin endpoints need (/twins/{id}).
type Twins interface {
	GetTwin(id string) (registry.Twin, error)
	// PatchTwinWith and ReplaceTwinWith apply a patch the API parsed and
	// checked against the twin rules (iothub.ParseTwinPatch).
	PatchTwinWith(ctx context.Context, id string, p iothub.TwinPatch, ifMatch string) (registry.Twin, error)
	ReplaceTwinWith(ctx context.Context, id string, p iothub.TwinPatch, ifMatch string) (registry.Twin, error)
}

// Methods is what the direct-method endpoint needs (/twins/{id}/methods).
type Methods interface {
	// InvokeMethod returns the device's answer whatever its status; errors
	// are for a call that got no answer.
	InvokeMethod(ctx context.Context, deviceID string, req iothub.MethodRequest) (iothub.MethodResult, error)
}

// DeviceQueries is what the query endpoint needs for the devices collection
// (/devices/query).
type DeviceQueries interface {
	// Query runs a FROM devices query; query errors match query.ErrInvalidQuery.
	Query(q *query.Query, pageSize int, continuation string) (query.Page, error)
}

// Limits of the paging headers (docs/iothub.md §4.5).
const (
	DefaultPageSize = query.DefaultPageSize
	MaxPageSize     = query.MaxPageSize
	// MaxBulkDevices is the most devices one bulk registry request may carry.
	MaxBulkDevices = 100
	// MaxListDevices is the most identities GET /devices returns.
	MaxListDevices = 1000
)

// handlerFunc is a route's handler: it writes a success itself and returns
// any error for writeError.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

// routes registers the service API. Patterns are matched on the escaped
// path, so an id with %2F stays one segment; wildcards come back decoded.
func (s *Server) routes() {
	// docs/iothub.md §4.3: device registry.
	s.route("PUT /devices/{id}", RegistryWrite, s.putDevice)
	s.route("GET /devices/{id}", RegistryRead, s.getDevice)
	s.route("DELETE /devices/{id}", RegistryWrite, s.deleteDevice)
	s.route("GET /devices", RegistryRead, s.listDevices)
	s.route("POST /devices", RegistryWrite, s.bulkDevices)
	// §4.4: statistics.
	s.route("GET /statistics/devices", RegistryRead, s.deviceStatistics)
	s.route("GET /statistics/service", ServiceConnect, s.serviceStatistics)
	// §3.6: twins; §2.2: direct methods.
	s.route("GET /twins/{id}", ServiceConnect, s.getTwin)
	s.route("PATCH /twins/{id}", ServiceConnect, s.patchTwin)
	s.route("PUT /twins/{id}", ServiceConnect, s.replaceTwin)
	s.route("POST /twins/{id}/methods", ServiceConnect, s.invokeMethod)
	// §4.5: queries.
	s.route("POST /devices/query", ServiceConnect, s.query)
	// §5.1: Jobs v2. The mux prefers the literal /jobs/v2/query over {id}.
	s.route("GET /jobs/v2/query", ServiceConnect, s.listJobs)
	s.route("PUT /jobs/v2/{id}", ServiceConnect, s.createJob)
	s.route("GET /jobs/v2/{id}", ServiceConnect, s.getJob)
	s.route("POST /jobs/v2/{id}/cancel", ServiceConnect, s.cancelJob)
	s.moduleRoutes() // modules.go
	s.route("GET "+SettingsPath, ServiceConnect, s.getSettings)
	s.rolloutRoutes()                                       // rollouts.go
	s.route("GET "+EventsPath, ServiceConnect, s.getEvents) // events.go
	s.c2dRoutes()                                           // c2d.go
	s.mux.HandleFunc("/", s.notFound)
}

// route registers pattern behind service auth and the api-version check;
// the policy needs every right in need.
func (s *Server) route(pattern string, need Rights, h handlerFunc) {
	s.routeWith(pattern, need, false, h)
}

// routeAny registers pattern for a policy holding any one of the rights in
// anyOf.
func (s *Server) routeAny(pattern string, anyOf Rights, h handlerFunc) {
	s.routeWith(pattern, anyOf, true, h)
}

func (s *Server) routeWith(pattern string, need Rights, anyOf bool, h handlerFunc) {
	s.mux.HandleFunc(pattern, func(w http.ResponseWriter, r *http.Request) {
		if err := s.authorizeRights(r, need, anyOf); err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := checkQuery(r); err != nil {
			s.writeError(w, r, err)
			return
		}
		if err := h(w, r); err != nil {
			s.writeError(w, r, err)
		}
	})
}

// notFound answers every path and method the API does not serve. The error
// table has no code for an unknown endpoint, so it is a GenericBadRequest.
func (s *Server) notFound(w http.ResponseWriter, r *http.Request) {
	s.writeError(w, r, iothub.Errorf(iothub.CodeGenericBadRequest, "%s %s is not an endpoint of this hub", r.Method, r.URL.EscapedPath()))
}

var apiVersionRE = regexp.MustCompile(`^(\d{4}-\d{2}-\d{2})(-preview)?$`)

// checkQuery parses the query string and requires a well-formed api-version
// (docs/iothub.md §4.1: any date; the real service requires one).
func checkQuery(r *http.Request) error {
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return iothub.Errorf(iothub.CodeGenericBadRequest, "malformed query string: %v", err)
	}
	v := q.Get("api-version")
	if v == "" {
		return badRequest("the api-version query parameter is required, e.g. api-version=2021-04-12")
	}
	m := apiVersionRE.FindStringSubmatch(v)
	if m == nil {
		return badRequest("api-version %q is not a version date such as 2021-04-12", v)
	}
	if _, err := time.Parse(time.DateOnly, m[1]); err != nil {
		return badRequest("api-version %q is not a valid date", v)
	}
	return nil
}

// pageParams reads the page size and continuation token of a query: the
// x-ms-max-item-count and x-ms-continuation headers (the SDKs), or the
// pageSize and continuationToken query parameters (the docs, §5.5).
func pageParams(r *http.Request) (size int, cont string, err error) {
	size = DefaultPageSize
	raw := r.Header.Get("x-ms-max-item-count")
	if raw == "" {
		raw = r.URL.Query().Get("pageSize")
	}
	if raw != "" {
		n, err := strconv.Atoi(strings.TrimSpace(raw))
		if err != nil || n < 1 {
			return 0, "", badRequest("the page size %q is not a positive integer", raw)
		}
		size = min(n, MaxPageSize)
	}
	cont = r.Header.Get("x-ms-continuation")
	if cont == "" {
		cont = r.URL.Query().Get("continuationToken")
	}
	return size, cont, nil
}

// writePage answers a query page: a bare JSON array, x-ms-item-type, and
// x-ms-continuation only when there is a next page — an empty header would
// make the Node SDK ask again forever (docs/iothub.md §4.5).
func (s *Server) writePage(w http.ResponseWriter, r *http.Request, items any, itemType, cont string) {
	if cont != "" {
		w.Header().Set("x-ms-continuation", cont)
	}
	if itemType != "" {
		w.Header().Set("x-ms-item-type", itemType)
	}
	s.writeJSON(w, r, http.StatusOK, items)
}
