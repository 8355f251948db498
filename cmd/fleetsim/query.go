package main

import (
	"context"
	"encoding/json"
	"io"
	"strings"
)

func queryCommand() *command {
	return &command{
		name: "query", args: `"SELECT ..."`, summary: "run an IoT Hub query over twins or device jobs",
		help: `Runs an IoT Hub query (FROM devices, devices.modules or devices.jobs) and
prints every page of results: a table of the top-level fields, or JSON.`,
		examples: []string{
			`fleetsim query "SELECT * FROM devices WHERE tags.ring = 'canary'"`,
			`fleetsim query "SELECT COUNT() AS n FROM devices WHERE connectionState = 'Connected'"`,
			`fleetsim query "SELECT * FROM devices.jobs WHERE devices.jobs.jobId = 'reboot-1'" -o json`,
		},
		setup: func(f *flagSet) action {
			c := addClientFlags(f)
			return func(ctx context.Context, a *app, args []string) error {
				if len(args) == 0 {
					return usagef(f.name, `want a query, e.g. "SELECT * FROM devices"`)
				}
				q := strings.Join(args, " ")
				hc, _, err := a.client(f, c)
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(ctx, c.timeout)
				defer cancel()
				raw, err := hc.Query(ctx, q)
				if err != nil {
					return hubError(err, "query")
				}
				return emit(a.stdout, c.output, raw, func(w io.Writer, raw json.RawMessage) error {
					items, err := objects(raw)
					if err != nil {
						return writeJSON(w, raw)
					}
					return tableOf(w, items, genericColumns(items), "No results.")
				})
			}
		},
	}
}
