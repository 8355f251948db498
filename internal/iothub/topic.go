package iothub

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// Topic prefixes and subscription filters of the device dialect (docs/iothub.md §1.5).
const (
	MethodsPrefix        = "$iothub/methods/"
	MethodRequestPrefix  = "$iothub/methods/POST/"
	MethodResponsePrefix = "$iothub/methods/res/"
	TwinPrefix           = "$iothub/twin/"
	TwinResponsePrefix   = "$iothub/twin/res/"
	TwinGetPrefix        = "$iothub/twin/GET/"
	TwinReportedPrefix   = "$iothub/twin/PATCH/properties/reported/"
	TwinDesiredPrefix    = "$iothub/twin/PATCH/properties/desired/"

	// FilterMethods is what a device subscribes to for direct-method requests.
	FilterMethods = "$iothub/methods/POST/#"
	// FilterTwinResponses is what a device subscribes to for twin GET/PATCH answers.
	FilterTwinResponses = "$iothub/twin/res/#"
	// FilterDesired is what a device subscribes to for desired-property patches.
	FilterDesired = "$iothub/twin/PATCH/properties/desired/#"
)

// ErrTopic is returned (wrapped) for any topic that is not part of the device
// dialect. IoT Hub closes the connection of a device that uses one (§1.4).
var ErrTopic = errors.New("topic not allowed")

// TopicKind says what a device-to-hub publish is.
type TopicKind int

// The kinds of device-to-hub publish.
const (
	KindUnknown        TopicKind = iota
	KindMethodResponse           // $iothub/methods/res/{status}/?$rid={rid}
	KindTwinGet                  // $iothub/twin/GET/?$rid={rid}
	KindTwinReported             // $iothub/twin/PATCH/properties/reported/?$rid={rid}
	KindTelemetry                // devices/{id}/messages/events/[{property-bag}]
)

// String names the kind for logs.
func (k TopicKind) String() string {
	switch k {
	case KindMethodResponse:
		return "method-response"
	case KindTwinGet:
		return "twin-get"
	case KindTwinReported:
		return "twin-reported"
	case KindTelemetry:
		return "telemetry"
	}
	return "unknown"
}

// DeviceTopic is a parsed device-to-hub publish topic.
type DeviceTopic struct {
	Kind TopicKind
	// RequestID is the $rid of a twin request or method response.
	RequestID string
	// Status is the device's status code on a method response.
	Status int
	// Properties holds the telemetry property bag, or extra query parameters.
	Properties url.Values
	// Bag is a telemetry topic's property bag as the device wrote it (after
	// "messages/events/"), for readers that decode it as IoT Hub does.
	Bag string
}

// ParseDeviceTopic parses the topic of a PUBLISH a device sent for deviceID.
// Anything outside the documented dialect returns an error wrapping ErrTopic.
func ParseDeviceTopic(deviceID, topic string) (DeviceTopic, error) {
	switch {
	case strings.HasPrefix(topic, MethodResponsePrefix):
		rest := topic[len(MethodResponsePrefix):]
		status, query, ok := strings.Cut(rest, "/")
		if !ok {
			return DeviceTopic{}, fmt.Errorf("%w: %q: no request id", ErrTopic, topic)
		}
		code, err := strconv.Atoi(status)
		if err != nil || code < 0 || code > 999999 {
			return DeviceTopic{}, fmt.Errorf("%w: %q: status %q is not a number", ErrTopic, topic, status)
		}
		rid, props, err := parseRidQuery(topic, query)
		if err != nil {
			return DeviceTopic{}, err
		}
		return DeviceTopic{Kind: KindMethodResponse, RequestID: rid, Status: code, Properties: props}, nil
	case strings.HasPrefix(topic, TwinGetPrefix):
		rid, props, err := parseRidQuery(topic, topic[len(TwinGetPrefix):])
		if err != nil {
			return DeviceTopic{}, err
		}
		return DeviceTopic{Kind: KindTwinGet, RequestID: rid, Properties: props}, nil
	case strings.HasPrefix(topic, TwinReportedPrefix):
		rid, props, err := parseRidQuery(topic, topic[len(TwinReportedPrefix):])
		if err != nil {
			return DeviceTopic{}, err
		}
		return DeviceTopic{Kind: KindTwinReported, RequestID: rid, Properties: props}, nil
	}
	if rest, ok := cutTelemetryPrefix(deviceID, topic); ok {
		if rest != "" && rest[0] != '/' {
			return DeviceTopic{}, fmt.Errorf("%w: %q", ErrTopic, topic)
		}
		rest = strings.TrimPrefix(rest, "/")
		props, err := url.ParseQuery(strings.TrimPrefix(rest, "?"))
		if err != nil {
			return DeviceTopic{}, fmt.Errorf("%w: %q: property bag: %v", ErrTopic, topic, err)
		}
		return DeviceTopic{Kind: KindTelemetry, Properties: props, Bag: rest}, nil
	}
	return DeviceTopic{}, fmt.Errorf("%w: %q", ErrTopic, topic)
}

// parseRidQuery reads "?$rid=X[&k=v...]" (the leading '?' is required).
// The usual "?$rid=X" alone, with nothing to unescape, is read without
// building url.Values: every method answer and twin request has one.
// A $rid longer than MaxRequestIDLength is refused: the hub's answer
// echoes it in a topic.
func parseRidQuery(topic, q string) (string, url.Values, error) {
	if rid, ok := strings.CutPrefix(q, "?$rid="); ok && rid != "" && !strings.ContainsAny(rid, "&;%+") {
		if len(rid) > MaxRequestIDLength {
			return "", nil, fmt.Errorf("%w: $rid of %d bytes; the limit is %d", ErrTopic, len(rid), MaxRequestIDLength)
		}
		return rid, nil, nil
	}
	rid, vals, err := parseRidQueryValues(topic, q)
	if err == nil && len(rid) > MaxRequestIDLength {
		return "", nil, fmt.Errorf("%w: $rid of %d bytes; the limit is %d", ErrTopic, len(rid), MaxRequestIDLength)
	}
	return rid, vals, err
}

// parseRidQueryValues is parseRidQuery for any query string.
func parseRidQueryValues(topic, q string) (string, url.Values, error) {
	if !strings.HasPrefix(q, "?") {
		return "", nil, fmt.Errorf("%w: %q: missing ?$rid=", ErrTopic, topic)
	}
	vals, err := url.ParseQuery(q[1:])
	if err != nil {
		return "", nil, fmt.Errorf("%w: %q: %v", ErrTopic, topic, err)
	}
	rid := vals.Get("$rid")
	if rid == "" {
		return "", nil, fmt.Errorf("%w: %q: missing $rid", ErrTopic, topic)
	}
	vals.Del("$rid")
	return rid, vals, nil
}

// cutTelemetryPrefix returns what follows identity's telemetry topic prefix,
// devices/{deviceId}/messages/events for a device and
// devices/{deviceId}/modules/{moduleId}/messages/events for a module
// (identity "deviceId/moduleId"), and whether topic starts with it. It
// builds no string.
func cutTelemetryPrefix(identity, topic string) (string, bool) {
	rest, ok := strings.CutPrefix(topic, "devices/")
	if !ok {
		return "", false
	}
	dev, mod, isModule := strings.Cut(identity, "/")
	if rest, ok = strings.CutPrefix(rest, dev); !ok {
		return "", false
	}
	if isModule {
		if rest, ok = strings.CutPrefix(rest, "/modules/"); !ok {
			return "", false
		}
		if rest, ok = strings.CutPrefix(rest, mod); !ok {
			return "", false
		}
	}
	return strings.CutPrefix(rest, "/messages/events")
}

// SubscriptionAllowed reports whether a device or module (identity
// "deviceId" or "deviceId/moduleId") may subscribe to filter (docs/iothub.md
// §1.4, §1.5). Only the documented filters are allowed: the twin and method
// filters, which the hub scopes to the subscribing connection, a device's
// own cloud-to-device filter and a module's own input filter.
func SubscriptionAllowed(identity, filter string) bool {
	switch filter {
	case FilterMethods, FilterTwinResponses, FilterDesired:
		return true
	}
	rest, ok := strings.CutPrefix(filter, "devices/")
	if !ok {
		return false
	}
	dev, mod, isModule := strings.Cut(identity, "/")
	if rest, ok = strings.CutPrefix(rest, dev); !ok {
		return false
	}
	if !isModule {
		return rest == "/messages/devicebound/#"
	}
	return rest == "/modules/"+mod+"/inputs/#"
}

// MethodRequestTopic formats the topic of a direct-method request to a device:
// $iothub/methods/POST/{name}/?$rid={rid}. $rid is the only parameter, as the
// C SDK takes everything after "?$rid=" as the id (§2.1).
func MethodRequestTopic(method, rid string) string {
	return MethodRequestPrefix + method + "/?$rid=" + rid
}

// ParseMethodRequestTopic is the device side of MethodRequestTopic.
func ParseMethodRequestTopic(topic string) (method, rid string, err error) {
	if !strings.HasPrefix(topic, MethodRequestPrefix) {
		return "", "", fmt.Errorf("%w: %q is not a method request", ErrTopic, topic)
	}
	rest := topic[len(MethodRequestPrefix):]
	method, q, _ := strings.Cut(rest, "/")
	if method == "" {
		return "", "", fmt.Errorf("%w: %q: empty method name", ErrTopic, topic)
	}
	rid, _, err = parseRidQuery(topic, q)
	return method, rid, err
}

// MethodResponseTopic formats a device's answer to a method request.
func MethodResponseTopic(status int, rid string) string {
	return MethodResponsePrefix + strconv.Itoa(status) + "/?$rid=" + rid
}

// TwinResponseTopic formats $iothub/twin/res/{status}/?$rid={rid}[&$version={v}].
// version < 0 leaves $version out. $rid comes first (§3.3).
func TwinResponseTopic(status int, rid string, version int64) string {
	t := TwinResponsePrefix + strconv.Itoa(status) + "/?$rid=" + rid
	if version >= 0 {
		t += "&$version=" + strconv.FormatInt(version, 10)
	}
	return t
}

// ParseTwinResponseTopic is the device side of TwinResponseTopic; version is -1 when absent.
func ParseTwinResponseTopic(topic string) (status int, rid string, version int64, err error) {
	if !strings.HasPrefix(topic, TwinResponsePrefix) {
		return 0, "", -1, fmt.Errorf("%w: %q is not a twin response", ErrTopic, topic)
	}
	s, q, _ := strings.Cut(topic[len(TwinResponsePrefix):], "/")
	status, err = strconv.Atoi(s)
	if err != nil {
		return 0, "", -1, fmt.Errorf("%w: %q: bad status", ErrTopic, topic)
	}
	rid, vals, err := parseRidQuery(topic, q)
	if err != nil {
		return 0, "", -1, err
	}
	version = -1
	if v := vals.Get("$version"); v != "" {
		if version, err = strconv.ParseInt(v, 10, 64); err != nil {
			return 0, "", -1, fmt.Errorf("%w: %q: bad $version", ErrTopic, topic)
		}
	}
	return status, rid, version, nil
}

// DesiredPatchTopic formats $iothub/twin/PATCH/properties/desired/?$version={v}.
func DesiredPatchTopic(version int64) string {
	return TwinDesiredPrefix + "?$version=" + strconv.FormatInt(version, 10)
}

// TwinGetTopic formats a device's twin GET request.
func TwinGetTopic(rid string) string { return TwinGetPrefix + "?$rid=" + rid }

// TwinReportedTopic formats a device's reported-properties PATCH request.
func TwinReportedTopic(rid string) string { return TwinReportedPrefix + "?$rid=" + rid }

// TelemetryTopic formats the device-to-cloud telemetry topic.
func TelemetryTopic(deviceID string) string { return "devices/" + deviceID + "/messages/events/" }

// ModuleTelemetryTopic formats a module's device-to-cloud telemetry topic.
func ModuleTelemetryTopic(deviceID, moduleID string) string {
	return "devices/" + deviceID + "/modules/" + moduleID + "/messages/events/"
}
