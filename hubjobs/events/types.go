package events

import (
	"fmt"
	"strings"
)

// Type is the kind of a device event.
type Type uint8

// The event types.
const (
	// Telemetry is a device-to-cloud message.
	Telemetry Type = iota + 1
	// Connect is an accepted MQTT connection.
	Connect
	// Disconnect is the end of the device's live connection.
	Disconnect
	// MethodCall is a direct method request sent to the device.
	MethodCall
	// MethodResult is the device's answer to a direct method.
	MethodResult
	// DesiredPatch is a desired-properties patch sent to the device.
	DesiredPatch
	// Reported is a reported-properties patch from the device (the
	// acknowledgement of a desired patch, among others).
	Reported
	// Firmware is a reported patch that changes reported.firmware.
	Firmware
	numTypes
)

var typeNames = [numTypes]string{"", "telemetry", "connect", "disconnect", "methodCall", "methodResult", "desiredPatch", "reported", "firmware"}

// String is the type's name as the endpoint and the command take it.
func (t Type) String() string {
	if t > 0 && t < numTypes {
		return typeNames[t]
	}
	return fmt.Sprintf("Type(%d)", uint8(t))
}

// MarshalText writes the type's name.
func (t Type) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText reads a type's name, case-insensitively.
func (t *Type) UnmarshalText(b []byte) error {
	for i := Type(1); i < numTypes; i++ {
		if strings.EqualFold(typeNames[i], string(b)) {
			*t = i
			return nil
		}
	}
	return fmt.Errorf("unknown event type %q (want one of %s)", b, strings.Join(typeNames[1:], ", "))
}

// TypeSet is a set of event types; the zero set means every type.
type TypeSet uint16

// AllTypes holds every type, listed.
const AllTypes TypeSet = 1<<numTypes - 2

// Has reports whether t is in the set (every type is in the zero set).
func (s TypeSet) Has(t Type) bool { return s == 0 || s&(1<<t) != 0 }

// With returns the set with t added.
func (s TypeSet) With(t Type) TypeSet { return s | 1<<t }

// String lists the set's types separated by commas; empty for every type.
func (s TypeSet) String() string {
	var names []string
	for i := Type(1); i < numTypes; i++ {
		if s&(1<<i) != 0 {
			names = append(names, typeNames[i])
		}
	}
	return strings.Join(names, ",")
}

// ParseTypes reads a comma-separated list of type names ("telemetry,connect");
// the empty list is every type.
func ParseTypes(list string) (TypeSet, error) {
	var s TypeSet
	for _, f := range strings.Split(list, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		var t Type
		if err := t.UnmarshalText([]byte(f)); err != nil {
			return 0, err
		}
		s = s.With(t)
	}
	return s, nil
}
