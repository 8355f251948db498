package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

var deviceColumns = []column{
	{"DEVICE ID", "deviceId"}, {"STATUS", "status"}, {"CONNECTION", "connectionState"},
	{"AUTH", "authentication.type"}, {"LAST ACTIVITY", "lastActivityTime"},
}

var deviceDetail = []column{
	{"device", "deviceId"}, {"status", "status"}, {"status reason", "statusReason"},
	{"connection", "connectionState"}, {"connection updated", "connectionStateUpdatedTime"},
	{"last activity", "lastActivityTime"}, {"generation", "generationId"}, {"etag", "etag"},
	{"auth", "authentication.type"}, {"primary thumbprint", "authentication.x509Thumbprint.primaryThumbprint"},
}

func deviceTable(w io.Writer, raw json.RawMessage) error {
	m, err := object(raw)
	if err != nil {
		return err
	}
	return keyValues(w, m, deviceDetail)
}

func devicesCommand() *command {
	return &command{
		name:    "devices",
		summary: "create, list, get and delete device identities",
		help:    "Manages the device identities of a running hub.",
		examples: []string{
			"fleetsim devices create thermostat-1",
			"fleetsim devices list",
			"fleetsim devices connection-string thermostat-1",
		},
		subs: []*command{devicesCreate(), devicesList(), devicesGet(), devicesDelete(), devicesConnStr()},
	}
}

func devicesCreate() *command {
	return &command{
		name: "create", args: "DEVICE-ID", summary: "create a device identity with generated keys or an X.509 certificate",
		help: `Creates a device identity with symmetric keys the hub generates, or with
--x509 a certificate (CN DEVICE-ID) made now, written with its key to
--cert-out as DEVICE-ID.pem and DEVICE-ID-key.pem: self-signed registers the
device by the certificate's thumbprints; ca signs it with --device-ca and
registers a certificateAuthority device (the hub must trust that CA).`,
		examples: []string{
			"fleetsim devices create thermostat-1",
			"fleetsim devices create thermostat-1 -o json",
			"fleetsim devices create sensor-9 --x509 self-signed --cert-out certs",
			"fleetsim devices create sensor-10 --x509 ca --device-ca certs/ca/ca.pem --device-ca-key certs/ca/ca-key.pem --cert-out certs",
		},
		setup: func(f *flagSet) action {
			c := addClientFlags(f)
			x := addX509Flags(f, true)
			return func(ctx context.Context, a *app, args []string) error {
				if len(args) != 1 {
					return usagef(f.name, "want one DEVICE-ID")
				}
				if err := x.check(f.name, true); err != nil {
					return err
				}
				hc, _, err := a.client(f, c)
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(ctx, c.timeout)
				defer cancel()
				return createIdentity(ctx, a, hc, c, x, args[0], "")
			}
		},
	}
}

func devicesGet() *command {
	return &command{
		name: "get", args: "DEVICE-ID", summary: "show a device identity",
		help:     "Shows a device identity. The keys are shown with -o json only.",
		examples: []string{"fleetsim devices get thermostat-1"},
		setup: oneIDCommand("DEVICE-ID", func(ctx context.Context, hc hubClient, id string) (json.RawMessage, error) {
			return hc.GetDevice(ctx, id)
		}, "get device", deviceTable),
	}
}

func devicesList() *command {
	return &command{
		name: "list", summary: "list device identities",
		help:     "Lists the hub's device identities.",
		examples: []string{"fleetsim devices list", "fleetsim devices list -o json"},
		setup: func(f *flagSet) action {
			c := addClientFlags(f)
			return func(ctx context.Context, a *app, args []string) error {
				if len(args) > 0 {
					return usagef(f.name, "takes no arguments, got %q", args[0])
				}
				hc, _, err := a.client(f, c)
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(ctx, c.timeout)
				defer cancel()
				raw, err := hc.ListDevices(ctx)
				if err != nil {
					return hubError(err, "list devices")
				}
				return emit(a.stdout, c.output, raw, func(w io.Writer, raw json.RawMessage) error {
					items, err := objects(raw)
					if err != nil {
						return err
					}
					return tableOf(w, items, deviceColumns, "No devices.")
				})
			}
		},
	}
}

func devicesDelete() *command {
	return &command{
		name: "delete", args: "DEVICE-ID", summary: "delete a device identity",
		help:     "Deletes a device identity and its twin.",
		examples: []string{"fleetsim devices delete thermostat-1"},
		setup: func(f *flagSet) action {
			c := addClientFlags(f)
			return func(ctx context.Context, a *app, args []string) error {
				if len(args) != 1 {
					return usagef(f.name, "want one DEVICE-ID")
				}
				hc, _, err := a.client(f, c)
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(ctx, c.timeout)
				defer cancel()
				if err := hc.DeleteDevice(ctx, args[0]); err != nil {
					return hubError(err, "delete device "+args[0])
				}
				if c.output == "json" {
					return writeJSON(a.stdout, json.RawMessage(fmt.Sprintf(`{"deleted":%q}`, args[0])))
				}
				_, err = fmt.Fprintf(a.stdout, "Deleted device %s\n", args[0])
				return err
			}
		},
	}
}

func devicesConnStr() *command {
	return &command{
		name: "connection-string", args: "DEVICE-ID", summary: "print a device's connection string",
		help: `Prints the connection string a device SDK uses to connect, with the primary
key and GatewayHostName set to the hub's MQTT address.`,
		examples: []string{"fleetsim devices connection-string thermostat-1", "export DEVICE_CONNECTION_STRING=$(fleetsim devices connection-string thermostat-1)"},
		setup: func(f *flagSet) action {
			c := addClientFlags(f)
			return func(ctx context.Context, a *app, args []string) error {
				if len(args) != 1 {
					return usagef(f.name, "want one DEVICE-ID")
				}
				hc, conn, err := a.client(f, c)
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(ctx, c.timeout)
				defer cancel()
				raw, err := hc.GetDevice(ctx, args[0])
				if err != nil {
					return hubError(err, "get device "+args[0])
				}
				m, err := object(raw)
				if err != nil {
					return err
				}
				key := field(m, "authentication.symmetricKey.primaryKey")
				if key == "" {
					return fmt.Errorf("device %s has no symmetric key (auth %s)", args[0], orDash(field(m, "authentication.type")))
				}
				cs := iothub.ConnectionString{HostName: conn.HostName, DeviceID: args[0], SharedAccessKey: key}
				if conn.MQTTAddr != "" {
					cs.GatewayHostName = dialable(conn.MQTTAddr)
				}
				if c.output == "json" {
					b, _ := json.Marshal(map[string]string{"deviceId": args[0], "connectionString": cs.String()})
					return writeJSON(a.stdout, b)
				}
				_, err = fmt.Fprintln(a.stdout, cs.String())
				return err
			}
		},
	}
}
