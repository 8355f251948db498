// Command fleetsim is a stand-in for Azure IoT Hub's device-management side:
// an MQTT broker that speaks IoT Hub's device dialect, the service REST API
// the Azure SDKs call, IoT Hub Jobs v2, and simulated fleets driven by
// scenario files.
//
// Usage:
//
//	fleetsim run SCENARIO       play a scenario on an in-process hub and fleet, print a report
//	fleetsim serve              run the broker and the hub for real devices and SDKs
//	fleetsim jobs ...           create, get, list and cancel jobs on a running hub
//	fleetsim devices ...        create, list, get and delete device identities
//	fleetsim twin ...           get and update device twins
//	fleetsim invoke DEV METHOD  call a direct method
//	fleetsim monitor            print device events (telemetry, methods, twins) as they happen
//	fleetsim query "SELECT ..." run an IoT Hub query
//	fleetsim scenarios          list, show, validate the scenarios; print their schema
//	fleetsim version            print the version and VCS revision
//	fleetsim completion SHELL   print a bash, zsh or fish completion script
//
// Every command takes --help. Settings come from flags, FLEETSIM_* environment
// variables and an optional YAML or JSON config file (--config), in that order
// of precedence. Exit codes: 0 success, 1 failure (including failed scenario
// expectations), 2 usage error or invalid scenario, 130 a run interrupted
// by SIGINT or SIGTERM (after its partial report).
package main

import (
	"context"
	"os"
)

func main() {
	keepStacks(os.Args[1:])
	os.Exit(run(context.Background(), os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
