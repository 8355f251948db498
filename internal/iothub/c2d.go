package iothub

import (
	"fmt"
	"net/url"
	"strings"
	"time"
)

// Cloud-to-device message limits (IoT Hub quotas and throttling: "Maximum
// size of a cloud-to-device message 64 KB; maximum 50 messages waiting per
// device"; messaging settings: default TTL one hour, maximum two days;
// maximum delivery count ten by default).
const (
	MaxC2DBytes           = 64 * 1024
	MaxC2DQueueDepth      = 50
	DefaultC2DTTL         = time.Hour
	MaxC2DTTL             = 48 * time.Hour
	DefaultC2DMaxDelivery = 10
)

// C2DExpiryLayout is how the $.exp property writes a message's expiry:
// UTC with milliseconds, as JavaScript's Date.toISOString does.
const C2DExpiryLayout = "2006-01-02T15:04:05.000Z"

// Property is one application property of a message, kept in order.
type Property struct {
	Key, Value string
}

// C2DProperties are a cloud-to-device message's system and application
// properties, as the property bag of its topic carries them.
type C2DProperties struct {
	MessageID       string // $.mid
	To              string // $.to
	CorrelationID   string // $.cid
	UserID          string // $.uid
	ContentType     string // $.ct
	ContentEncoding string // $.ce
	// Expiry is $.exp; the zero time means none.
	Expiry time.Time
	// Ack is iothub-ack: the feedback the sender asked for ("none", "full").
	Ack string
	// Properties are the application properties, in order.
	Properties []Property
}

// C2DTopicPrefix is the start of every cloud-to-device topic for deviceID:
// devices/{id}/messages/devicebound/.
func C2DTopicPrefix(deviceID string) string {
	return "devices/" + deviceID + "/messages/devicebound/"
}

// C2DFilter is what a device subscribes to for its cloud-to-device messages.
func C2DFilter(deviceID string) string { return C2DTopicPrefix(deviceID) + "#" }

// C2DTo is the $.to IoT Hub writes: the device's devicebound path.
func C2DTo(deviceID string) string { return "/devices/" + deviceID + "/messages/deviceBound" }

// C2DTopic formats the topic a cloud-to-device message travels on:
// devices/{id}/messages/devicebound/{property bag}. The bag is what IoT
// Hub sends, in its order: $.mid, $.exp, $.to, $.cid, $.uid, $.ct, $.ce,
// iothub-ack, then the application properties; keys and values are
// encoded as JavaScript's encodeURIComponent does, because the Node SDK
// splits the bag on '&' and '=' and decodes each side with
// decodeURIComponent (so '+' stays '+', and '/', '&', '=' and '$' are
// escaped; the real hub writes "%24.mid").
func C2DTopic(deviceID string, p C2DProperties) string {
	var b strings.Builder
	b.WriteString(C2DTopicPrefix(deviceID))
	first := true
	add := func(k, v string) {
		if !first {
			b.WriteByte('&')
		}
		first = false
		b.WriteString(EncodeURIComponent(k))
		b.WriteByte('=')
		b.WriteString(EncodeURIComponent(v))
	}
	addIf := func(k, v string) {
		if v != "" {
			add(k, v)
		}
	}
	addIf("$.mid", p.MessageID)
	if !p.Expiry.IsZero() {
		add("$.exp", p.Expiry.UTC().Format(C2DExpiryLayout))
	}
	addIf("$.to", p.To)
	addIf("$.cid", p.CorrelationID)
	addIf("$.uid", p.UserID)
	addIf("$.ct", p.ContentType)
	addIf("$.ce", p.ContentEncoding)
	addIf("iothub-ack", p.Ack)
	for _, kv := range p.Properties {
		add(kv.Key, kv.Value)
	}
	return b.String()
}

// ParseC2DTopic reads a cloud-to-device topic for deviceID back into its
// properties, as a device SDK does: the property bag is everything after
// the devicebound/ prefix, split on '&', each pair split on its first '='
// and decoded with decodeURIComponent's rules. Errors wrap ErrTopic.
func ParseC2DTopic(deviceID, topic string) (C2DProperties, error) {
	bag, ok := strings.CutPrefix(topic, C2DTopicPrefix(deviceID))
	if !ok {
		return C2DProperties{}, fmt.Errorf("%w: %q is not %s's cloud-to-device topic", ErrTopic, topic, deviceID)
	}
	var p C2DProperties
	if bag == "" {
		return p, nil
	}
	for pair := range strings.SplitSeq(bag, "&") {
		rk, rv, _ := strings.Cut(pair, "=")
		k, err := url.PathUnescape(rk)
		if err != nil {
			return C2DProperties{}, fmt.Errorf("%w: %q: property name: %v", ErrTopic, topic, err)
		}
		v, err := url.PathUnescape(rv)
		if err != nil {
			return C2DProperties{}, fmt.Errorf("%w: %q: property %q: %v", ErrTopic, topic, k, err)
		}
		switch k {
		case "$.mid":
			p.MessageID = v
		case "$.to":
			p.To = v
		case "$.cid":
			p.CorrelationID = v
		case "$.uid":
			p.UserID = v
		case "$.ct":
			p.ContentType = v
		case "$.ce":
			p.ContentEncoding = v
		case "$.exp":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return C2DProperties{}, fmt.Errorf("%w: %q: $.exp %q is not a time", ErrTopic, topic, v)
			}
			p.Expiry = t
		case "iothub-ack":
			p.Ack = v
		default:
			p.Properties = append(p.Properties, Property{Key: k, Value: v})
		}
	}
	return p, nil
}

// CheckC2DPropertyName says whether key may name an application property
// of a cloud-to-device message: not empty, not a system property ("$."
// names and iothub- names would be read back as the hub's own), and no
// longer than MaxPropertyNameBytes.
func CheckC2DPropertyName(key string) error {
	switch {
	case key == "":
		return fmt.Errorf("an application property has an empty name")
	case strings.HasPrefix(key, "$") || strings.HasPrefix(strings.ToLower(key), "iothub-"):
		return fmt.Errorf("application property %q uses a name reserved for IoT Hub's system properties", key)
	case len(key) > MaxPropertyNameBytes:
		return fmt.Errorf("application property name is longer than %d bytes", MaxPropertyNameBytes)
	}
	return nil
}
