package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/fleetsim/fleetsim/hubjobs/events"
	"github.com/fleetsim/fleetsim/hubjobs/restapi"
)

// eventSource is what monitor needs besides hubClient: the hub's event stream.
type eventSource interface {
	Events(ctx context.Context, opts restapi.EventsOptions) (eventStream, error)
}

// eventStream is an open stream of events.
type eventStream interface {
	Next() (events.Message, error)
	Dropped() uint64
	Close() error
}

func (h restHub) Events(ctx context.Context, opts restapi.EventsOptions) (eventStream, error) {
	return h.c.Events(ctx, opts)
}

func monitorCommand() *command {
	return &command{
		name: "monitor", summary: "print device events as they happen",
		help: `Prints the devices' events as the hub sees them, like 'az iot hub
monitor-events': device-to-cloud messages with their system and application
properties, connects and disconnects, direct method calls and answers,
desired patches, reported patches and firmware phases. It watches every
device, one device (--device), or the devices an IoT Hub query condition
selects (--condition, selected again every 10 seconds), and stops on Ctrl-C
or after --timeout. Event types: ` + strings.ReplaceAll(events.AllTypes.String(), ",", ", ") + `.
Events the command reads too slowly to keep up with are dropped by the hub,
and their number is printed at the end.`,
		examples: []string{
			"fleetsim monitor --device thermostat-1",
			`fleetsim monitor --condition "tags.building = '43'" --types telemetry`,
			"fleetsim monitor --types methodCall,methodResult --timeout 1m --json | jq .",
		},
		setup: func(f *flagSet) action {
			c := addClientFlags(f)
			var device, cond, types string
			var asJSON bool
			var timeout time.Duration
			f.fs.StringVar(&device, "device", "", "watch only device `ID`")
			f.fs.StringVar(&cond, "condition", "", "watch the devices the IoT Hub query `CONDITION` selects")
			f.fs.StringVar(&types, "types", "", "comma-separated event `TYPES` to watch (default every type)")
			f.fs.BoolVar(&asJSON, "json", false, "print one JSON object per event and line")
			f.fs.DurationVar(&timeout, "timeout", 0, "stop after `DURATION` (default: until Ctrl-C)")
			return func(ctx context.Context, a *app, args []string) error {
				if len(args) != 0 {
					return usagef(f.name, "monitor takes no arguments")
				}
				if device != "" && cond != "" {
					return usagef(f.name, "give --device or --condition, not both")
				}
				if _, err := events.ParseTypes(types); err != nil {
					return usagef(f.name, "--types: %v", err)
				}
				asJSON = asJSON || c.output == "json"
				if timeout < 0 {
					return usagef(f.name, "--timeout must not be negative")
				}
				hc, _, err := a.client(f, c)
				if err != nil {
					return err
				}
				src, ok := hc.(eventSource)
				if !ok {
					return errors.New("monitor: this hub client cannot watch events")
				}
				ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
				defer stop()
				if timeout > 0 {
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, timeout)
					defer cancel()
				}
				return monitor(ctx, a.stdout, a.stderr, src, restapi.EventsOptions{Device: device, Condition: cond, Types: types}, asJSON)
			}
		},
	}
}

// monitor prints the stream's events until ctx ends or the hub ends the stream.
func monitor(ctx context.Context, stdout, stderr io.Writer, src eventSource, opts restapi.EventsOptions, asJSON bool) error {
	s, err := src.Events(ctx, opts)
	if err != nil {
		return hubError(err, "monitor")
	}
	// Next blocks in a read: closing the stream when ctx ends wakes it.
	stopped := make(chan struct{})
	defer func() { <-stopped }()
	watchCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		defer close(stopped)
		<-watchCtx.Done()
		s.Close()
	}()
	what := "every device"
	switch {
	case opts.Device != "":
		what = "device " + opts.Device
	case opts.Condition != "":
		what = "the devices where " + opts.Condition
	}
	fmt.Fprintf(stderr, "Watching %s. Press Ctrl-C to stop.\n", what)
	n := 0
	for {
		m, err := s.Next()
		if err != nil {
			if d := s.Dropped(); d > 0 {
				fmt.Fprintf(stderr, "%d events were dropped because they were read too slowly.\n", d)
			}
			if ctx.Err() != nil {
				fmt.Fprintf(stderr, "%d events.\n", n)
				return nil
			}
			if errors.Is(err, io.EOF) {
				return errors.New("monitor: the hub ended the stream")
			}
			return hubError(err, "monitor")
		}
		n++
		if asJSON {
			b, err := json.Marshal(m)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s\n", b)
			continue
		}
		fmt.Fprintln(stdout, eventLine(m))
	}
}

// eventLine is one readable line for an event:
// TIME DEVICE[/MODULE] TYPE [details] [PAYLOAD] [properties].
func eventLine(m events.Message) string {
	var b strings.Builder
	b.WriteString(m.Time.Format("15:04:05.000"))
	b.WriteString("  ")
	b.WriteString(m.DeviceID)
	if m.ModuleID != "" {
		b.WriteString("/" + m.ModuleID)
	}
	b.WriteString("  ")
	b.WriteString(m.Type.String())
	add := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, " %s=%s", k, v)
		}
	}
	add("method", m.Method)
	if m.Status != nil {
		add("status", fmt.Sprint(*m.Status))
	}
	add("version", m.Version)
	add("rid", m.RequestID)
	if len(m.Payload) > 0 {
		b.WriteString("  ")
		b.Write(m.Payload)
		if m.Truncated {
			fmt.Fprintf(&b, " (first %d of %d bytes)", len(m.Payload), m.Size)
		}
	}
	props := func(label string, p map[string]string, skip ...string) {
		keys := make([]string, 0, len(p))
		for k := range p {
			if !contains(skip, k) {
				keys = append(keys, k)
			}
		}
		if len(keys) == 0 {
			return
		}
		sort.Strings(keys)
		b.WriteString("  " + label + "{")
		for i, k := range keys {
			if i > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "%s: %q", k, p[k])
		}
		b.WriteString("}")
	}
	// The connection and enqueued-time properties repeat what the line says.
	props("system", m.System, "iothub-connection-device-id", "iothub-connection-module-id", "iothub-enqueuedtime", "iothub-message-source")
	props("properties", m.Application)
	return b.String()
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
