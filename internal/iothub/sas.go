package iothub

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// SAS errors; callers branch on them to pick CONNACK codes and HTTP statuses.
var (
	// ErrSASMalformed: the token does not parse.
	ErrSASMalformed = errors.New("malformed shared access signature")
	// ErrSASExpired: se is not in the future.
	ErrSASExpired = errors.New("shared access signature expired")
	// ErrSASSignature: no key produced the signature.
	ErrSASSignature = errors.New("shared access signature does not match")
	// ErrSASScope: the resource URI does not cover what is being accessed.
	ErrSASScope = errors.New("shared access signature resource does not cover the target")
)

// SASToken is a parsed "SharedAccessSignature sr=..&sig=..&se=..[&skn=..]" token.
// The raw fields are kept exactly as sent because the signature is computed over
// sr as it appears in the token (docs/iothub.md §1.3, docs/sdk-notes.md §2.3).
type SASToken struct {
	RawResource string // sr exactly as sent
	Resource    string // sr percent-decoded
	Signature   []byte // decoded sig
	Expiry      int64  // se, seconds since the Unix epoch
	KeyName     string // skn, empty for device-key tokens
	rawExpiry   string
}

const sasPrefix = "SharedAccessSignature "

// ParseSAS parses a SAS token. Fields may come in any order.
func ParseSAS(token string) (SASToken, error) {
	body, ok := strings.CutPrefix(token, sasPrefix)
	if !ok {
		return SASToken{}, fmt.Errorf("%w: missing %q prefix", ErrSASMalformed, strings.TrimSpace(sasPrefix))
	}
	var t SASToken
	var haveSig, haveSe, haveSr bool
	for _, part := range strings.Split(body, "&") {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return SASToken{}, fmt.Errorf("%w: field %q has no value", ErrSASMalformed, part)
		}
		switch k {
		case "sr":
			if haveSr {
				return SASToken{}, fmt.Errorf("%w: sr given twice", ErrSASMalformed)
			}
			haveSr = true
			t.RawResource = v
			dec, err := url.PathUnescape(v)
			if err != nil {
				return SASToken{}, fmt.Errorf("%w: sr: %v", ErrSASMalformed, err)
			}
			t.Resource = dec
		case "sig":
			if haveSig {
				return SASToken{}, fmt.Errorf("%w: sig given twice", ErrSASMalformed)
			}
			haveSig = true
			dec, err := url.QueryUnescape(v)
			if err != nil {
				return SASToken{}, fmt.Errorf("%w: sig: %v", ErrSASMalformed, err)
			}
			sig, err := base64.StdEncoding.DecodeString(dec)
			if err != nil {
				return SASToken{}, fmt.Errorf("%w: sig is not base64", ErrSASMalformed)
			}
			t.Signature = sig
		case "se":
			if haveSe {
				return SASToken{}, fmt.Errorf("%w: se given twice", ErrSASMalformed)
			}
			haveSe = true
			se, err := strconv.ParseInt(v, 10, 64)
			if err != nil || se < 0 {
				return SASToken{}, fmt.Errorf("%w: se %q is not a Unix time", ErrSASMalformed, v)
			}
			t.Expiry, t.rawExpiry = se, v
		case "skn":
			name, err := url.QueryUnescape(v)
			if err != nil {
				return SASToken{}, fmt.Errorf("%w: skn: %v", ErrSASMalformed, err)
			}
			t.KeyName = name
		default:
			// Unknown fields are ignored, as the hub does.
		}
	}
	if !haveSr || !haveSig || !haveSe {
		return SASToken{}, fmt.Errorf("%w: sr, sig and se are required", ErrSASMalformed)
	}
	return t, nil
}

// Sign computes base64(HMAC-SHA256(key, stringToSign)) where stringToSign is
// rawResource + "\n" + expiry.
func Sign(key []byte, rawResource, expiry string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(rawResource))
	m.Write([]byte{'\n'})
	m.Write([]byte(expiry))
	return m.Sum(nil)
}

// Verify checks the token's expiry against now and its signature against the
// keys (each raw, already base64-decoded) and returns the index of the key that
// matched. It does not check the resource scope; see CoversResource.
func (t SASToken) Verify(now time.Time, keys ...[]byte) (int, error) {
	if t.Expiry <= now.Unix() {
		return -1, fmt.Errorf("%w at %s", ErrSASExpired, time.Unix(t.Expiry, 0).UTC().Format(time.RFC3339))
	}
	for i, k := range keys {
		if len(k) == 0 {
			continue
		}
		if hmac.Equal(Sign(k, t.RawResource, t.rawExpiry), t.Signature) {
			return i, nil
		}
	}
	return -1, ErrSASSignature
}

// CoversResource reports whether the token's resource URI covers target
// ("{host}/devices/{id}", or just "{host}"), with the host compared
// case-insensitively, the rest case-sensitively, and segment-prefix semantics
// (docs/iothub.md §1.3): "h/devices" covers "h/devices/d1", "h/devices/d" does not.
func (t SASToken) CoversResource(target string) bool {
	res := strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(t.Resource, "https://"), "http://"), "/")
	rh, rp, _ := strings.Cut(res, "/")
	th, tp, _ := strings.Cut(target, "/")
	if !strings.EqualFold(rh, th) {
		return false
	}
	if rp == "" {
		return true
	}
	return tp == rp || strings.HasPrefix(tp, rp+"/")
}

// NewSAS builds a token the way the official SDKs do: device tokens (keyName
// empty) URL-encode sr; service tokens (keyName set) send sr raw, as the Node
// service SDK does.
func NewSAS(resource string, key []byte, keyName string, expiry time.Time) string {
	se := strconv.FormatInt(expiry.Unix(), 10)
	sr := resource
	if keyName == "" {
		sr = EncodeURIComponent(resource)
	}
	sig := url.QueryEscape(base64.StdEncoding.EncodeToString(Sign(key, sr, se)))
	tok := sasPrefix + "sr=" + sr + "&sig=" + sig + "&se=" + se
	if keyName != "" {
		tok += "&skn=" + url.QueryEscape(keyName)
	}
	return tok
}

// DeviceResource returns the SAS resource URI of a device: "{host}/devices/{id}".
func DeviceResource(host, deviceID string) string { return host + "/devices/" + deviceID }

// ModuleResource is the resource a module's SAS token is signed for:
// {host}/devices/{deviceId}/modules/{moduleId}.
func ModuleResource(host, deviceID, moduleID string) string {
	return host + "/devices/" + deviceID + "/modules/" + moduleID
}
