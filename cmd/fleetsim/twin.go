package main

import (
	"context"
	"encoding/json"
)

func twinCommand() *command {
	return &command{
		name:    "twin",
		summary: "get and update device twins",
		help:    "Reads and patches device twins on a running hub. Twins are shown as JSON.",
		examples: []string{
			"fleetsim twin get thermostat-1",
			`fleetsim twin update thermostat-1 --desired '{"targetTemp":21}'`,
		},
		subs: []*command{twinGet(), twinUpdate()},
	}
}

func twinGet() *command {
	return &command{
		name: "get", args: "DEVICE-ID", summary: "show a device twin",
		help:     "Shows a device twin: tags, desired and reported properties, versions and metadata.",
		examples: []string{"fleetsim twin get thermostat-1"},
		setup: oneIDCommand("DEVICE-ID", func(ctx context.Context, hc hubClient, id string) (json.RawMessage, error) {
			return hc.GetTwin(ctx, id)
		}, "get twin", nil),
	}
}

func twinUpdate() *command {
	return &command{
		name: "update", args: "DEVICE-ID", summary: "patch a device twin's tags or desired properties",
		help: `Patches a device twin: --desired sets desired properties, --tags sets tags,
--patch gives a whole patch. A null value deletes a property. --etag makes the
update conditional on the twin's current etag.`,
		examples: []string{
			`fleetsim twin update thermostat-1 --desired '{"targetTemp":21}'`,
			`fleetsim twin update thermostat-1 --tags '{"ring":"canary"}' --etag AAAAAAAAAAE=`,
			`fleetsim twin update thermostat-1 --patch '{"properties":{"desired":{"fw":null}}}'`,
		},
		setup: func(f *flagSet) action {
			c := addClientFlags(f)
			var desired, tags, patch, etag string
			f.fs.StringVar(&desired, "desired", "", "desired properties, a `JSON` object")
			f.fs.StringVar(&tags, "tags", "", "tags, a `JSON` object")
			f.fs.StringVar(&patch, "patch", "", "a whole twin patch, `JSON`")
			f.fs.StringVar(&etag, "etag", "*", "update only if the twin's etag is `ETAG`")
			f.cmdLineOnly("desired", "tags", "patch", "etag")
			return func(ctx context.Context, a *app, args []string) error {
				if len(args) != 1 {
					return usagef(f.name, "want one DEVICE-ID")
				}
				if desired == "" && tags == "" && patch == "" {
					return usagef(f.name, "nothing to update: give --desired, --tags or --patch")
				}
				p, err := twinPatch(patch, desired, tags)
				if err != nil {
					return usagef(f.name, "%v", err)
				}
				// The etag travels in If-Match, not in the body.
				var m map[string]any
				json.Unmarshal(p, &m)
				delete(m, "etag")
				p, _ = json.Marshal(m)
				hc, _, err := a.client(f, c)
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(ctx, c.timeout)
				defer cancel()
				raw, err := hc.UpdateTwin(ctx, args[0], p, etag)
				if err != nil {
					return hubError(err, "update twin "+args[0])
				}
				return writeJSON(a.stdout, raw)
			}
		},
	}
}
