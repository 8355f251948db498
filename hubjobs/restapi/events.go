package restapi

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs/events"
	"github.com/fleetsim/fleetsim/hubjobs/query"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// EventsPath is where a fleetsim hub streams device events as server-sent
// events, under fleetsim's own prefix (IoT Hub has no such endpoint).
const EventsPath = "/fleetsim/v1/events"

// Timings of the events endpoint.
const (
	// ConditionRefresh is how often a condition's devices are selected
	// again, so devices that come to match it are watched too.
	ConditionRefresh = 10 * time.Second
	// eventsKeepAlive is how often an idle stream gets a comment line,
	// which also reports the events the watcher missed.
	eventsKeepAlive = 5 * time.Second
)

// Events is what the events endpoint needs: the hub's event stream and
// the devices a condition selects.
type Events interface {
	Subscribe(f events.Filter) *events.Subscription
	SelectDeviceIDs(ctx context.Context, q *query.Query) ([]string, error)
}

// getEvents answers GET /fleetsim/v1/events[?device=ID|condition=COND][&types=a,b]
// with a text/event-stream: one "data:" line per event (an events.Message
// as JSON, its seq as the SSE id), and an "event: dropped" whose data is
// {"dropped": N} when the watcher has missed events because it read too
// slowly. A condition is an IoT Hub query condition over the device twins
// (as a job's queryCondition), selected at once and again every
// ConditionRefresh.
func (s *Server) getEvents(w http.ResponseWriter, r *http.Request) error {
	if s.cfg.Events == nil {
		s.notFound(w, r)
		return nil
	}
	q := r.URL.Query()
	device, cond := q.Get("device"), q.Get("condition")
	if device != "" && cond != "" {
		return badRequest("give a device or a condition, not both")
	}
	types, err := events.ParseTypes(q.Get("types"))
	if err != nil {
		return badRequest("types: %v", err)
	}
	f := events.Filter{Types: types}
	var cq *query.Query
	switch {
	case device != "":
		f.Devices = []string{device}
	case cond != "":
		if n := len(cond); n > iothub.MaxQueryLength {
			return badRequest("the condition is %d characters long; the limit is %d", n, iothub.MaxQueryLength)
		}
		if cq, err = query.ParseCondition(cond); err != nil {
			return err
		}
		if cq.From() != query.Devices {
			return badRequest("the condition selects %s; events are watched by device", cq.From())
		}
		if f.Devices, err = s.cfg.Events.SelectDeviceIDs(r.Context(), cq); err != nil {
			return err
		}
		if f.Devices == nil {
			f.Devices = []string{}
		}
	}
	sub := s.cfg.Events.Subscribe(f)
	defer sub.Close()

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	rc := http.NewResponseController(w)
	_, _ = io.WriteString(w, ": watching\n\n")
	if err := rc.Flush(); err != nil {
		return nil
	}
	keep := time.NewTicker(eventsKeepAlive)
	defer keep.Stop()
	var refresh <-chan time.Time
	if cq != nil {
		t := time.NewTicker(ConditionRefresh)
		defer t.Stop()
		refresh = t.C
	}
	var buf bytes.Buffer
	reported := uint64(0)
	for {
		select {
		case <-r.Context().Done():
			return nil
		case <-s.stopping:
			return nil
		case <-refresh:
			if ids, err := s.cfg.Events.SelectDeviceIDs(r.Context(), cq); err == nil {
				sub.SetDevices(append([]string{}, ids...))
			}
			continue
		case <-keep.C:
			buf.Reset()
			if d := sub.Dropped(); d != reported {
				reported = d
				fmt.Fprintf(&buf, "event: dropped\ndata: {\"dropped\":%d}\n\n", d)
			} else {
				buf.WriteString(": keep-alive\n\n")
			}
		case e, ok := <-sub.C:
			if !ok {
				return nil
			}
			buf.Reset()
			writeEvent(&buf, &e)
			// Send what else is waiting in the same write.
			for more := len(sub.C); more > 0; more-- {
				e := <-sub.C
				writeEvent(&buf, &e)
			}
		}
		if _, err := w.Write(buf.Bytes()); err != nil {
			return nil
		}
		if err := rc.Flush(); err != nil {
			return nil
		}
	}
}

func writeEvent(buf *bytes.Buffer, e *events.Event) {
	b, err := json.Marshal(e.Message())
	if err != nil {
		return
	}
	buf.WriteString("id: ")
	buf.WriteString(strconv.FormatUint(e.Seq, 10))
	buf.WriteString("\ndata: ")
	buf.Write(b)
	buf.WriteString("\n\n")
}

// stopStreams ends the open event streams, so a shutdown does not wait for
// their watchers to leave.
func (s *Server) stopStreams() { s.stopOnce.Do(func() { close(s.stopping) }) }

// EventsOptions select the events a watcher gets.
type EventsOptions struct {
	// Device, when set, is the only device watched.
	Device string
	// Condition, when set, is an IoT Hub query condition selecting the devices.
	Condition string
	// Types lists the event types wanted (comma-separated); empty is every type.
	Types string
}

// EventStream reads a hub's events endpoint.
type EventStream struct {
	body    io.ReadCloser
	sc      *bufio.Scanner
	dropped uint64
}

// Events opens the hub's stream of device events. The request is not
// retried; the caller reads with Next and must Close the stream.
func (c *Client) Events(ctx context.Context, opts EventsOptions) (*EventStream, error) {
	v := url.Values{"api-version": {APIVersion}}
	for k, x := range map[string]string{"device": opts.Device, "condition": opts.Condition, "types": opts.Types} {
		if x != "" {
			v.Set(k, x)
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+EventsPath+"?"+v.Encode(), nil)
	if err != nil {
		return nil, fmt.Errorf("build events request: %w", err)
	}
	req.Header.Set("Authorization", iothub.NewSAS(c.cs.HostName, c.key, c.cs.SharedAccessKeyName, c.now().Add(time.Hour)))
	req.Header.Set("Request-Id", requestID(""))
	req.Header.Set("User-Agent", "fleetsim-restapi")
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", EventsPath, err)
	}
	if resp.StatusCode != http.StatusOK {
		defer resp.Body.Close()
		ans, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
		return nil, fmt.Errorf("GET %s: %w", EventsPath, ParseError(resp.StatusCode, resp.Header, ans))
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 4<<20)
	return &EventStream{body: resp.Body, sc: sc}, nil
}

// Next returns the next event. It returns io.EOF when the hub ended the
// stream, and the context's error once it is cancelled.
func (s *EventStream) Next() (events.Message, error) {
	var data []byte
	name := ""
	for s.sc.Scan() {
		line := s.sc.Bytes()
		switch {
		case len(line) == 0:
			if data == nil {
				name = ""
				continue
			}
			if name == "dropped" {
				var d struct{ Dropped uint64 }
				if json.Unmarshal(data, &d) == nil {
					s.dropped = d.Dropped
				}
				data, name = nil, ""
				continue
			}
			var m events.Message
			if err := json.Unmarshal(data, &m); err != nil {
				return events.Message{}, fmt.Errorf("events stream: %w", err)
			}
			return m, nil
		case line[0] == ':':
		case bytes.HasPrefix(line, []byte("event:")):
			name = strings.TrimSpace(string(line[len("event:"):]))
		case bytes.HasPrefix(line, []byte("data:")):
			d := bytes.TrimPrefix(line[len("data:"):], []byte(" "))
			if data != nil {
				data = append(data, '\n')
			}
			data = append(data, d...)
		}
	}
	if err := s.sc.Err(); err != nil && !errors.Is(err, io.EOF) {
		return events.Message{}, fmt.Errorf("events stream: %w", err)
	}
	return events.Message{}, io.EOF
}

// Dropped is the number of events the hub reported this watcher missed.
func (s *EventStream) Dropped() uint64 { return s.dropped }

// Close ends the stream.
func (s *EventStream) Close() error { return s.body.Close() }
