package restapi

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// RetryPolicy bounds how the Client repeats a request that failed for a
// reason that may pass: 429 throttling, a 5xx answer, or a connection
// error. The zero value means the defaults.
type RetryPolicy struct {
	// MaxAttempts is the most tries of one request, the first included
	// (default 8; 1 turns retries off).
	MaxAttempts int
	// MaxElapsed bounds the time from the first try to the last retry's
	// start (default 60s): a wait that would end later is not begun.
	MaxElapsed time.Duration
	// BaseDelay is the wait before the first retry; each further retry
	// doubles it (default 250ms). Waits are jittered between half and all
	// of the doubled value.
	BaseDelay time.Duration
	// MaxDelay caps one computed wait (default 8s). A Retry-After header
	// from the hub replaces the computed wait, within MaxElapsed.
	MaxDelay time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = 8
	}
	if p.MaxElapsed <= 0 {
		p.MaxElapsed = time.Minute
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = 250 * time.Millisecond
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = 8 * time.Second
	}
	return p
}

// backoff is the jittered wait before retry number n (1 for the first).
func (p RetryPolicy) backoff(n int) time.Duration {
	d := p.BaseDelay
	for i := 1; i < n && d < p.MaxDelay; i++ {
		d *= 2
	}
	d = min(d, p.MaxDelay)
	half := d / 2
	return half + rand.N(d-half+1)
}

// retryAfter reads a Retry-After header: delay-seconds or an HTTP date.
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(t.Sub(now), 0), true
	}
	return 0, false
}

// transientStatus says an answer with this status may succeed when sent
// again. 429 ThrottlingMaxActiveJobCountExceeded is not retried: it is a
// limit on jobs running at once, which seconds of waiting rarely lift, and
// the caller should see it at once.
func transientStatus(status int, e *iothub.Error) bool {
	switch status {
	case http.StatusTooManyRequests:
		return e == nil || e.Code.Name != iothub.CodeThrottlingMaxActiveJobCountExceeded.Name
	case http.StatusInternalServerError, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// unperformedStatus says the hub answered without doing the request:
// throttled or unavailable.
func unperformedStatus(status int) bool {
	return status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable
}

// idempotent says sending the request twice leaves the hub as sending it
// once: GET, HEAD, PUT, DELETE and OPTIONS, and of the POSTs a query, a
// job cancel, and a bulk registry request whose every entry is an update
// (create fails the second time with DeviceAlreadyExists, a delete with
// DeviceNotFound, the IfMatchETag modes on the etag the first one
// changed). A direct method invocation is not: a device may reboot twice.
func idempotent(method, path string, body []byte) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodPut, http.MethodDelete, http.MethodOptions:
		return true
	case http.MethodPost:
	default:
		return false
	}
	p, _, _ := strings.Cut(path, "?")
	switch {
	case p == "/devices/query":
		return true
	case strings.HasPrefix(p, "/jobs/v2/") && strings.HasSuffix(p, "/cancel"):
		return true
	case p == "/devices":
		var ops []struct {
			ImportMode string `json:"importMode"`
		}
		if json.Unmarshal(body, &ops) != nil || len(ops) == 0 {
			return false
		}
		for _, op := range ops {
			if !strings.EqualFold(op.ImportMode, "update") && !strings.EqualFold(op.ImportMode, "updateTwin") {
				return false
			}
		}
		return true
	}
	return false
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
