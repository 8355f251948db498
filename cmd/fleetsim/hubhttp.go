package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// apiVersion is the service API version the client commands send.
const apiVersion = "2021-04-12"

// httpHub is a hubClient over the service REST API (docs/iothub.md §4), used
// until the restapi package's client is wired in.
type httpHub struct {
	base string
	cs   iothub.ConnectionString
	http *http.Client
}

func newHTTPHub(connStr, baseURL string, tlsConf *tls.Config) (*httpHub, error) {
	cs, err := iothub.ParseConnectionString(connStr)
	if err != nil {
		return nil, fmt.Errorf("service connection string: %w", err)
	}
	if cs.SharedAccessKeyName == "" {
		return nil, fmt.Errorf("service connection string: %w: a service policy needs SharedAccessKeyName", iothub.ErrConnectionString)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	return &httpHub{base: strings.TrimRight(baseURL, "/"), cs: cs, http: &http.Client{Transport: tr}}, nil
}

// do sends one request and returns the body of a 2xx answer, or the hub's
// error as *iothub.Error.
func (h *httpHub) do(ctx context.Context, method, path string, body any, header map[string]string) (json.RawMessage, http.Header, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, nil, fmt.Errorf("encode request: %w", err)
		}
		rd = bytes.NewReader(b)
	}
	u := h.base + path
	if strings.Contains(path, "?") {
		u += "&api-version=" + apiVersion
	} else {
		u += "?api-version=" + apiVersion
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, nil, fmt.Errorf("request: %w", err)
	}
	req.Header.Set("Authorization", iothub.NewSAS(h.cs.HostName, h.cs.Key(), h.cs.SharedAccessKeyName, time.Now().Add(time.Hour)))
	if body != nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := h.http.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, resp.Header, parseHubError(resp, b)
	}
	return b, resp.Header, nil
}

// parseHubError reads both IoT Hub error body shapes (docs/iothub.md §2.3):
// "ErrorCode:Name;message" and the embedded JSON with a numeric errorCode.
func parseHubError(resp *http.Response, body []byte) *iothub.Error {
	e := &iothub.Error{Code: iothub.Code{Name: resp.Header.Get("iothub-errorcode"), Number: resp.StatusCode * 1000}}
	var outer struct{ Message string }
	if json.Unmarshal(body, &outer) != nil || outer.Message == "" {
		e.Message = strings.TrimSpace(string(body))
	} else if rest, ok := strings.CutPrefix(outer.Message, "ErrorCode:"); ok {
		name, msg, _ := strings.Cut(rest, ";")
		if e.Code.Name == "" {
			e.Code.Name = name
		}
		e.Message = msg
	} else {
		var inner struct {
			ErrorCode int    `json:"errorCode"`
			Message   string `json:"message"`
		}
		if json.Unmarshal([]byte(outer.Message), &inner) == nil && inner.ErrorCode != 0 {
			e.Code.Number = inner.ErrorCode
			e.Message = inner.Message
		} else {
			e.Message = outer.Message
		}
	}
	if e.Code.Name == "" {
		e.Code.Name = http.StatusText(resp.StatusCode)
	}
	if e.Message == "" {
		e.Message = resp.Status
	}
	return e
}

func esc(id string) string { return url.PathEscape(id) }

func (h *httpHub) CreateJob(ctx context.Context, req jobRequest) (json.RawMessage, error) {
	b, _, err := h.do(ctx, http.MethodPut, "/jobs/v2/"+esc(req.JobID), req, nil)
	return b, err
}

func (h *httpHub) GetJob(ctx context.Context, id string) (json.RawMessage, error) {
	b, _, err := h.do(ctx, http.MethodGet, "/jobs/v2/"+esc(id), nil, nil)
	return b, err
}

func (h *httpHub) ListJobs(ctx context.Context, jobType, status string) (json.RawMessage, error) {
	q := url.Values{}
	if jobType != "" {
		q.Set("jobType", jobType)
	}
	if status != "" {
		q.Set("jobStatus", status)
	}
	path := "/jobs/v2/query"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	return h.pages(ctx, http.MethodGet, path, nil)
}

func (h *httpHub) CancelJob(ctx context.Context, id string) (json.RawMessage, error) {
	b, _, err := h.do(ctx, http.MethodPost, "/jobs/v2/"+esc(id)+"/cancel", nil, nil)
	return b, err
}

func (h *httpHub) CreateDevice(ctx context.Context, id string) (json.RawMessage, error) {
	b, _, err := h.do(ctx, http.MethodPut, "/devices/"+esc(id), map[string]any{"deviceId": id}, nil)
	return b, err
}

func (h *httpHub) ListDevices(ctx context.Context) (json.RawMessage, error) {
	b, _, err := h.do(ctx, http.MethodGet, "/devices", nil, nil)
	return b, err
}

func (h *httpHub) GetDevice(ctx context.Context, id string) (json.RawMessage, error) {
	b, _, err := h.do(ctx, http.MethodGet, "/devices/"+esc(id), nil, nil)
	return b, err
}

func (h *httpHub) DeleteDevice(ctx context.Context, id string) error {
	_, _, err := h.do(ctx, http.MethodDelete, "/devices/"+esc(id), nil, map[string]string{"If-Match": "*"})
	return err
}

func (h *httpHub) GetTwin(ctx context.Context, id string) (json.RawMessage, error) {
	b, _, err := h.do(ctx, http.MethodGet, "/twins/"+esc(id), nil, nil)
	return b, err
}

func (h *httpHub) UpdateTwin(ctx context.Context, id string, patch json.RawMessage, etag string) (json.RawMessage, error) {
	if etag != "*" {
		etag = strconv.Quote(strings.Trim(etag, `"`))
	}
	b, _, err := h.do(ctx, http.MethodPatch, "/twins/"+esc(id), patch, map[string]string{"If-Match": etag})
	return b, err
}

func (h *httpHub) Invoke(ctx context.Context, id string, req methodRequest) (json.RawMessage, error) {
	b, _, err := h.do(ctx, http.MethodPost, "/twins/"+esc(id)+"/methods", req, nil)
	return b, err
}

func (h *httpHub) Query(ctx context.Context, q string) (json.RawMessage, error) {
	return h.pages(ctx, http.MethodPost, "/devices/query", map[string]string{"query": q})
}

// pages follows x-ms-continuation and joins the pages into one array.
func (h *httpHub) pages(ctx context.Context, method, path string, body any) (json.RawMessage, error) {
	all := []json.RawMessage{}
	cont := ""
	for range 100000 {
		hdr := map[string]string{}
		if cont != "" {
			hdr["x-ms-continuation"] = cont
		}
		b, rh, err := h.do(ctx, method, path, body, hdr)
		if err != nil {
			return nil, err
		}
		var page []json.RawMessage
		if err := json.Unmarshal(b, &page); err != nil {
			return nil, fmt.Errorf("unexpected answer from the hub: %w", err)
		}
		all = append(all, page...)
		if cont = rh.Get("x-ms-continuation"); cont == "" {
			break
		}
	}
	return json.Marshal(all)
}
