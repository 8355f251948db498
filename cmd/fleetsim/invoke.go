package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

func invokeCommand() *command {
	return &command{
		name: "invoke", args: "DEVICE-ID METHOD", summary: "call a direct method on a device",
		help: `Calls a direct method on a connected device and prints the status and payload
the device answered with. The command fails when the device is offline or
does not answer within --timeout; the device's own status (even 500) is
printed, not treated as a failure.`,
		examples: []string{
			"fleetsim invoke thermostat-1 reboot",
			`fleetsim invoke thermostat-1 setTemp --payload '{"value":21}' --timeout 10s`,
			"fleetsim invoke thermostat-1 ping -o json | jq .payload",
		},
		setup: func(f *flagSet) action {
			c := addClientFlags(f)
			var payload string
			var timeout, connTimeout time.Duration
			f.fs.StringVar(&payload, "payload", "null", "method payload, `JSON`")
			f.fs.DurationVar(&timeout, "timeout", 30*time.Second, "`DURATION` the device has to answer (5s to 5m)")
			f.fs.DurationVar(&connTimeout, "connect-timeout", 0, "`DURATION` to wait for an offline device to connect (up to 5m)")
			f.cmdLineOnly("payload")
			return func(ctx context.Context, a *app, args []string) error {
				if len(args) != 2 {
					return usagef(f.name, "want DEVICE-ID and METHOD")
				}
				if !json.Valid([]byte(payload)) {
					return usagef(f.name, "--payload is not valid JSON")
				}
				hc, _, err := a.client(f, c)
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(ctx, c.timeout+timeout+connTimeout)
				defer cancel()
				raw, err := hc.Invoke(ctx, args[0], methodRequest{MethodName: args[1], Payload: json.RawMessage(payload),
					ResponseTimeoutInSeconds: int(timeout / time.Second), ConnectTimeoutInSeconds: int(connTimeout / time.Second)})
				if err != nil {
					return hubError(err, fmt.Sprintf("invoke %s on %s", args[1], args[0]))
				}
				return emit(a.stdout, c.output, raw, func(w io.Writer, raw json.RawMessage) error {
					var res struct {
						Status  int             `json:"status"`
						Payload json.RawMessage `json:"payload"`
					}
					if err := json.Unmarshal(raw, &res); err != nil {
						return fmt.Errorf("unexpected answer from the hub: %w", err)
					}
					fmt.Fprintf(w, "status: %d\npayload: ", res.Status)
					return writeJSON(w, res.Payload)
				})
			}
		},
	}
}
