package runner

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sync/errgroup"

	"github.com/fleetsim/fleetsim/hubjobs"
	"github.com/fleetsim/fleetsim/internal/tlsutil"
	"github.com/fleetsim/fleetsim/scenarios"
)

// DeviceCADir is the folder of a run's (or a hosted fleet's) data directory
// that keeps the CA signing its certificateAuthority devices' certificates,
// so that a hub restarted on the directory, and the user, can trust it.
const DeviceCADir = "device-ca"

// ErrNoDeviceCA is returned by Run against a remote hub for a fleet with
// certificateAuthority groups and no Options.DeviceCA: the remote hub must
// trust the CA before the devices connect, so the run cannot make its own.
var ErrNoDeviceCA = errors.New("runner: certificateAuthority devices on a remote hub need a CA the hub trusts")

// fleetCA returns the CA that signs the fleet's certificateAuthority
// devices: given, else kept in dataDir/device-ca (made on first use), else
// made for this run only. It is nil when no group needs one.
func fleetCA(sc *scenarios.Scenario, given *tlsutil.DeviceCA, dataDir string) (*tlsutil.DeviceCA, error) {
	if _, ca := sc.X509Groups(); !ca {
		return nil, nil
	}
	if given != nil {
		return given, nil
	}
	if dataDir == "" {
		return tlsutil.NewDeviceCA("fleetsim fleet CA", 1)
	}
	dir := filepath.Join(dataDir, DeviceCADir)
	if _, err := os.Stat(filepath.Join(dir, tlsutil.CACertFile)); err == nil {
		return tlsutil.LoadDeviceCA(dir)
	}
	ca, err := tlsutil.NewDeviceCA("fleetsim fleet CA", 10)
	if err != nil {
		return nil, err
	}
	return ca, ca.WriteCA(dir)
}

// checkRemoteX509 refuses X.509 groups a remote hub cannot serve: a
// certificate needs TLS, and CA-signed devices need a CA the hub trusts.
func checkRemoteX509(sc *scenarios.Scenario, ca *tlsutil.DeviceCA, mqttURL string) error {
	self, caGroups := sc.X509Groups()
	if !self && !caGroups {
		return nil
	}
	if caGroups && ca == nil {
		return fmt.Errorf("%w: give its certificate and key (fleetsim run --device-ca ca.pem --device-ca-key ca-key.pem) and make the hub trust it first", ErrNoDeviceCA)
	}
	u, err := url.Parse(mqttURL)
	if err != nil {
		return fmt.Errorf("MQTT URL %q: %w", mqttURL, err)
	}
	switch u.Scheme {
	case "ssl", "tls", "mqtts", "tcps", "wss":
		return nil
	}
	return fmt.Errorf("X.509 devices present their certificate over TLS: MQTT URL %q is not ssl:// or wss://", mqttURL)
}

// pendingCert is an X.509 device of a registration chunk whose certificate
// is still to be made: ops[op] is its entry.
type pendingCert struct {
	op int
	d  scenarios.DeviceSpec
}

// x509Auths makes the certificates of the pending devices, on every core,
// and fills in their entries' authentication.
func (p *player) x509Auths(ops []hubjobs.ExportImportDevice, pending []pendingCert) error {
	if len(pending) == 0 {
		return nil
	}
	certs := make([]*tls.Certificate, len(pending))
	var g errgroup.Group
	g.SetLimit(runtime.GOMAXPROCS(0))
	for i, pc := range pending {
		g.Go(func() error {
			auth, cert, err := p.x509Auth(pc.d)
			ops[pc.op].Authentication, certs[i] = auth, cert
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if p.certs == nil {
		p.certs = map[string]*tls.Certificate{}
	}
	for i, pc := range pending {
		p.certs[pc.d.ID] = certs[i]
	}
	return nil
}

// x509Auth makes device d's certificate and returns the registry
// authentication that accepts it: its thumbprints for a self-signed device,
// the CA's signature for a CA-signed one.
func (p *player) x509Auth(d scenarios.DeviceSpec) (*hubjobs.Authentication, *tls.Certificate, error) {
	var (
		cert tls.Certificate
		err  error
		auth = &hubjobs.Authentication{Type: hubjobs.AuthCA}
	)
	switch d.Auth {
	case scenarios.AuthSelfSigned:
		if cert, err = tlsutil.SelfSigned(d.ID, tlsutil.Validity{}); err == nil {
			sha1, sha256 := tlsutil.Thumbprints(cert.Certificate[0])
			auth.Type = hubjobs.AuthSelfSigned
			auth.X509Thumbprint = hubjobs.X509Thumbprint{PrimaryThumbprint: &sha1, SecondaryThumbprint: &sha256}
		}
	case scenarios.AuthCA:
		if p.ca == nil {
			return nil, nil, fmt.Errorf("device %s: %w", d.ID, ErrNoDeviceCA)
		}
		cert, err = p.ca.Issue(d.ID, tlsutil.Validity{})
	default:
		return nil, nil, fmt.Errorf("device %s: authentication %q has no certificate", d.ID, d.Auth)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("device %s: %w", d.ID, err)
	}
	// The parsed leaf is not needed to present the certificate, and would
	// cost kilobytes per device.
	cert.Leaf = nil
	return auth, &cert, nil
}
