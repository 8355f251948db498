package registry

import (
	"encoding/base64"
	"encoding/hex"
	"strings"
)

// X.509 authentication types as IoT Hub spells them (docs/iothub.md §4.3).
const (
	AuthenticationSelfSigned = "selfSigned"
	AuthenticationCA         = "certificateAuthority"
)

// authSpec is a request's authentication section, checked.
type authSpec struct {
	// typ is "" when the request names no type and gives no thumbprints
	// (create: SAS; update: keep the device's), else one of AuthenticationSAS,
	// AuthenticationSelfSigned, AuthenticationCA.
	typ            string
	thumb1, thumb2 string // self-signed: upper-case hex
}

// parseAuth checks an authentication section: a SAS device may give keys, a
// self-signed device one or two SHA-1 or SHA-256 thumbprints (the type is
// inferred from them, as the Node SDK does), a CA-signed device neither.
func parseAuth(a Authentication) (authSpec, error) {
	t1, t2 := a.X509Thumbprint.PrimaryThumbprint, a.X509Thumbprint.SecondaryThumbprint
	hasThumbs := (t1 != nil && *t1 != "") || (t2 != nil && *t2 != "")
	hasKeys := a.SymmetricKey.PrimaryKey != "" || a.SymmetricKey.SecondaryKey != ""
	var spec authSpec
	switch {
	case a.Type == "" && hasThumbs, strings.EqualFold(a.Type, AuthenticationSelfSigned):
		spec.typ = AuthenticationSelfSigned
	case a.Type == "":
	case strings.EqualFold(a.Type, AuthenticationSAS):
		spec.typ = AuthenticationSAS
	case strings.EqualFold(a.Type, AuthenticationCA):
		spec.typ = AuthenticationCA
	default:
		return authSpec{}, argInvalid("authentication type %q is not supported; use sas, selfSigned or certificateAuthority", a.Type)
	}
	switch spec.typ {
	case "", AuthenticationSAS:
		if hasThumbs {
			return authSpec{}, argInvalid("a sas device has no X.509 thumbprints")
		}
	case AuthenticationSelfSigned:
		if hasKeys {
			return authSpec{}, argInvalid("a selfSigned device has no symmetric keys")
		}
		var err error
		if spec.thumb1, err = parseThumbprint("primary", t1); err != nil {
			return authSpec{}, err
		}
		if spec.thumb2, err = parseThumbprint("secondary", t2); err != nil {
			return authSpec{}, err
		}
		if spec.thumb1 == "" && spec.thumb2 == "" {
			return authSpec{}, argInvalid("a selfSigned device needs x509Thumbprint.primaryThumbprint or secondaryThumbprint")
		}
	case AuthenticationCA:
		if hasKeys || hasThumbs {
			return authSpec{}, argInvalid("a certificateAuthority device has no symmetric keys and no thumbprints")
		}
	}
	return spec, nil
}

// parseThumbprint reads a thumbprint: the hex SHA-1 (40 digits) or SHA-256
// (64 digits) of a certificate, any case, colons and spaces allowed between
// the digits as certificate tools print them.
func parseThumbprint(which string, t *string) (string, error) {
	if t == nil {
		return "", nil
	}
	s := strings.NewReplacer(":", "", " ", "").Replace(*t)
	if s == "" {
		return "", nil
	}
	if _, err := hex.DecodeString(s); err != nil || (len(s) != 40 && len(s) != 64) {
		return "", argInvalid("%s thumbprint must be the hex SHA-1 (40 digits) or SHA-256 (64 digits) of a certificate", which)
	}
	return strings.ToUpper(s), nil
}

// setAuth gives a record being created or updated the authentication spec
// names; a spec naming none keeps the record's. A device that becomes SAS
// gets fresh keys (the caller then sets any the request gives); an X.509
// device keeps none.
func setAuth(rec *record, spec authSpec) {
	switch spec.typ {
	case AuthenticationSAS:
		if rec.Auth != "" { // from X.509 to SAS: fresh keys unless given
			rec.Auth, rec.Thumb1, rec.Thumb2 = "", "", ""
			rec.Primary, rec.Secondary = newKey(), newKey()
		}
	case AuthenticationSelfSigned:
		rec.Auth, rec.Thumb1, rec.Thumb2 = AuthenticationSelfSigned, spec.thumb1, spec.thumb2
		rec.Primary, rec.Secondary = nil, nil
	case AuthenticationCA:
		rec.Auth, rec.Thumb1, rec.Thumb2 = AuthenticationCA, "", ""
		rec.Primary, rec.Secondary = nil, nil
	}
}

// authType is the record's authentication.type.
func (rec *record) authType() string {
	if rec.Auth == "" {
		return AuthenticationSAS
	}
	return rec.Auth
}

// renderAuth is the REST view of a record's authentication: keys for a SAS
// device, thumbprints for a self-signed one, neither for a CA-signed one.
func renderAuth(rec *record) Authentication {
	a := Authentication{Type: rec.authType()}
	switch rec.Auth {
	case "":
		a.SymmetricKey = SymmetricKey{PrimaryKey: encodeKey(rec.Primary), SecondaryKey: encodeKey(rec.Secondary)}
	case AuthenticationSelfSigned:
		a.X509Thumbprint = renderThumbprints(rec)
	}
	return a
}

func renderThumbprints(rec *record) X509Thumbprint {
	var t X509Thumbprint
	if rec.Thumb1 != "" {
		t.PrimaryThumbprint = &rec.Thumb1
	}
	if rec.Thumb2 != "" {
		t.SecondaryThumbprint = &rec.Thumb2
	}
	return t
}

// DeviceAuth is how a device authenticates, for the broker.
type DeviceAuth struct {
	// Type is AuthenticationSAS, AuthenticationSelfSigned or AuthenticationCA.
	Type string
	// Primary and Secondary are a SAS device's raw keys; they must not be modified.
	Primary, Secondary []byte
	// Thumbprints are a self-signed device's, upper-case hex ("" when unset).
	Thumbprints [2]string
	// Enabled is whether the device may connect.
	Enabled bool
}

// Authentication returns how a device authenticates, or an error matching
// ErrDeviceNotFound. It does no I/O: the broker calls it on the connecting
// device's goroutine.
func (r *Registry) Authentication(deviceID string) (DeviceAuth, error) {
	e, err := r.lockEntry(deviceID)
	if err != nil {
		return DeviceAuth{}, err
	}
	rec := e.rec
	e.mu.Unlock()
	return authOf(rec, rec.Status == StatusEnabled), nil
}

// authOf is how the identity rec holds authenticates; enabled is whether it
// may connect.
func authOf(rec *record, enabled bool) DeviceAuth {
	return DeviceAuth{
		Type:        rec.authType(),
		Primary:     rec.Primary,
		Secondary:   rec.Secondary,
		Thumbprints: [2]string{rec.Thumb1, rec.Thumb2},
		Enabled:     enabled,
	}
}

// appendAuth appends an X.509 device's authentication fields to its stored
// record; a SAS device's record has none.
func appendAuth(b []byte, rec *record) []byte {
	if rec.Auth == "" {
		return b
	}
	b = appendKey(b, "auth")
	b = appendString(b, rec.Auth)
	if rec.Thumb1 != "" {
		b = appendKey(b, "thumb1")
		b = appendString(b, rec.Thumb1)
	}
	if rec.Thumb2 != "" {
		b = appendKey(b, "thumb2")
		b = appendString(b, rec.Thumb2)
	}
	return b
}

// encodeKey is a key in base64, or "" for none.
func encodeKey(k []byte) string {
	if k == nil {
		return ""
	}
	return base64.StdEncoding.EncodeToString(k)
}

// MarshalJSON writes an absent key as null, as IoT Hub shows the keys of an
// X.509 device.
func (k SymmetricKey) MarshalJSON() ([]byte, error) {
	b := append(make([]byte, 0, 128), `{"primaryKey":`...)
	b = appendKeyString(b, k.PrimaryKey)
	b = append(b, `,"secondaryKey":`...)
	b = appendKeyString(b, k.SecondaryKey)
	return append(b, '}'), nil
}

func appendKeyString(b []byte, s string) []byte {
	if s == "" {
		return append(b, "null"...)
	}
	return appendString(b, s)
}
