package iothub

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Limits from docs/iothub.md §1.4, §2.2, §3.5 and §4.3.
const (
	MaxDeviceIDLength      = 128
	MaxJobIDLength         = 64
	MaxMethodPayloadBytes  = 128 * 1024
	MaxTelemetryBytes      = 256 * 1024
	MaxDesiredBytes        = 32 * 1024
	MaxReportedBytes       = 32 * 1024
	MaxTagsBytes           = 8 * 1024
	MaxTwinDepth           = 10
	MaxPropertyNameBytes   = 1024
	MaxStringValueBytes    = 4 * 1024
	MinResponseTimeout     = 5
	MaxResponseTimeout     = 300
	MaxConnectTimeout      = 300
	DefaultResponseTimeout = 30
	MaxQueryLength         = 8192
	// MaxMethodNameLength is the longest direct-method name, as IoT Edge's
	// hub checks it (IoT Hub does not document one).
	MaxMethodNameLength = 100
	// MaxRequestIDLength is the longest $rid a device may send (fleetsim's
	// bound: the SDKs send counters and UUIDs). The hub echoes the $rid in
	// its answer's topic, which MQTT caps at MaxTopicBytes.
	MaxRequestIDLength = 256
	// MaxTopicBytes is the longest MQTT topic name: its length travels as
	// an unsigned 16-bit number.
	MaxTopicBytes = 65535
)

const deviceIDSpecials = "-:.+%_#*?!(),=@;$'"

// ValidDeviceID checks a device (or module) id: 1..128 ASCII letters, digits
// and - : . + % _ # * ? ! ( ) , = @ ; $ ' (§4.3), and not "." or "..",
// which no URL of the service API can name.
func ValidDeviceID(id string) error {
	if id == "" {
		return fmt.Errorf("device id is empty")
	}
	if id == "." || id == ".." {
		return fmt.Errorf("device id %q is not allowed: a URL path cannot name it", id)
	}
	if len(id) > MaxDeviceIDLength {
		return fmt.Errorf("device id is longer than %d characters", MaxDeviceIDLength)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !isAlnum(c) && !strings.ContainsRune(deviceIDSpecials, rune(c)) {
			return fmt.Errorf("device id %q has an invalid character %q at %d", id, c, i)
		}
	}
	return nil
}

// ValidJobID checks a job id: 1..64 US-ASCII letters, digits and '-' (§5.2).
func ValidJobID(id string) error {
	if id == "" {
		return fmt.Errorf("job id is empty")
	}
	if len(id) > MaxJobIDLength {
		return fmt.Errorf("job id is longer than %d characters", MaxJobIDLength)
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; !isAlnum(c) && c != '-' {
			return fmt.Errorf("job id %q has an invalid character %q; only letters, digits and '-' are allowed", id, c)
		}
	}
	return nil
}

const nameForbidden = "$()<>@,;:\\\"/[]?={} \t"

// ValidMethodName checks a method name, and the property names and values of
// jobs: US-ASCII printable characters except $ ( ) < > @ , ; : \ " / [ ] ? = { }
// space and tab (§2.1).
func ValidMethodName(name string) error {
	if name == "" {
		return fmt.Errorf("method name is empty")
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c < 0x21 || c > 0x7e || strings.IndexByte(nameForbidden, c) >= 0 {
			return fmt.Errorf("method name %q has an invalid character %q", name, c)
		}
	}
	return nil
}

// ValidPropertyName checks a twin property key: UTF-8, at most 1 KB, no
// control characters, '.', '$' or space (§3.5).
func ValidPropertyName(key string) error {
	if key == "" {
		return fmt.Errorf("property name is empty")
	}
	if len(key) > MaxPropertyNameBytes {
		return fmt.Errorf("property name is longer than %d bytes", MaxPropertyNameBytes)
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("property name %q is not valid UTF-8", key)
	}
	for _, r := range key {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == '.' || r == '$' || r == ' ' {
			return fmt.Errorf("property name %q has an invalid character %q", key, r)
		}
	}
	return nil
}

func isAlnum(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
}
