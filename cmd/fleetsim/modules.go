package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
)

// identityClient is what the module commands and the X.509 device
// registration need of the hub beyond hubClient.
type identityClient interface {
	PutDevice(ctx context.Context, device any, id string) (json.RawMessage, error)
	PutModule(ctx context.Context, module any, deviceID, moduleID string) (json.RawMessage, error)
	GetModule(ctx context.Context, deviceID, moduleID string) (json.RawMessage, error)
	ListModules(ctx context.Context, deviceID string) (json.RawMessage, error)
	DeleteModule(ctx context.Context, deviceID, moduleID string) error
	GetModuleTwin(ctx context.Context, deviceID, moduleID string) (json.RawMessage, error)
	UpdateModuleTwin(ctx context.Context, deviceID, moduleID string, patch json.RawMessage, etag string) (json.RawMessage, error)
	InvokeModule(ctx context.Context, deviceID, moduleID string, req methodRequest) (json.RawMessage, error)
}

func (h restHub) PutDevice(ctx context.Context, device any, id string) (json.RawMessage, error) {
	return h.c.PutDevice(ctx, device, id, "")
}

func (h restHub) PutModule(ctx context.Context, module any, deviceID, moduleID string) (json.RawMessage, error) {
	return h.c.PutModule(ctx, module, deviceID, moduleID, "")
}

func (h restHub) GetModule(ctx context.Context, deviceID, moduleID string) (json.RawMessage, error) {
	return h.c.GetModule(ctx, deviceID, moduleID)
}

func (h restHub) ListModules(ctx context.Context, deviceID string) (json.RawMessage, error) {
	return h.c.ListModules(ctx, deviceID)
}

func (h restHub) DeleteModule(ctx context.Context, deviceID, moduleID string) error {
	return h.c.DeleteModule(ctx, deviceID, moduleID, "*")
}

func (h restHub) GetModuleTwin(ctx context.Context, deviceID, moduleID string) (json.RawMessage, error) {
	return h.c.GetModuleTwin(ctx, deviceID, moduleID)
}

func (h restHub) UpdateModuleTwin(ctx context.Context, deviceID, moduleID string, patch json.RawMessage, etag string) (json.RawMessage, error) {
	return h.c.UpdateModuleTwin(ctx, deviceID, moduleID, patch, etag)
}

func (h restHub) InvokeModule(ctx context.Context, deviceID, moduleID string, req methodRequest) (json.RawMessage, error) {
	mr := iothub.MethodRequest{MethodName: req.MethodName, Payload: req.Payload}
	if req.ResponseTimeoutInSeconds > 0 {
		mr.ResponseTimeoutInSeconds = &req.ResponseTimeoutInSeconds
	}
	if req.ConnectTimeoutInSeconds > 0 {
		mr.ConnectTimeoutInSeconds = &req.ConnectTimeoutInSeconds
	}
	res, err := h.c.InvokeModuleMethod(ctx, deviceID, moduleID, mr)
	if err != nil {
		return nil, err
	}
	return json.Marshal(res)
}

// identities is the hub client's identityClient.
func identities(hc hubClient) (identityClient, error) {
	ic, ok := hc.(identityClient)
	if !ok {
		return nil, errors.New("this hub client cannot manage modules or X.509 identities")
	}
	return ic, nil
}

// identityClientFor is the hub's client for the command's flags, as an
// identityClient.
func (a *app) identityClientFor(f *flagSet, c *clientFlags) (identityClient, error) {
	hc, _, err := a.client(f, c)
	if err != nil {
		return nil, err
	}
	return identities(hc)
}

// x509Flags are --x509 and the files it writes or reads.
type x509Flags struct {
	mode, certOut, deviceCA, deviceCAKey string
}

func addX509Flags(f *flagSet, withCA bool) *x509Flags {
	x := &x509Flags{}
	if withCA {
		f.fs.StringVar(&x.mode, "x509", "", "authenticate with an X.509 certificate made now: self-signed (registered by its thumbprints) or ca (signed by --device-ca, CN = the device id)")
		f.fs.StringVar(&x.deviceCA, "device-ca", "", "CA certificate `FILE` that signs the certificate of --x509 ca; the hub must trust it (fleetsim serve --trust-ca)")
		f.fs.StringVar(&x.deviceCAKey, "device-ca-key", "", "private key `FILE` of --device-ca (EC, PEM)")
	} else {
		f.fs.StringVar(&x.mode, "x509", "", "authenticate with an X.509 certificate made now: self-signed (registered by its thumbprints)")
	}
	f.fs.StringVar(&x.certOut, "cert-out", ".", "write the certificate and its private key (mode 0600) into `DIR`")
	return x
}

// check validates the flags of a command that makes a certificate.
func (x *x509Flags) check(cmd string, withCA bool) error {
	switch x.mode {
	case "":
		if x.deviceCA != "" || x.deviceCAKey != "" {
			return usagef(cmd, "--device-ca needs --x509 ca")
		}
	case "self-signed":
		if x.deviceCA != "" {
			return usagef(cmd, "--device-ca is for --x509 ca")
		}
	case "ca":
		if !withCA {
			return usagef(cmd, "--x509 %q: want self-signed (fleetsim's modules take SAS keys or self-signed certificates)", x.mode)
		}
		if x.deviceCA == "" || x.deviceCAKey == "" {
			return usagef(cmd, "--x509 ca needs --device-ca FILE and --device-ca-key FILE")
		}
	default:
		want := "self-signed or ca"
		if !withCA {
			want = "self-signed"
		}
		return usagef(cmd, "--x509 %q: want %s", x.mode, want)
	}
	return nil
}

// certificate makes the certificate of identity cn (a device id, or
// deviceId/moduleId), writes it and its key into --cert-out as name.pem and
// name-key.pem, and returns the registry authentication that accepts it.
func (x *x509Flags) certificate(cn, name string) (auth map[string]any, certFile, keyFile string, err error) {
	var cert tls.Certificate
	switch x.mode {
	case "self-signed":
		if cert, err = tlsutil.SelfSigned(cn, tlsutil.Validity{}); err != nil {
			return nil, "", "", err
		}
		sha1, sha256 := tlsutil.Thumbprints(cert.Certificate[0])
		auth = map[string]any{"type": "selfSigned", "x509Thumbprint": map[string]string{"primaryThumbprint": sha1, "secondaryThumbprint": sha256}}
	case "ca":
		ca, err := tlsutil.LoadDeviceCAFiles(x.deviceCA, x.deviceCAKey)
		if err != nil {
			return nil, "", "", err
		}
		if cert, err = ca.Issue(cn, tlsutil.Validity{}); err != nil {
			return nil, "", "", err
		}
		auth = map[string]any{"type": "certificateAuthority"}
	}
	certFile, keyFile, err = tlsutil.WriteDevice(x.certOut, name, cert)
	return auth, certFile, keyFile, err
}

// createIdentity registers a device (moduleID "") or module with generated
// keys, or with the certificate --x509 asks for, and prints it.
func createIdentity(ctx context.Context, a *app, hc hubClient, c *clientFlags, x *x509Flags, deviceID, moduleID string) error {
	what, cn, name := "create device "+deviceID, deviceID, deviceID
	if moduleID != "" {
		what, cn, name = fmt.Sprintf("create module %s/%s", deviceID, moduleID), deviceID+"/"+moduleID, deviceID+"."+moduleID
	}
	auth := map[string]any{"type": "sas", "symmetricKey": map[string]string{"primaryKey": "", "secondaryKey": ""}}
	var certFile, keyFile string
	if x.mode != "" {
		var err error
		if auth, certFile, keyFile, err = x.certificate(cn, name); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	var raw json.RawMessage
	var err error
	switch {
	case moduleID == "" && x.mode == "":
		raw, err = hc.CreateDevice(ctx, deviceID)
	default:
		ic, ierr := identities(hc)
		if ierr != nil {
			return ierr
		}
		if moduleID == "" {
			raw, err = ic.PutDevice(ctx, map[string]any{"deviceId": deviceID, "authentication": auth}, deviceID)
		} else {
			raw, err = ic.PutModule(ctx, map[string]any{"deviceId": deviceID, "moduleId": moduleID, "authentication": auth}, deviceID, moduleID)
		}
	}
	if err != nil {
		return hubError(err, what)
	}
	table := deviceTable
	if moduleID != "" {
		table = moduleTable
	}
	if err := emit(a.stdout, c.output, raw, table); err != nil {
		return err
	}
	if certFile != "" {
		w := a.stdout
		if c.output == "json" {
			w = a.stderr
		}
		fmt.Fprintf(w, "certificate: %s\nkey:         %s (keep it private)\n", certFile, keyFile)
	}
	return nil
}

var moduleColumns = []column{
	{"MODULE ID", "moduleId"}, {"CONNECTION", "connectionState"}, {"AUTH", "authentication.type"},
	{"MANAGED BY", "managedBy"}, {"LAST ACTIVITY", "lastActivityTime"},
}

var moduleDetail = []column{
	{"device", "deviceId"}, {"module", "moduleId"}, {"managed by", "managedBy"},
	{"connection", "connectionState"}, {"connection updated", "connectionStateUpdatedTime"},
	{"last activity", "lastActivityTime"}, {"generation", "generationId"}, {"etag", "etag"},
	{"auth", "authentication.type"}, {"primary thumbprint", "authentication.x509Thumbprint.primaryThumbprint"},
}

func moduleTable(w io.Writer, raw json.RawMessage) error {
	m, err := object(raw)
	if err != nil {
		return err
	}
	return keyValues(w, m, moduleDetail)
}

func modulesCommand() *command {
	return &command{
		name:    "modules",
		summary: "create, list, get and delete module identities; module twins and methods",
		help: `Manages the module identities of a device on a running hub, their twins, and
calls their direct methods. A module connects over MQTT with client id
DEVICE/MODULE and its own SAS key or self-signed certificate.`,
		examples: []string{
			"fleetsim modules create thermostat-1 telemetry",
			"fleetsim modules create thermostat-1 edge --x509 self-signed --cert-out certs",
			"fleetsim modules list thermostat-1",
			`fleetsim modules twin thermostat-1 telemetry --desired '{"interval":30}'`,
			`fleetsim modules invoke thermostat-1 telemetry ping --payload '{}'`,
		},
		subs: []*command{modulesCreate(), modulesList(), modulesGet(), modulesDelete(), modulesTwin(), modulesInvoke()},
	}
}

// moduleArgs is the setup of a command taking DEVICE-ID MODULE-ID.
func moduleArgs(run func(ctx context.Context, a *app, c *clientFlags, ic identityClient, dev, mod string) error) func(f *flagSet) action {
	return func(f *flagSet) action {
		c := addClientFlags(f)
		return func(ctx context.Context, a *app, args []string) error {
			if len(args) != 2 {
				return usagef(f.name, "want DEVICE-ID and MODULE-ID")
			}
			ic, err := a.identityClientFor(f, c)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(ctx, c.timeout)
			defer cancel()
			return run(ctx, a, c, ic, args[0], args[1])
		}
	}
}

func modulesCreate() *command {
	return &command{
		name: "create", args: "DEVICE-ID MODULE-ID", summary: "create a module identity",
		help: `Creates a module identity on a device, with symmetric keys the hub generates,
or with --x509 self-signed: a certificate (CN DEVICE-ID/MODULE-ID) and its key
are written to --cert-out as DEVICE-ID.MODULE-ID.pem and DEVICE-ID.MODULE-ID-key.pem,
and the module is registered with the certificate's thumbprints.`,
		examples: []string{
			"fleetsim modules create thermostat-1 telemetry",
			"fleetsim modules create thermostat-1 edge --x509 self-signed --cert-out certs",
		},
		setup: func(f *flagSet) action {
			c := addClientFlags(f)
			x := addX509Flags(f, false)
			return func(ctx context.Context, a *app, args []string) error {
				if len(args) != 2 {
					return usagef(f.name, "want DEVICE-ID and MODULE-ID")
				}
				if err := x.check(f.name, false); err != nil {
					return err
				}
				hc, _, err := a.client(f, c)
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(ctx, c.timeout)
				defer cancel()
				return createIdentity(ctx, a, hc, c, x, args[0], args[1])
			}
		},
	}
}

func modulesList() *command {
	return &command{
		name: "list", args: "DEVICE-ID", summary: "list a device's module identities",
		help:     "Lists the module identities of a device.",
		examples: []string{"fleetsim modules list thermostat-1", "fleetsim modules list thermostat-1 -o json"},
		setup: func(f *flagSet) action {
			c := addClientFlags(f)
			return func(ctx context.Context, a *app, args []string) error {
				if len(args) != 1 {
					return usagef(f.name, "want one DEVICE-ID")
				}
				ic, err := a.identityClientFor(f, c)
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(ctx, c.timeout)
				defer cancel()
				raw, err := ic.ListModules(ctx, args[0])
				if err != nil {
					return hubError(err, "list modules of "+args[0])
				}
				return emit(a.stdout, c.output, raw, func(w io.Writer, raw json.RawMessage) error {
					items, err := objects(raw)
					if err != nil {
						return err
					}
					return tableOf(w, items, moduleColumns, "No modules.")
				})
			}
		},
	}
}

func modulesGet() *command {
	return &command{
		name: "get", args: "DEVICE-ID MODULE-ID", summary: "show a module identity",
		help:     "Shows a module identity. Its keys are shown with -o json only.",
		examples: []string{"fleetsim modules get thermostat-1 telemetry"},
		setup: moduleArgs(func(ctx context.Context, a *app, c *clientFlags, ic identityClient, dev, mod string) error {
			raw, err := ic.GetModule(ctx, dev, mod)
			if err != nil {
				return hubError(err, fmt.Sprintf("get module %s/%s", dev, mod))
			}
			return emit(a.stdout, c.output, raw, moduleTable)
		}),
	}
}

func modulesDelete() *command {
	return &command{
		name: "delete", args: "DEVICE-ID MODULE-ID", summary: "delete a module identity",
		help:     "Deletes a module identity and its twin.",
		examples: []string{"fleetsim modules delete thermostat-1 telemetry"},
		setup: moduleArgs(func(ctx context.Context, a *app, c *clientFlags, ic identityClient, dev, mod string) error {
			if err := ic.DeleteModule(ctx, dev, mod); err != nil {
				return hubError(err, fmt.Sprintf("delete module %s/%s", dev, mod))
			}
			if c.output == "json" {
				b, _ := json.Marshal(map[string]string{"deleted": dev + "/" + mod})
				return writeJSON(a.stdout, b)
			}
			_, err := fmt.Fprintf(a.stdout, "Deleted module %s/%s\n", dev, mod)
			return err
		}),
	}
}

func modulesTwin() *command {
	return &command{
		name: "twin", args: "DEVICE-ID MODULE-ID", summary: "show or patch a module twin",
		help: `Shows a module twin as JSON; with --desired, --tags or --patch, patches it
first and shows the result. A null value deletes a property. --etag makes the
update conditional on the twin's current etag.`,
		examples: []string{
			"fleetsim modules twin thermostat-1 telemetry",
			`fleetsim modules twin thermostat-1 telemetry --desired '{"interval":30}'`,
			`fleetsim modules twin thermostat-1 telemetry --patch '{"tags":{"ring":"canary"}}'`,
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
				if len(args) != 2 {
					return usagef(f.name, "want DEVICE-ID and MODULE-ID")
				}
				var p json.RawMessage
				if desired != "" || tags != "" || patch != "" {
					var err error
					if p, err = twinPatch(patch, desired, tags); err != nil {
						return usagef(f.name, "%v", err)
					}
					// The etag travels in If-Match, not in the body.
					var m map[string]any
					json.Unmarshal(p, &m)
					delete(m, "etag")
					p, _ = json.Marshal(m)
				}
				ic, err := a.identityClientFor(f, c)
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(ctx, c.timeout)
				defer cancel()
				dev, mod := args[0], args[1]
				var raw json.RawMessage
				if p == nil {
					raw, err = ic.GetModuleTwin(ctx, dev, mod)
				} else {
					raw, err = ic.UpdateModuleTwin(ctx, dev, mod, p, etag)
				}
				if err != nil {
					return hubError(err, fmt.Sprintf("module twin %s/%s", dev, mod))
				}
				return writeJSON(a.stdout, raw)
			}
		},
	}
}

func modulesInvoke() *command {
	return &command{
		name: "invoke", args: "DEVICE-ID MODULE-ID METHOD", summary: "call a direct method on a module",
		help: `Calls a direct method on a connected module and prints the status and payload
it answered with. The command fails when the module is offline or does not
answer within --timeout; the module's own status is printed, not treated as
a failure.`,
		examples: []string{
			"fleetsim modules invoke thermostat-1 telemetry ping",
			`fleetsim modules invoke thermostat-1 telemetry setInterval --payload '{"seconds":30}' -o json`,
		},
		setup: func(f *flagSet) action {
			c := addClientFlags(f)
			var payload string
			var timeout, connTimeout time.Duration
			f.fs.StringVar(&payload, "payload", "null", "method payload, `JSON`")
			f.fs.DurationVar(&timeout, "timeout", 30*time.Second, "`DURATION` the module has to answer (5s to 5m)")
			f.fs.DurationVar(&connTimeout, "connect-timeout", 0, "`DURATION` to wait for an offline module to connect (up to 5m)")
			f.cmdLineOnly("payload")
			return func(ctx context.Context, a *app, args []string) error {
				if len(args) != 3 {
					return usagef(f.name, "want DEVICE-ID, MODULE-ID and METHOD")
				}
				if !json.Valid([]byte(payload)) {
					return usagef(f.name, "--payload is not valid JSON")
				}
				ic, err := a.identityClientFor(f, c)
				if err != nil {
					return err
				}
				ctx, cancel := context.WithTimeout(ctx, c.timeout+timeout+connTimeout)
				defer cancel()
				raw, err := ic.InvokeModule(ctx, args[0], args[1], methodRequest{MethodName: args[2], Payload: json.RawMessage(payload),
					ResponseTimeoutInSeconds: int(timeout / time.Second), ConnectTimeoutInSeconds: int(connTimeout / time.Second)})
				if err != nil {
					return hubError(err, fmt.Sprintf("invoke %s on %s/%s", args[2], args[0], args[1]))
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
