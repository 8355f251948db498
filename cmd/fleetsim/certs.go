package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
)

// stringList is a repeatable string flag.
type stringList []string

// String implements flag.Value.
func (l *stringList) String() string { return strings.Join(*l, ",") }

// Set implements flag.Value: each use adds one value.
func (l *stringList) Set(v string) error {
	*l = append(*l, v)
	return nil
}

func certsCommand() *command {
	return &command{
		name:    "certs",
		summary: "make a test CA and X.509 device certificates",
		help: `Makes test certificates for X.509 devices: a CA, and device certificates
signed by it (for certificateAuthority devices) or self-signed (for selfSigned
devices, registered with their thumbprints). Files are PEM; private keys are
written with mode 0600 and never printed.`,
		examples: []string{
			"fleetsim certs ca --out certs/ca",
			"fleetsim certs device thermostat-1 --ca certs/ca --out certs/devices",
			"fleetsim certs device sensor-9 --self-signed --out certs/devices",
		},
		subs: []*command{certsCA(), certsDevice()},
	}
}

func certsCA() *command {
	return &command{
		name: "ca", summary: "make a test CA for device certificates",
		help: `Writes DIR/ca.pem (the certificate to trust: fleetsim serve --trust-ca
DIR/ca.pem, or upload it to a real IoT hub) and DIR/ca-key.pem (its private
key, mode 0600). An existing CA is kept unless --force is given.`,
		examples: []string{"fleetsim certs ca --out certs/ca"},
		setup: func(f *flagSet) action {
			var out, name string
			var years int
			var force bool
			f.fs.StringVar(&out, "out", "", "write the CA into `DIR` (required)")
			f.fs.StringVar(&name, "name", "fleetsim test device CA", "the CA's subject common `NAME`")
			f.fs.IntVar(&years, "years", 5, "validity in `YEARS`")
			f.fs.BoolVar(&force, "force", false, "replace an existing CA in DIR")
			return func(_ context.Context, a *app, args []string) error {
				if len(args) > 0 {
					return usagef(f.name, "takes no arguments, got %q", args[0])
				}
				if out == "" {
					return usagef(f.name, "--out DIR is required")
				}
				if years < 1 {
					return usagef(f.name, "--years must be at least 1")
				}
				certFile := filepath.Join(out, tlsutil.CACertFile)
				if _, err := os.Stat(certFile); err == nil && !force {
					return fmt.Errorf("certs ca: %s exists; use --force to replace it", certFile)
				} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
					return fmt.Errorf("certs ca: %w", err)
				}
				ca, err := tlsutil.NewDeviceCA(name, years)
				if err != nil {
					return fmt.Errorf("certs ca: %w", err)
				}
				if err := ca.WriteCA(out); err != nil {
					return fmt.Errorf("certs ca: %w", err)
				}
				fmt.Fprintf(a.stdout, "CA certificate: %s\nCA key:         %s (keep it private)\nvalid until:    %s\n",
					certFile, filepath.Join(out, tlsutil.CAKeyFile), ca.Cert.NotAfter.UTC().Format(time.RFC3339))
				return nil
			}
		},
	}
}

func certsDevice() *command {
	return &command{
		name: "device", args: "DEVICE-ID", summary: "make a device certificate, CA-signed or self-signed",
		help: `Writes DIR/DEVICE-ID.pem and DIR/DEVICE-ID-key.pem (mode 0600): a client
certificate with subject CN DEVICE-ID, signed by the CA in --ca (register the
device with authentication type certificateAuthority) or, with --self-signed,
signed by itself (register it as selfSigned with the printed thumbprints).`,
		examples: []string{
			"fleetsim certs device thermostat-1 --ca certs/ca --out certs/devices",
			"fleetsim certs device sensor-9 --self-signed --out certs/devices --days 30",
		},
		setup: func(f *flagSet) action {
			var out, caDir string
			var days int
			var self bool
			f.fs.StringVar(&out, "out", "", "write the certificate and key into `DIR` (required)")
			f.fs.StringVar(&caDir, "ca", "", "sign with the CA in `DIR` (from fleetsim certs ca)")
			f.fs.BoolVar(&self, "self-signed", false, "make a self-signed certificate instead")
			f.fs.IntVar(&days, "days", 365, "validity in `DAYS`")
			return func(_ context.Context, a *app, args []string) error {
				if len(args) != 1 {
					return usagef(f.name, "takes one DEVICE-ID")
				}
				id := args[0]
				if err := iothub.ValidDeviceID(id); err != nil {
					return usagef(f.name, "%v", err)
				}
				if out == "" {
					return usagef(f.name, "--out DIR is required")
				}
				if (caDir == "") == !self {
					return usagef(f.name, "give either --ca DIR or --self-signed")
				}
				if days < 1 {
					return usagef(f.name, "--days must be at least 1")
				}
				v := tlsutil.Validity{NotBefore: time.Now().Add(-time.Hour)}
				v.NotAfter = v.NotBefore.Add(time.Duration(days) * 24 * time.Hour)
				var cert tls.Certificate
				var err error
				if self {
					cert, err = tlsutil.SelfSigned(id, v)
				} else {
					var ca *tlsutil.DeviceCA
					if ca, err = tlsutil.LoadDeviceCA(caDir); err == nil {
						cert, err = ca.Issue(id, v)
					}
				}
				if err != nil {
					return fmt.Errorf("certs device: %w", err)
				}
				certFile, keyFile, err := tlsutil.WriteDevice(out, id, cert)
				if err != nil {
					return fmt.Errorf("certs device: %w", err)
				}
				sha1Hex, sha256Hex := tlsutil.Thumbprints(cert.Certificate[0])
				auth := "certificateAuthority"
				if self {
					auth = "selfSigned"
				}
				fmt.Fprintf(a.stdout, "certificate:        %s\nkey:                %s (keep it private)\nregister as:        %s\nSHA-1 thumbprint:   %s\nSHA-256 thumbprint: %s\n",
					certFile, keyFile, auth, sha1Hex, sha256Hex)
				return nil
			}
		},
	}
}
