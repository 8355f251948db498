package restapi

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// APIVersion is the api-version the Client sends, as the Node service SDK does.
const APIVersion = "2021-04-12"

// maxAnswerBytes bounds what the Client reads of one answer.
const maxAnswerBytes = 64 << 20

// ClientOptions tunes a Client.
type ClientOptions struct {
	// BaseURL is where the hub listens, e.g. "https://127.0.0.1:8443".
	// Empty means "https://" + the connection string's HostName.
	BaseURL string
	// TLSConfig verifies the hub (for fleetsim, one trusting its CA).
	TLSConfig *tls.Config
	// HTTPClient, when set, replaces the client built from TLSConfig.
	HTTPClient *http.Client
	// Now is the clock that dates tokens (default time.Now).
	Now func() time.Time
	// Retry bounds the retries of requests that failed for a reason that
	// may pass (default: see RetryPolicy).
	Retry RetryPolicy
}

// Client calls the service REST API like the Node service SDK: a fresh
// service SAS token per request (sr = the raw host name, skn, one hour),
// api-version 2021-04-12, a Request-Id, and keep-alive connections. Errors
// from the hub come back as *iothub.Error (wrapped, with the number of
// attempts, when the request was retried: use errors.As); transport errors
// are wrapped. Requests that may succeed later are retried (see Do).
// A Client is safe for concurrent use.
type Client struct {
	base  string
	cs    iothub.ConnectionString
	key   []byte
	http  *http.Client
	now   func() time.Time
	retry RetryPolicy
	sleep func(context.Context, time.Duration) error
}

// NewClient parses a service connection string
// (HostName=...;SharedAccessKeyName=...;SharedAccessKey=...).
func NewClient(connectionString string, opts ClientOptions) (*Client, error) {
	cs, err := iothub.ParseConnectionString(connectionString)
	if err != nil {
		return nil, fmt.Errorf("service connection string: %w", err)
	}
	if cs.SharedAccessKeyName == "" || cs.SharedAccessKey == "" {
		return nil, fmt.Errorf("service connection string: %w: SharedAccessKeyName and SharedAccessKey are required", iothub.ErrConnectionString)
	}
	base := strings.TrimRight(opts.BaseURL, "/")
	if base == "" {
		base = "https://" + cs.HostName
	}
	if u, err := url.Parse(base); err != nil || u.Scheme == "" || u.Host == "" {
		return nil, fmt.Errorf("base URL %q is not an absolute URL", opts.BaseURL)
	}
	hc := opts.HTTPClient
	if hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tc := opts.TLSConfig.Clone()
		if tc == nil {
			tc = &tls.Config{}
		}
		if tc.ClientSessionCache == nil {
			// Resumed handshakes are cheaper when many connections open at once.
			tc.ClientSessionCache = tls.NewLRUClientSessionCache(0)
		}
		tr.TLSClientConfig = tc
		tr.ForceAttemptHTTP2 = false
		tr.MaxIdleConnsPerHost = 64
		hc = &http.Client{Transport: tr}
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Client{base: base, cs: cs, key: cs.Key(), http: hc, now: now, retry: opts.Retry.withDefaults(), sleep: sleep}, nil
}

// HostName is the hub host name from the connection string.
func (c *Client) HostName() string { return c.cs.HostName }

// CloseIdleConnections closes the client's idle keep-alive connections.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// Response is a successful answer: its status, headers and raw JSON body.
type Response struct {
	Status int
	Header http.Header
	Body   json.RawMessage
}

// Do sends one request to path (which may carry a query string; api-version
// is added) with body marshalled as JSON (nil: no body) and the extra
// headers. It returns the answer when its status is below 300, else the
// hub's error as *iothub.Error.
//
// A request that fails for a reason that may pass (429 throttling, a 5xx
// answer, a connection error) is sent again under the client's
// RetryPolicy, with a fresh token, after a jittered exponential wait or
// the hub's Retry-After. Only requests that are safe to repeat are
// retried once they may have reached the hub (see idempotent); any request
// is retried when the connection failed before it was written. The error
// after the last attempt says how many were made.
func (c *Client) Do(ctx context.Context, method, path string, body any, header http.Header) (*Response, error) {
	resp, _, err := c.do(ctx, method, path, body, header)
	return resp, err
}

// do is Do, also reporting whether an earlier attempt may have been
// carried out by the hub although it failed (an answer lost with the
// connection, or a 500): a retried create may then find its own work.
func (c *Client) do(ctx context.Context, method, path string, body any, header http.Header) (*Response, bool, error) {
	var b []byte
	if body != nil {
		switch v := body.(type) {
		case json.RawMessage:
			b = v
		case []byte:
			b = v
		default:
			var err error
			if b, err = json.Marshal(body); err != nil {
				return nil, false, fmt.Errorf("encode %s %s request: %w", method, path, err)
			}
		}
	}
	safe := idempotent(method, path, b)
	began := time.Now()
	ambiguous := false
	for attempt := 1; ; attempt++ {
		resp, status, written, err := c.once(ctx, method, path, body != nil, b, header)
		if err == nil {
			return resp, ambiguous, nil
		}
		retry, performed := false, false
		wait := time.Duration(-1)
		var herr *iothub.Error
		switch {
		case ctx.Err() != nil:
		case status != 0:
			errors.As(err, &herr)
			retry = safe && transientStatus(status, herr)
			performed = !unperformedStatus(status)
			if d, ok := retryAfter(resp.headerOrNil(), time.Now()); ok {
				wait = d
			}
		case permanentTransportError(err):
		case !written:
			retry = true
		default:
			retry, performed = safe, true
		}
		if wait < 0 {
			wait = c.retry.backoff(attempt)
		}
		if !retry || attempt >= c.retry.MaxAttempts || time.Since(began)+wait > c.retry.MaxElapsed {
			if attempt > 1 {
				err = fmt.Errorf("%s %s: gave up after %d attempts in %s: %w", method, path, attempt, time.Since(began).Round(time.Millisecond), err)
			}
			return nil, ambiguous, err
		}
		ambiguous = ambiguous || performed
		if serr := c.sleep(ctx, wait); serr != nil {
			return nil, ambiguous, err
		}
	}
}

// once sends one attempt. On an error answer it returns the status (and a
// Response holding only the headers); written says some of the request
// was written to a connection.
func (c *Client) once(ctx context.Context, method, path string, hasBody bool, b []byte, header http.Header) (*Response, int, bool, error) {
	var rd io.Reader
	if hasBody {
		rd = bytes.NewReader(b)
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	// The transport calls the trace from its own goroutines.
	var wrote atomic.Bool
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{WroteHeaders: func() { wrote.Store(true) }})
	req, err := http.NewRequestWithContext(ctx, method, c.base+path+sep+"api-version="+APIVersion, rd)
	if err != nil {
		return nil, 0, false, fmt.Errorf("build %s %s request: %w", method, path, err)
	}
	// docs/sdk-notes.md §1.3: the Node SDK's headers.
	req.Header.Set("Authorization", iothub.NewSAS(c.cs.HostName, c.key, c.cs.SharedAccessKeyName, c.now().Add(time.Hour)))
	req.Header.Set("Request-Id", requestID(""))
	req.Header.Set("User-Agent", "fleetsim-restapi")
	if hasBody {
		req.Header.Set("Content-Type", jsonContentType)
	}
	for k, vs := range header {
		for _, v := range vs {
			req.Header.Add(k, v)
		}
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, 0, wrote.Load(), fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	ans, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return nil, 0, true, fmt.Errorf("%s %s: read answer: %w", method, path, err)
	}
	if resp.StatusCode >= 300 {
		return &Response{Status: resp.StatusCode, Header: resp.Header}, resp.StatusCode, true, ParseError(resp.StatusCode, resp.Header, ans)
	}
	return &Response{Status: resp.StatusCode, Header: resp.Header, Body: ans}, resp.StatusCode, true, nil
}

// headerOrNil is r's headers, or nil for no response.
func (r *Response) headerOrNil() http.Header {
	if r == nil {
		return nil
	}
	return r.Header
}

// permanentTransportError says a transport error will not pass by trying
// again: the hub's certificate is not trusted or names another host.
func permanentTransportError(err error) bool {
	var cv *tls.CertificateVerificationError
	var ua x509.UnknownAuthorityError
	var he x509.HostnameError
	var ci x509.CertificateInvalidError
	var rh tls.RecordHeaderError
	return errors.As(err, &cv) || errors.As(err, &ua) || errors.As(err, &he) || errors.As(err, &ci) || errors.As(err, &rh)
}

// ParseError reads an IoT Hub error answer back into an *iothub.Error
// (docs/iothub.md §2.3): the code name from the iothub-errorcode header or the
// legacy "ErrorCode:Name;message" text, the number and message from the
// embedded JSON form when present, else status*1000.
func ParseError(status int, header http.Header, body []byte) *iothub.Error {
	e := &iothub.Error{Code: iothub.Code{Name: header.Get("iothub-errorcode"), Number: status * 1000}}
	var outer struct {
		Message string `json:"Message"`
	}
	switch {
	case json.Unmarshal(body, &outer) != nil || outer.Message == "":
		e.Message = strings.TrimSpace(string(body))
	case strings.HasPrefix(outer.Message, "ErrorCode:"):
		name, msg, _ := strings.Cut(strings.TrimPrefix(outer.Message, "ErrorCode:"), ";")
		if e.Code.Name == "" {
			e.Code.Name = name
		}
		e.Message = msg
	default:
		var inner struct {
			ErrorCode int            `json:"errorCode"`
			Message   string         `json:"message"`
			Info      map[string]any `json:"info"`
		}
		if json.Unmarshal([]byte(outer.Message), &inner) == nil && inner.ErrorCode != 0 {
			e.Code.Number = inner.ErrorCode
			e.Message = inner.Message
			if len(inner.Info) > 0 {
				e.Info = inner.Info
			}
		} else {
			e.Message = outer.Message
		}
	}
	if known, ok := knownCodes[e.Code.Name]; ok && e.Code.Number == status*1000 {
		e.Code.Number = known.Number
	}
	if e.Code.Name == "" {
		e.Code.Name = http.StatusText(status)
	}
	if e.Message == "" {
		e.Message = http.StatusText(status)
	}
	return e
}

// knownCodes lets ParseError restore the full code of a legacy-form answer,
// so errors.Is against the iothub.Code* values works.
var knownCodes = func() map[string]iothub.Code {
	m := map[string]iothub.Code{}
	for _, c := range []iothub.Code{
		iothub.CodeGenericBadRequest, iothub.CodeInvalidOperation, iothub.CodeArgumentInvalid,
		iothub.CodeArgumentNull, iothub.CodeIotHubFormatError, iothub.CodeDeviceDefinedMultipleTimes,
		iothub.CodeDeserializationError, iothub.CodeBulkRegistryOperationFailure,
		iothub.CodeIotHubUnauthorizedAccess, iothub.CodeIotHubQuotaExceeded, iothub.CodeDeviceNotFound,
		iothub.CodeJobNotFound, iothub.CodeDeviceNotOnline, iothub.CodeDeviceAlreadyExists,
		iothub.CodeJobAlreadyExists, iothub.CodePreconditionFailed, iothub.CodeMessageTooLarge,
		iothub.CodeTooManyDevices, iothub.CodeThrottlingException,
		iothub.CodeThrottlingMaxActiveJobCountExceeded, iothub.CodeServerError, iothub.CodeJobCancelled,
		iothub.CodeServiceUnavailable, iothub.CodeGatewayTimeout,
	} {
		m[c.Name] = c
	}
	return m
}()

func (c *Client) doJSON(ctx context.Context, method, path string, body any, header http.Header) (json.RawMessage, error) {
	resp, err := c.Do(ctx, method, path, body, header)
	if err != nil {
		return nil, err
	}
	return resp.Body, nil
}

func esc(id string) string { return iothub.EncodeURIComponent(id) }

func ifMatch(etag string) http.Header {
	if etag == "" {
		return nil
	}
	// The Node SDK always quotes (docs/sdk-notes.md §1.3).
	if !strings.HasPrefix(etag, `"`) {
		etag = strconv.Quote(etag)
	}
	return http.Header{"If-Match": {etag}}
}

// CreateDevice registers a device with generated keys (PUT /devices/{id}).
func (c *Client) CreateDevice(ctx context.Context, id string) (json.RawMessage, error) {
	return c.PutDevice(ctx, map[string]any{
		"deviceId":       id,
		"authentication": map[string]any{"type": "sas", "symmetricKey": map[string]string{"primaryKey": "", "secondaryKey": ""}},
	}, id, "")
}

// PutDevice sends a device identity: created when etag is "", else updated
// under If-Match etag ("*" for any).
func (c *Client) PutDevice(ctx context.Context, device any, id, etag string) (json.RawMessage, error) {
	return c.doJSON(ctx, http.MethodPut, "/devices/"+esc(id), device, ifMatch(etag))
}

// GetDevice returns a device identity.
func (c *Client) GetDevice(ctx context.Context, id string) (json.RawMessage, error) {
	return c.doJSON(ctx, http.MethodGet, "/devices/"+esc(id), nil, nil)
}

// ListDevices returns a JSON array of at most top identities (0: the hub's maximum).
func (c *Client) ListDevices(ctx context.Context, top int) (json.RawMessage, error) {
	p := "/devices"
	if top > 0 {
		p += "?top=" + strconv.Itoa(top)
	}
	return c.doJSON(ctx, http.MethodGet, p, nil, nil)
}

// DeleteDevice deletes a device under If-Match etag ("" means "*").
func (c *Client) DeleteDevice(ctx context.Context, id, etag string) error {
	if etag == "" {
		etag = "*"
	}
	_, err := c.Do(ctx, http.MethodDelete, "/devices/"+esc(id), nil, ifMatch(etag))
	return err
}

// BulkUpdate sends a bulk registry request: ops is a JSON array of
// ExportImportDevice entries ({"id", "importMode", ...}). It returns the
// BulkRegistryOperationResult, also when IoT Hub sends it with status 400
// because some entries failed; other failures are errors.
func (c *Client) BulkUpdate(ctx context.Context, ops any) (json.RawMessage, error) {
	b, err := c.doJSON(ctx, http.MethodPost, "/devices", ops, nil)
	var e *iothub.Error
	if errors.As(err, &e) && e.HTTPStatus() == http.StatusBadRequest {
		var res struct {
			IsSuccessful *bool `json:"isSuccessful"`
		}
		if json.Unmarshal([]byte(e.Message), &res) == nil && res.IsSuccessful != nil {
			return json.RawMessage(e.Message), nil
		}
	}
	return b, err
}

// DeviceStatistics returns {totalDeviceCount, enabledDeviceCount, disabledDeviceCount}.
func (c *Client) DeviceStatistics(ctx context.Context) (json.RawMessage, error) {
	return c.doJSON(ctx, http.MethodGet, "/statistics/devices", nil, nil)
}

// ServiceStatistics returns {connectedDeviceCount}.
func (c *Client) ServiceStatistics(ctx context.Context) (json.RawMessage, error) {
	return c.doJSON(ctx, http.MethodGet, "/statistics/service", nil, nil)
}

// GetTwin returns a device twin.
func (c *Client) GetTwin(ctx context.Context, id string) (json.RawMessage, error) {
	return c.doJSON(ctx, http.MethodGet, "/twins/"+esc(id), nil, nil)
}

// UpdateTwin patches a twin ({"tags":..., "properties":{"desired":...}})
// under If-Match etag ("" or "*" for any) and returns the updated twin.
func (c *Client) UpdateTwin(ctx context.Context, id string, patch json.RawMessage, etag string) (json.RawMessage, error) {
	if etag == "" {
		etag = "*"
	}
	return c.doJSON(ctx, http.MethodPatch, "/twins/"+esc(id), patch, ifMatch(etag))
}

// ReplaceTwin replaces a twin's tags and desired properties.
func (c *Client) ReplaceTwin(ctx context.Context, id string, twin json.RawMessage, etag string) (json.RawMessage, error) {
	if etag == "" {
		etag = "*"
	}
	return c.doJSON(ctx, http.MethodPut, "/twins/"+esc(id), twin, ifMatch(etag))
}

// InvokeMethod calls a direct method and returns the device's status and
// payload (the device's own status may be anything; a hub error is an error).
func (c *Client) InvokeMethod(ctx context.Context, id string, req iothub.MethodRequest) (iothub.MethodResult, error) {
	if req.Payload == nil {
		req.Payload = json.RawMessage("null")
	}
	b, err := c.doJSON(ctx, http.MethodPost, "/twins/"+esc(id)+"/methods", req, nil)
	if err != nil {
		return iothub.MethodResult{}, err
	}
	var res iothub.MethodResult
	if err := json.Unmarshal(b, &res); err != nil {
		return iothub.MethodResult{}, fmt.Errorf("invoke %s on %s: unexpected answer: %w", req.MethodName, id, err)
	}
	return res, nil
}

// Page is one page of a query's results.
type Page struct {
	Items []json.RawMessage
	// ItemType is the x-ms-item-type header.
	ItemType string
	// Continuation is the x-ms-continuation header; "" on the last page.
	Continuation string
}

// maxPages stops a paging loop against a hub that never ends a query.
const maxPages = 1 << 20

// QueryPage fetches one page of a query (POST /devices/query); pageSize 0
// leaves the size to the hub.
func (c *Client) QueryPage(ctx context.Context, q string, pageSize int, continuation string) (Page, error) {
	return c.page(ctx, http.MethodPost, "/devices/query", map[string]string{"query": q}, pageSize, continuation)
}

// Query runs a query and follows x-ms-continuation to the end, returning every item.
func (c *Client) Query(ctx context.Context, q string, pageSize int) ([]json.RawMessage, error) {
	return c.all(func(cont string) (Page, error) { return c.QueryPage(ctx, q, pageSize, cont) })
}

// ListJobsPage fetches one page of GET /jobs/v2/query; empty filters match all.
func (c *Client) ListJobsPage(ctx context.Context, jobType, jobStatus string, pageSize int, continuation string) (Page, error) {
	v := url.Values{}
	if jobStatus != "" {
		v.Set("jobStatus", jobStatus)
	}
	if jobType != "" {
		v.Set("jobType", jobType)
	}
	p := "/jobs/v2/query"
	if len(v) > 0 {
		p += "?" + v.Encode()
	}
	return c.page(ctx, http.MethodGet, p, nil, pageSize, continuation)
}

// ListJobs returns every job matching the filters, following the pages.
func (c *Client) ListJobs(ctx context.Context, jobType, jobStatus string, pageSize int) ([]json.RawMessage, error) {
	return c.all(func(cont string) (Page, error) { return c.ListJobsPage(ctx, jobType, jobStatus, pageSize, cont) })
}

func (c *Client) page(ctx context.Context, method, path string, body any, pageSize int, continuation string) (Page, error) {
	h := http.Header{}
	if pageSize > 0 {
		h.Set("x-ms-max-item-count", strconv.Itoa(pageSize))
	}
	if continuation != "" {
		h.Set("x-ms-continuation", continuation)
	}
	resp, err := c.Do(ctx, method, path, body, h)
	if err != nil {
		return Page{}, err
	}
	var items []json.RawMessage
	if err := json.Unmarshal(resp.Body, &items); err != nil {
		return Page{}, fmt.Errorf("%s %s: the answer is not a JSON array: %w", method, path, err)
	}
	if items == nil {
		items = []json.RawMessage{}
	}
	return Page{Items: items, ItemType: resp.Header.Get("x-ms-item-type"), Continuation: resp.Header.Get("x-ms-continuation")}, nil
}

func (c *Client) all(next func(cont string) (Page, error)) ([]json.RawMessage, error) {
	out := []json.RawMessage{}
	cont := ""
	for range maxPages {
		p, err := next(cont)
		if err != nil {
			return nil, err
		}
		out = append(out, p.Items...)
		if p.Continuation == "" {
			return out, nil
		}
		cont = p.Continuation
	}
	return nil, errors.New("query did not end after too many pages")
}

// CreateJob schedules a Jobs v2 job (PUT /jobs/v2/{id}); request is the
// JobRequest body (docs/iothub.md §5.2), marshalled as JSON. When an attempt
// that may have created the job failed (its answer lost) and the retry
// finds the job existing, the job is read and returned: it is this call's.
func (c *Client) CreateJob(ctx context.Context, jobID string, request any) (json.RawMessage, error) {
	resp, ambiguous, err := c.do(ctx, http.MethodPut, "/jobs/v2/"+esc(jobID), request, nil)
	if err != nil {
		if ambiguous && errors.Is(err, &iothub.Error{Code: iothub.CodeJobAlreadyExists}) {
			return c.GetJob(ctx, jobID)
		}
		return nil, err
	}
	return resp.Body, nil
}

// GetJob returns a job's JobResponse.
func (c *Client) GetJob(ctx context.Context, jobID string) (json.RawMessage, error) {
	return c.doJSON(ctx, http.MethodGet, "/jobs/v2/"+esc(jobID), nil, nil)
}

// CancelJob cancels a job and returns its JobResponse. Like the Node SDK it
// sends no body.
func (c *Client) CancelJob(ctx context.Context, jobID string) (json.RawMessage, error) {
	return c.doJSON(ctx, http.MethodPost, "/jobs/v2/"+esc(jobID)+"/cancel", nil, nil)
}
