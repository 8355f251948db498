package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/fleetsim/fleetsim/hubjobs/restapi"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// c2dClient is what the c2d commands need beyond hubClient: a fleetsim
// hub's cloud-to-device endpoints under /fleetsim/v1 (a real IoT hub takes
// these messages over AMQP, which fleetsim does not speak).
type c2dClient interface {
	SendC2D(ctx context.Context, id string, m restapi.C2DMessage) (json.RawMessage, error)
	C2DStatus(ctx context.Context, id string) (json.RawMessage, error)
	PurgeC2D(ctx context.Context, id string) (json.RawMessage, error)
}

func (h restHub) SendC2D(ctx context.Context, id string, m restapi.C2DMessage) (json.RawMessage, error) {
	sent, err := h.c.SendC2D(ctx, id, m)
	if err != nil {
		return nil, err
	}
	return json.Marshal(sent)
}

func (h restHub) C2DStatus(ctx context.Context, id string) (json.RawMessage, error) {
	st, err := h.c.C2DStatus(ctx, id)
	if err != nil {
		return nil, err
	}
	return json.Marshal(st)
}

func (h restHub) PurgeC2D(ctx context.Context, id string) (json.RawMessage, error) {
	p, err := h.c.PurgeC2D(ctx, id)
	if err != nil {
		return nil, err
	}
	return json.Marshal(p)
}

func c2dCommand() *command {
	return &command{
		name:    "c2d",
		summary: "send and list cloud-to-device messages",
		help: `Sends cloud-to-device messages to a device of a running fleetsim hub and shows
its queue. A device gets them on devices/{id}/messages/devicebound/ once it
subscribes; the hub keeps at most 50 waiting per device, each for its time to
live. The queues live in the hub's memory: a hub restart loses what waits.`,
		examples: []string{
			"fleetsim c2d send thermostat-1 'reboot at 02:00'",
			"fleetsim c2d send thermostat-1 --property kind=command --ttl 10m --message-id cmd-7 '{\"op\":\"reboot\"}'",
			"fleetsim c2d send thermostat-1 --file firmware-note.txt",
			"fleetsim c2d list thermostat-1",
		},
		subs: []*command{c2dSend(), c2dList(), c2dPurge()},
	}
}

// properties collects repeated --property k=v flags in order.
type properties []iothub.Property

func (p *properties) String() string {
	var parts []string
	for _, kv := range *p {
		parts = append(parts, kv.Key+"="+kv.Value)
	}
	return strings.Join(parts, ",")
}

func (p *properties) Set(s string) error {
	k, v, ok := strings.Cut(s, "=")
	if !ok {
		return errors.New("want NAME=VALUE")
	}
	if err := iothub.CheckC2DPropertyName(k); err != nil {
		return err
	}
	*p = append(*p, iothub.Property{Key: k, Value: v})
	return nil
}

func c2dSend() *command {
	return &command{
		name: "send", args: "DEVICE-ID [BODY|-]", summary: "queue a cloud-to-device message for a device",
		help: `Queues a message for a device. The body is the BODY argument, the file given
with --file, or standard input with '-'. --property adds an application
property (repeat it for more); --ttl is the time to live (default the hub's,
one hour; at most two days). The hub answers with the message id, and refuses
a 51st waiting message (DeviceMaximumQueueDepthExceeded) or a body over 64 KB.`,
		examples: []string{
			"fleetsim c2d send thermostat-1 'hello'",
			"fleetsim c2d send thermostat-1 --property kind=command --correlation-id op-1 --ttl 30s '{\"op\":\"ping\"}'",
			"echo hello | fleetsim c2d send thermostat-1 -",
		},
		setup: func(f *flagSet) action {
			c := addClientFlags(f)
			var props properties
			var file, mid, cid, ct, ce string
			var ttl time.Duration
			f.fs.Var(&props, "property", "application property `NAME=VALUE` (repeatable)")
			f.fs.StringVar(&file, "file", "", "read the body from `FILE`")
			f.fs.DurationVar(&ttl, "ttl", 0, "time to live, a `DURATION` of whole seconds (default the hub's, 1h)")
			f.fs.StringVar(&mid, "message-id", "", "message `ID` (default: a generated UUID)")
			f.fs.StringVar(&cid, "correlation-id", "", "correlation `ID`")
			f.fs.StringVar(&ct, "content-type", "", "content `TYPE`, e.g. application/json")
			f.fs.StringVar(&ce, "content-encoding", "", "content `ENCODING`, e.g. utf-8")
			f.cmdLineOnly("property", "file", "ttl", "message-id", "correlation-id", "content-type", "content-encoding")
			return func(ctx context.Context, a *app, args []string) error {
				if len(args) < 1 || len(args) > 2 {
					return usagef(f.name, "want DEVICE-ID and a BODY, '-' or --file")
				}
				if (len(args) == 2) == (file != "") {
					return usagef(f.name, "give the body as an argument, '-' or --file, once")
				}
				if ttl < 0 || ttl%time.Second != 0 {
					return usagef(f.name, "--ttl %s: want a positive number of whole seconds", ttl)
				}
				var body []byte
				var err error
				switch {
				case file != "":
					body, err = os.ReadFile(file)
				case args[1] == "-":
					body, err = io.ReadAll(io.LimitReader(a.stdin, iothub.MaxC2DBytes+1))
				default:
					body = []byte(args[1])
				}
				if err != nil {
					return fmt.Errorf("read the message body: %w", err)
				}
				m := restapi.C2DMessage{MessageID: mid, CorrelationID: cid, ContentType: ct, ContentEncoding: ce, TTLSeconds: int64(ttl / time.Second)}
				if json.Valid(body) || isText(body) {
					m.Data = string(body)
				} else {
					m.DataBase64 = body
				}
				if len(props) > 0 {
					m.Properties = map[string]string{}
					for _, p := range props {
						m.Properties[p.Key] = p.Value
					}
				}
				hc, err := a.c2dClient(f, c)
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(ctx, c.timeout)
				defer cancel()
				raw, err := hc.SendC2D(ctx, args[0], m)
				if err != nil {
					return hubError(err, "send to "+args[0])
				}
				return emit(a.stdout, c.output, raw, func(w io.Writer, raw json.RawMessage) error {
					var s struct {
						MessageID  string    `json:"messageId"`
						ExpiryTime time.Time `json:"expiryTimeUtc"`
						Queued     int       `json:"queued"`
					}
					if err := json.Unmarshal(raw, &s); err != nil {
						return fmt.Errorf("unexpected answer from the hub: %w", err)
					}
					_, err := fmt.Fprintf(w, "Queued message %s for %s (%d waiting, expires %s).\n", s.MessageID, args[0], s.Queued, s.ExpiryTime.Format(time.RFC3339))
					return err
				})
			}
		},
	}
}

// isText reports whether b is UTF-8 text without control characters other
// than tab and line ends, which travels as "data" rather than base64.
func isText(b []byte) bool {
	s := string(b)
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 && r != '\t' && r != '\n' && r != '\r' {
			return false
		}
	}
	return true
}

func c2dList() *command {
	return &command{
		name: "list", args: "DEVICE-ID", summary: "show a device's waiting messages and counts",
		help: `Shows the messages waiting for a device, in delivery order (enqueued, or
delivered and waiting for the device's PUBACK), and the queue's counts since
the hub started: sent, delivered (redeliveries too), completed, expired,
dead-lettered (delivered ten times without a PUBACK) and purged.`,
		examples: []string{"fleetsim c2d list thermostat-1", "fleetsim c2d list thermostat-1 -o json | jq .counts"},
		setup:    c2dDeviceAction("list messages of", c2dClient.C2DStatus, writeC2DStatus),
	}
}

func writeC2DStatus(w io.Writer, raw json.RawMessage) error {
	var st struct {
		DeviceID string `json:"deviceId"`
		Messages []struct {
			MessageID     string    `json:"messageId"`
			State         string    `json:"state"`
			DeliveryCount int       `json:"deliveryCount"`
			Size          int       `json:"size"`
			ExpiryTime    time.Time `json:"expiryTimeUtc"`
		} `json:"messages"`
		Counts struct {
			Queued                                                    int
			Sent, Delivered, Completed, Expired, DeadLettered, Purged int64
		} `json:"counts"`
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		return fmt.Errorf("unexpected answer from the hub: %w", err)
	}
	k := st.Counts
	fmt.Fprintf(w, "device %s: %d waiting; sent %d, delivered %d, completed %d, expired %d, dead-lettered %d, purged %d\n",
		st.DeviceID, k.Queued, k.Sent, k.Delivered, k.Completed, k.Expired, k.DeadLettered, k.Purged)
	if len(st.Messages) == 0 {
		_, err := io.WriteString(w, "No messages waiting.\n")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "MESSAGE ID\tSTATE\tDELIVERIES\tSIZE\tEXPIRES")
	for _, m := range st.Messages {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\n", m.MessageID, m.State, m.DeliveryCount, m.Size, m.ExpiryTime.Format(time.RFC3339))
	}
	return tw.Flush()
}

func c2dPurge() *command {
	return &command{
		name: "purge", args: "DEVICE-ID", summary: "remove every message waiting for a device",
		help:     "Removes every cloud-to-device message waiting for a device and says how many there were.",
		examples: []string{"fleetsim c2d purge thermostat-1"},
		setup:    c2dDeviceAction("purge messages of", c2dClient.PurgeC2D, writeC2DPurged),
	}
}

func writeC2DPurged(w io.Writer, raw json.RawMessage) error {
	var p restapi.C2DPurged
	if err := json.Unmarshal(raw, &p); err != nil {
		return fmt.Errorf("unexpected answer from the hub: %w", err)
	}
	_, err := fmt.Fprintf(w, "Purged %d messages of %s.\n", p.TotalMessagesPurged, p.DeviceID)
	return err
}

// c2dDeviceAction is the setup of a c2d command that takes one DEVICE-ID:
// it makes one call to the hub and prints the answer with write (or as JSON).
func c2dDeviceAction(what string, call func(c2dClient, context.Context, string) (json.RawMessage, error), write func(io.Writer, json.RawMessage) error) func(f *flagSet) action {
	return func(f *flagSet) action {
		c := addClientFlags(f)
		return func(ctx context.Context, a *app, args []string) error {
			if len(args) != 1 {
				return usagef(f.name, "want one DEVICE-ID")
			}
			hc, err := a.c2dClient(f, c)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, c.timeout)
			defer cancel()
			raw, err := call(hc, ctx, args[0])
			if err != nil {
				return hubError(err, what+" "+args[0])
			}
			return emit(a.stdout, c.output, raw, write)
		}
	}
}

// c2dClient connects a c2d command to the hub.
func (a *app) c2dClient(f *flagSet, c *clientFlags) (c2dClient, error) {
	hc, _, err := a.client(f, c)
	if err != nil {
		return nil, err
	}
	cc, ok := hc.(c2dClient)
	if !ok {
		return nil, errors.New("this hub client cannot send cloud-to-device messages")
	}
	return cc, nil
}
