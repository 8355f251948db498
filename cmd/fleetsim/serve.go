package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
)

type serveFlags struct {
	data, hostname, httpsAddr, mqttAddr, scenario, pacing, pprof string
	caCert, caKey, ownerKeyFile                                  string
	trustCA                                                      stringList
	maxInFlight                                                  int
}

func serveCommand() *command {
	return &command{
		name:    "serve",
		summary: "run the MQTT broker and the hub for real devices and the Azure SDKs",
		help: `Runs the MQTT broker (MQTT over TLS, and MQTT over WebSocket on the HTTPS
port) and the hub's service REST API, until interrupted (Ctrl-C, SIGTERM). It
prints the service connection string, the CA certificate to trust and the
ports, and writes them to DIR/connection.json, where the client commands
(jobs, devices, twin, invoke, query) find them.

Prometheus metrics are served at /metrics on the HTTPS port, without a token.
The web console is served at / on the HTTPS port: open the one-time login URL
printed at start, or sign in with a service connection string.

The data directory keeps the device registry, twins, jobs, the generated CA
and server certificate, and the shared access policies across restarts. With
--scenario the scenario's simulated fleet runs against the hub as well.

To hand out the CA and a service connection string before the hub first
starts (a Kubernetes Secret, say), give the hub that CA with --ca-cert and
--ca-key, and the iothubowner policy's key with --owner-key-file; the
connection string is then
HostName=<--hostname>;SharedAccessKeyName=iothubowner;SharedAccessKey=<key>.

Devices authenticate with SAS keys or X.509 certificates. CA-signed
(certificateAuthority) devices need their CA trusted: --trust-ca FILE, or
the PEM file copied into DIR/trusted-ca/. 'fleetsim certs' makes a test CA
and device certificates.`,
		examples: []string{
			"fleetsim serve",
			"fleetsim serve --data /var/lib/fleetsim --hostname myhub.local --https-addr :443",
			"fleetsim serve --scenario quickstart --pacing S1",
			"FLEETSIM_PPROF=localhost:6060 fleetsim serve",
			"fleetsim serve --config fleetsim.yaml",
			"fleetsim serve --hostname fleetsim-hub.fleetsim.svc --ca-cert ca/ca.pem --ca-key ca/ca-key.pem --owner-key-file owner.key",
			"fleetsim serve --trust-ca certs/ca/ca.pem",
		},
		setup: func(f *flagSet) action {
			var o serveFlags
			f.fs.StringVar(&o.data, "data", "./fleetsim-data", "`DIR` for the stores, certificates and connection.json")
			f.fs.StringVar(&o.hostname, "hostname", "localhost", "hub host `NAME` in connection strings and the certificate")
			f.fs.StringVar(&o.httpsAddr, "https-addr", ":8443", "`ADDR` of the REST API and MQTT over WebSocket")
			f.fs.StringVar(&o.mqttAddr, "mqtt-addr", ":8883", "`ADDR` of MQTT over TLS")
			f.fs.StringVar(&o.scenario, "scenario", "", "also run this scenario's simulated fleet (`NAME` or file)")
			f.fs.StringVar(&o.pacing, "pacing", "", "jobs pacing `PROFILE`: unlimited, S1, S2, S3, optionally xN units (S2x4); default the --scenario's, else unlimited")
			f.fs.Var(&o.trustCA, "trust-ca", "trust the CA certificate(s) in PEM `FILE` for certificateAuthority devices (repeatable; DIR/trusted-ca/*.pem are trusted too)")
			f.fs.IntVar(&o.maxInFlight, "max-in-flight", 0, "bound the jobs' device operations in flight to `N` (default the --scenario's, else 1000)")
			f.fs.StringVar(&o.pprof, "pprof", "", "serve net/http/pprof on `ADDR`, e.g. localhost:6060; off when empty")
			f.fs.StringVar(&o.caCert, "ca-cert", "", "sign the server certificate with the CA certificate in `FILE` (PEM; needs --ca-key) instead of a CA generated in --data")
			f.fs.StringVar(&o.caKey, "ca-key", "", "the EC private key `FILE` of --ca-cert (PEM, SEC 1 or PKCS #8)")
			f.fs.StringVar(&o.ownerKeyFile, "owner-key-file", "", "set the iothubowner policy's primary key to the base64 key in `FILE` instead of a generated one")
			return func(ctx context.Context, a *app, args []string) error {
				if len(args) > 0 {
					return usagef(f.name, "takes no arguments, got %q", args[0])
				}
				return a.serve(ctx, f, o)
			}
		},
	}
}

func (a *app) serve(ctx context.Context, f *flagSet, o serveFlags) error {
	log, err := a.logger(f)
	if err != nil {
		return err
	}
	so := serveOptions{DataDir: o.data, Hostname: o.hostname, HTTPSAddr: o.httpsAddr, MQTTAddr: o.mqttAddr, Pacing: o.pacing, MaxInFlight: o.maxInFlight, Logger: log,
		CACertFile: o.caCert, CAKeyFile: o.caKey, TrustedCAFiles: o.trustCA}
	if (o.caCert == "") != (o.caKey == "") {
		return usagef(f.name, "--ca-cert and --ca-key go together")
	}
	if o.ownerKeyFile != "" {
		b, err := os.ReadFile(o.ownerKeyFile)
		if err != nil {
			return usagef(f.name, "--owner-key-file: %v", err)
		}
		so.OwnerKey = strings.TrimSpace(string(b))
	}
	if o.scenario != "" {
		if so.Scenario, err = a.loadScenario(f.name, o.scenario); err != nil {
			return err
		}
		if so.Plan, err = a.planFleet(f.name, so.Scenario, playOptions{}); err != nil {
			return err
		}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()

	if o.pprof != "" {
		ln, err := net.Listen("tcp", o.pprof)
		if err != nil {
			return fmt.Errorf("pprof listener: %w", err)
		}
		mux := http.NewServeMux()
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
		srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
		served := make(chan struct{})
		go func() {
			defer close(served)
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error().Err(err).Msg("pprof server stopped")
			}
		}()
		defer func() {
			srv.Close()
			<-served
		}()
		log.Info().Str("addr", ln.Addr().String()).Msg("pprof listening")
		fmt.Fprintf(a.stdout, "pprof:            http://%s/debug/pprof/\n", ln.Addr())
	}

	so.Ready = func(ep endpoints) { printEndpoints(a, o.data, o.ownerKeyFile, ep) }
	hub := a.hub
	if hub == nil {
		hub = serveHub
	}
	err = hub(ctx, so)
	if err != nil && !(errors.Is(err, context.Canceled) && ctx.Err() != nil) {
		return fmt.Errorf("serve: %w", err)
	}
	fmt.Fprintln(a.stdout, "fleetsim hub stopped")
	return nil
}

// printEndpoints tells people how to reach the hub. A key that came from
// --owner-key-file is not printed: the user has it, and logs (a pod's, say)
// are read more widely than a Secret.
func printEndpoints(a *app, dataDir, ownerKeyFile string, ep endpoints) {
	tw := tabwriter.NewWriter(a.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "fleetsim hub %s is ready\n", ep.HostName)
	cs := ep.ServiceConnectionString
	if i := strings.LastIndex(cs, "SharedAccessKey="); ownerKeyFile != "" && i >= 0 {
		cs = cs[:i] + "SharedAccessKey=<the key in " + ownerKeyFile + ">"
	}
	fmt.Fprintf(tw, "service connection string:\t%s\n", cs)
	fmt.Fprintf(tw, "CA certificate:\t%s\n", ep.CAFile)
	if ep.HTTPSAddr != "" {
		fmt.Fprintf(tw, "REST API:\thttps://%s (MQTT over WebSocket at /$iothub/websocket)\n", dialable(ep.HTTPSAddr))
		fmt.Fprintf(tw, "metrics:\thttps://%s/metrics\n", dialable(ep.HTTPSAddr))
	}
	if ep.ConsoleLoginURL != "" {
		fmt.Fprintf(tw, "web console:\t%s (sign in once with this URL, or with a service connection string at %s)\n", ep.ConsoleLoginURL, ep.ConsoleURL)
	}
	if ep.MQTTAddr != "" {
		fmt.Fprintf(tw, "MQTT over TLS:\t%s\n", dialable(ep.MQTTAddr))
	}
	fmt.Fprintf(tw, "connection file:\t%s/connection.json (used by fleetsim jobs|devices|twin|invoke|query)\n", dataDir)
	if n, ok := openFilesLimit(); ok {
		fmt.Fprintf(tw, "open files limit:\t%d (each connected device holds one)\n", n)
	}
	tw.Flush()
	fmt.Fprintln(a.stdout, "Press Ctrl-C to stop.")
}
