package restapi

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// Rights is a set of shared access policy permissions (docs/iothub.md §4.2).
type Rights uint8

// The permissions of IoT Hub's shared access policies.
const (
	// RegistryRead allows reading device identities and registry statistics.
	RegistryRead Rights = 1 << iota
	// RegistryWrite allows creating, updating and deleting device identities.
	RegistryWrite
	// ServiceConnect allows the back-end endpoints: twins, direct methods,
	// queries and jobs.
	ServiceConnect
	// DeviceConnect allows the device endpoints only; it opens no service endpoint.
	DeviceConnect

	// AllRights is what iothubowner holds.
	AllRights = RegistryRead | RegistryWrite | ServiceConnect | DeviceConnect
)

var rightNames = []struct {
	r    Rights
	name string
}{
	{RegistryRead, "RegistryRead"},
	{RegistryWrite, "RegistryWrite"},
	{ServiceConnect, "ServiceConnect"},
	{DeviceConnect, "DeviceConnect"},
}

// String lists the rights as IoT Hub does: "RegistryRead, ServiceConnect".
func (r Rights) String() string {
	var parts []string
	for _, n := range rightNames {
		if r&n.r != 0 {
			parts = append(parts, n.name)
		}
	}
	return strings.Join(parts, ", ")
}

// Has reports whether r holds every right in need.
func (r Rights) Has(need Rights) bool { return r&need == need }

// MarshalText writes the rights as String does.
func (r Rights) MarshalText() ([]byte, error) { return []byte(r.String()), nil }

// UnmarshalText reads a comma-separated list of right names (case-insensitive).
func (r *Rights) UnmarshalText(b []byte) error {
	var out Rights
	for part := range strings.SplitSeq(string(b), ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		i := slices.IndexFunc(rightNames, func(n struct {
			r    Rights
			name string
		}) bool {
			return strings.EqualFold(n.name, part)
		})
		if i < 0 {
			return fmt.Errorf("unknown access right %q", part)
		}
		out |= rightNames[i].r
	}
	*r = out
	return nil
}

// Policy is a shared access policy: a key name, two keys (raw bytes, not
// base64) and its rights.
type Policy struct {
	Name         string `json:"keyName"`
	PrimaryKey   []byte `json:"primaryKey"`
	SecondaryKey []byte `json:"secondaryKey"`
	Rights       Rights `json:"rights"`
}

// DefaultPolicies returns IoT Hub's five built-in policies (docs/iothub.md §4.2)
// with fresh random 32-byte keys.
func DefaultPolicies() ([]Policy, error) {
	ps := []Policy{
		{Name: "iothubowner", Rights: AllRights},
		{Name: "service", Rights: ServiceConnect},
		{Name: "device", Rights: DeviceConnect},
		{Name: "registryRead", Rights: RegistryRead},
		{Name: "registryReadWrite", Rights: RegistryRead | RegistryWrite},
	}
	for i := range ps {
		ps[i].PrimaryKey = make([]byte, 32)
		ps[i].SecondaryKey = make([]byte, 32)
		if _, err := rand.Read(ps[i].PrimaryKey); err != nil {
			return nil, fmt.Errorf("generate key for policy %s: %w", ps[i].Name, err)
		}
		if _, err := rand.Read(ps[i].SecondaryKey); err != nil {
			return nil, fmt.Errorf("generate key for policy %s: %w", ps[i].Name, err)
		}
	}
	return ps, nil
}

// ServiceConnectionString returns the connection string an SDK uses with the
// policy's primary key (docs/iothub.md §1.3).
func ServiceConnectionString(host string, p Policy) string {
	return iothub.ConnectionString{
		HostName:            host,
		SharedAccessKeyName: p.Name,
		SharedAccessKey:     base64.StdEncoding.EncodeToString(p.PrimaryKey),
	}.String()
}

// errUnauthorized is the cause recorded (and logged, never shown) for a 401.
var errUnauthorized = errors.New("unauthorized")

// unauthorized is the one 401 answer: IoT Hub says no more than
// "ErrorCode:IotHubUnauthorizedAccess;Unauthorized" whatever went wrong
// (docs/iothub.md §4.2); why is kept in Err for the log.
func unauthorized(format string, args ...any) *iothub.Error {
	return &iothub.Error{
		Code:    iothub.CodeIotHubUnauthorizedAccess,
		Message: "Unauthorized",
		Err:     fmt.Errorf("%w: "+format, append([]any{errUnauthorized}, args...)...),
	}
}

// authorizeRights checks the request's service SAS token (docs/iothub.md §1.3, §4.2):
// any field order, sr raw or URL-encoded, signed by the named policy's primary
// or secondary key, covering the hub host name, not expired, and the policy
// holding the rights the endpoint needs (with anyOf, one of them is enough).
func (s *Server) authorizeRights(r *http.Request, need Rights, anyOf bool) error {
	h := r.Header.Get("Authorization")
	if h == "" {
		return unauthorized("no Authorization header")
	}
	tok, err := iothub.ParseSAS(strings.TrimSpace(h))
	if err != nil {
		return unauthorized("%w", err)
	}
	if tok.KeyName == "" {
		return unauthorized("token has no skn; service endpoints need a shared access policy")
	}
	p, ok := s.policies[tok.KeyName]
	if !ok {
		return unauthorized("no shared access policy %q", tok.KeyName)
	}
	if !tok.CoversResource(s.cfg.Hostname) {
		return unauthorized("token resource %q does not cover hub %q", tok.Resource, s.cfg.Hostname)
	}
	if _, err := tok.Verify(time.Now(), p.PrimaryKey, p.SecondaryKey); err != nil {
		return unauthorized("policy %s: %w", p.Name, err)
	}
	if anyOf && p.Rights&need == 0 {
		return unauthorized("policy %s has %s; the endpoint needs one of %s", p.Name, p.Rights, need)
	}
	if !anyOf && !p.Rights.Has(need) {
		return unauthorized("policy %s has %s; the endpoint needs %s", p.Name, p.Rights, need)
	}
	return nil
}
