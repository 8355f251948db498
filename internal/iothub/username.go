package iothub

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// ErrUsername is returned (wrapped) for a CONNECT username that does not parse.
var ErrUsername = errors.New("malformed MQTT username")

// Username is a parsed CONNECT username:
// {host}/{deviceId}[/{moduleId}]/[?]api-version=...&DeviceClientType=...
type Username struct {
	Host     string
	DeviceID string
	ModuleID string
	Params   map[string]string
}

// ParseUsername accepts every form in docs/iothub.md §1.2: with or without '?',
// parameters in any order, values percent-decoded with '+' kept as '+', very
// old clients that send only parameters after the device id, and no parameters
// at all. clientID tells a module id apart from the parameter block: the
// username's identity must equal the ClientId ("dev" or "dev/module").
func ParseUsername(username, clientID string) (Username, error) {
	host, rest, ok := strings.Cut(username, "/")
	if !ok || host == "" {
		return Username{}, fmt.Errorf("%w: %q: no host", ErrUsername, username)
	}
	if clientID == "" {
		return Username{}, fmt.Errorf("%w: empty client id", ErrUsername)
	}
	if !strings.HasPrefix(rest, clientID) {
		return Username{}, fmt.Errorf("%w: identity in %q does not match client id %q", ErrUsername, username, clientID)
	}
	u := Username{Host: host, Params: map[string]string{}}
	u.DeviceID, u.ModuleID, _ = strings.Cut(clientID, "/")
	if u.DeviceID == "" || strings.Contains(u.ModuleID, "/") {
		return Username{}, fmt.Errorf("%w: client id %q", ErrUsername, clientID)
	}
	params := rest[len(clientID):]
	if params == "" {
		return u, nil
	}
	if params[0] != '/' {
		return Username{}, fmt.Errorf("%w: identity in %q does not match client id %q", ErrUsername, username, clientID)
	}
	params = strings.TrimPrefix(params[1:], "?")
	for _, kv := range strings.Split(params, "&") {
		if kv == "" {
			continue
		}
		k, v, _ := strings.Cut(kv, "=")
		dk, err := url.PathUnescape(k)
		if err != nil {
			return Username{}, fmt.Errorf("%w: parameter %q: %v", ErrUsername, k, err)
		}
		dv, err := url.PathUnescape(v)
		if err != nil {
			return Username{}, fmt.Errorf("%w: parameter %q: %v", ErrUsername, k, err)
		}
		u.Params[dk] = dv
	}
	return u, nil
}

// DeviceUsername formats the username the Node SDK sends (§1.2).
func DeviceUsername(host, deviceID, clientType string) string {
	u := host + "/" + deviceID + "/?api-version=" + APIVersion
	if clientType != "" {
		u += "&DeviceClientType=" + EncodeURIComponent(clientType)
	}
	return u
}

// APIVersion is the api-version fleetsim's own clients send.
const APIVersion = "2021-04-12"

// EncodeURIComponent percent-encodes s as JavaScript's encodeURIComponent
// does (upper-case hex; letters, digits and - _ . ! ~ * ' ( ) kept), which is
// what the Node SDKs put in usernames and SAS resources.
func EncodeURIComponent(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if isAlnum(c) || strings.IndexByte("-_.!~*'()", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}
