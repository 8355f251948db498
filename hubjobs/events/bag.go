package events

import (
	"net/url"
	"strings"
)

// Property is one application property of a device-to-cloud message.
type Property struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Properties are a device-to-cloud message's properties as IoT Hub reads
// them from the topic's property bag: the system properties the device may
// set, under the names the hub's event stream gives them, and the
// application properties in the order the device wrote them.
type Properties struct {
	MessageID       string
	CorrelationID   string
	UserID          string
	To              string
	ExpiryTime      string
	ContentType     string
	ContentEncoding string
	CreationTime    string
	InterfaceID     string
	ComponentName   string
	OutputName      string
	// OtherSystem holds any other "$."-prefixed property, by its key.
	OtherSystem []Property
	Application []Property
}

// systemKeys maps the property bag's system keys to Properties fields, as the
// Azure IoT device SDKs write them (querystring-escaped "$" included: the
// Node SDK sends "%24.mid").
var systemKeys = map[string]func(p *Properties) *string{
	"$.mid":    func(p *Properties) *string { return &p.MessageID },
	"$.cid":    func(p *Properties) *string { return &p.CorrelationID },
	"$.uid":    func(p *Properties) *string { return &p.UserID },
	"$.to":     func(p *Properties) *string { return &p.To },
	"$.exp":    func(p *Properties) *string { return &p.ExpiryTime },
	"$.ct":     func(p *Properties) *string { return &p.ContentType },
	"$.ce":     func(p *Properties) *string { return &p.ContentEncoding },
	"$.ctime":  func(p *Properties) *string { return &p.CreationTime },
	"$.ifid":   func(p *Properties) *string { return &p.InterfaceID },
	"$.sub":    func(p *Properties) *string { return &p.ComponentName },
	"$.ifname": func(p *Properties) *string { return &p.ComponentName },
	"$.on":     func(p *Properties) *string { return &p.OutputName },
}

// DecodeBag decodes the property bag of a telemetry topic
// (devices/{id}/messages/events/{bag}) as IoT Hub does: pairs separated by
// '&', a key and a value separated by the first '=', each percent-decoded
// as JavaScript's decodeURIComponent does (a '+' stays a '+'; the SDKs
// escape a space as %20). A key without '=' has an empty value, empty pairs
// are skipped, and a leading '?' (some MQTT clients write one) is ignored.
// Keys starting with "$." are system properties; a piece that is not valid
// percent-encoding is kept as written.
func DecodeBag(bag string) Properties {
	var p Properties
	bag = strings.TrimPrefix(bag, "?")
	for bag != "" {
		var pair string
		pair, bag, _ = strings.Cut(bag, "&")
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		k, v = unescape(k), unescape(v)
		if f, ok := systemKeys[k]; ok {
			*f(&p) = v
			continue
		}
		if strings.HasPrefix(k, "$.") {
			p.OtherSystem = append(p.OtherSystem, Property{k, v})
			continue
		}
		p.Application = append(p.Application, Property{k, v})
	}
	return p
}

// unescape percent-decodes s, keeping s when it is not valid.
func unescape(s string) string {
	if !strings.Contains(s, "%") {
		return s
	}
	u, err := url.PathUnescape(s)
	if err != nil {
		return s
	}
	return u
}

// System returns the set system properties under the names IoT Hub's
// event stream gives them (message-id, correlation-id, content-type, ...).
func (p Properties) System() map[string]string {
	m := map[string]string{}
	set := func(k, v string) {
		if v != "" {
			m[k] = v
		}
	}
	set("message-id", p.MessageID)
	set("correlation-id", p.CorrelationID)
	set("user-id", p.UserID)
	set("to", p.To)
	set("absolute-expiry-time", p.ExpiryTime)
	set("content-type", p.ContentType)
	set("content-encoding", p.ContentEncoding)
	set("iothub-creation-time-utc", p.CreationTime)
	set("dt-dataschema", p.InterfaceID)
	set("dt-subject", p.ComponentName)
	set("iothub-outputname", p.OutputName)
	for _, o := range p.OtherSystem {
		m[o.Name] = o.Value
	}
	return m
}
