package iothub

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// ErrConnectionString is returned (wrapped) for a connection string that does not parse.
var ErrConnectionString = errors.New("malformed connection string")

// ConnectionString is a parsed IoT Hub connection string, device or service.
type ConnectionString struct {
	HostName              string
	DeviceID              string
	ModuleID              string
	GatewayHostName       string
	SharedAccessKeyName   string
	SharedAccessKey       string // base64, as written
	SharedAccessSignature string
	X509                  bool
}

// ParseConnectionString splits on ';' and then on the first '=' (so base64
// padding survives), as the SDKs do (§1.3). HostName is always required.
func ParseConnectionString(s string) (ConnectionString, error) {
	var c ConnectionString
	for _, part := range strings.Split(strings.TrimSpace(s), ";") {
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return ConnectionString{}, fmt.Errorf("%w: %q has no '='", ErrConnectionString, part)
		}
		switch k {
		case "HostName":
			c.HostName = v
		case "DeviceId":
			c.DeviceID = v
		case "ModuleId":
			c.ModuleID = v
		case "GatewayHostName":
			c.GatewayHostName = v
		case "SharedAccessKeyName":
			c.SharedAccessKeyName = v
		case "SharedAccessKey":
			c.SharedAccessKey = v
		case "SharedAccessSignature":
			c.SharedAccessSignature = v
		case "x509":
			c.X509 = strings.EqualFold(v, "true")
		}
	}
	if c.HostName == "" {
		return ConnectionString{}, fmt.Errorf("%w: HostName is required", ErrConnectionString)
	}
	if c.SharedAccessKey != "" {
		if _, err := base64.StdEncoding.DecodeString(c.SharedAccessKey); err != nil {
			return ConnectionString{}, fmt.Errorf("%w: SharedAccessKey is not base64", ErrConnectionString)
		}
	}
	if c.DeviceID == "" && (c.SharedAccessKeyName == "" || c.SharedAccessKey == "") {
		return ConnectionString{}, fmt.Errorf("%w: need DeviceId, or SharedAccessKeyName and SharedAccessKey", ErrConnectionString)
	}
	if c.DeviceID != "" && c.SharedAccessKey == "" && c.SharedAccessSignature == "" && !c.X509 {
		return ConnectionString{}, fmt.Errorf("%w: a device needs SharedAccessKey, SharedAccessSignature or x509=true", ErrConnectionString)
	}
	return c, nil
}

// Key returns the decoded SharedAccessKey.
func (c ConnectionString) Key() []byte {
	k, _ := base64.StdEncoding.DecodeString(c.SharedAccessKey)
	return k
}

// String formats the connection string with the fields that are set.
func (c ConnectionString) String() string {
	parts := []string{"HostName=" + c.HostName}
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("DeviceId", c.DeviceID)
	add("ModuleId", c.ModuleID)
	add("SharedAccessKeyName", c.SharedAccessKeyName)
	add("SharedAccessKey", c.SharedAccessKey)
	add("SharedAccessSignature", c.SharedAccessSignature)
	add("GatewayHostName", c.GatewayHostName)
	if c.X509 {
		parts = append(parts, "x509=true")
	}
	return strings.Join(parts, ";")
}
