package broker

import (
	"errors"
	"fmt"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// A connection's identity is its client id: "deviceId" for a device,
// "deviceId/moduleId" for a module (docs/iothub.md §1.2). Device ids
// cannot contain '/', so the two never collide, and everything the broker
// keys by client id (live connections, Deliver, Subscribed, Disconnect,
// the Hub's events) covers modules with no change to the device path.

// ErrUnknownModule is returned (wrapped) by ModuleIdentities for a module
// that is not registered on its device.
var ErrUnknownModule = errors.New("unknown module")

// ModuleIdentities gives module credentials; the hub's registry implements
// it. ModuleCredentials is called on the connecting module's goroutine and
// must not do I/O.
type ModuleIdentities interface {
	// ModuleCredentials returns the module's own keys and whether it may
	// connect (its device is enabled), or an error wrapping ErrUnknownModule
	// or ErrUnknownDevice.
	ModuleCredentials(deviceID, moduleID string) (Credentials, error)
}

// authenticateModule checks a module's CONNECT: a SAS token signed with the
// module's own key (or a policy key granting DeviceConnect) for
// {host}/devices/{deviceId}/modules/{moduleId}, or, for an X.509 module, its
// TLS client certificate. A device's key or certificate, or another
// module's, does not verify. The username's host is already checked.
func (h *hook) authenticateModule(cl *mqtt.Client, pk packets.Packet, u iothub.Username) (packets.Code, error) {
	bad := packets.ErrBadUsernameOrPassword
	if h.s.cfg.Modules == nil {
		return bad, errors.New("this hub takes no module connections")
	}
	creds, err := h.s.cfg.Modules.ModuleCredentials(u.DeviceID, u.ModuleID)
	if err != nil {
		return bad, err
	}
	if creds.Auth != AuthSAS {
		if err := h.authenticateX509(cl, u.DeviceID+"/"+u.ModuleID, creds, pk.Connect.Password); err != nil {
			return bad, err
		}
		return h.admitModule(pk, u, creds)
	}
	if !pk.Connect.PasswordFlag {
		return bad, errors.New("no SAS token")
	}
	tok, err := iothub.ParseSAS(string(pk.Connect.Password))
	if err != nil {
		return bad, err
	}
	if !tok.CoversResource(iothub.ModuleResource(h.s.cfg.Hostname, u.DeviceID, u.ModuleID)) {
		return bad, fmt.Errorf("%w: sr %q", iothub.ErrSASScope, tok.Resource)
	}
	keys := [][]byte{creds.PrimaryKey, creds.SecondaryKey}
	if tok.KeyName != "" {
		if keys, err = h.policyKeys(tok.KeyName); err != nil {
			return bad, err
		}
	}
	if _, err := tok.Verify(time.Now(), keys...); err != nil {
		return bad, err
	}
	return h.admitModule(pk, u, creds)
}

// admitModule is the rest of an authenticated module's CONNECT: its Will
// topic and whether its device is enabled.
func (h *hook) admitModule(pk packets.Packet, u iothub.Username, creds Credentials) (packets.Code, error) {
	bad := packets.ErrBadUsernameOrPassword
	if pk.Connect.WillFlag {
		identity := u.DeviceID + "/" + u.ModuleID
		if t, err := iothub.ParseDeviceTopic(identity, pk.Connect.WillTopic); err != nil || t.Kind != iothub.KindTelemetry {
			return bad, fmt.Errorf("will topic %q is not the module's telemetry topic", pk.Connect.WillTopic)
		}
	}
	if !creds.Enabled {
		return packets.ErrServerUnavailable, fmt.Errorf("device %s of module %s is disabled", u.DeviceID, u.ModuleID)
	}
	return packets.CodeSuccess, nil
}
