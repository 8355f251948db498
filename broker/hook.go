package broker

import (
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// hook carries every IoT Hub rule. Its methods run on the device's own
// connection goroutine and do no I/O.
type hook struct {
	mqtt.HookBase
	s *Server
}

func (h *hook) ID() string { return "fleetsim-iothub" }

// Provides reports the events the hook handles. Mochi asks it for every
// hook event of every packet, so it is a switch (see docs/performance.md).
func (h *hook) Provides(b byte) bool {
	switch b {
	case mqtt.OnConnect, mqtt.OnConnectAuthenticate, mqtt.OnACLCheck, mqtt.OnPacketRead,
		mqtt.OnPublish, mqtt.OnSessionEstablished, mqtt.OnDisconnect, mqtt.OnSubscribed,
		mqtt.OnUnsubscribed, mqtt.OnWillSent:
		return true
	}
	return false
}

// errViolation closes a connection that broke IoT Hub's rules (docs/iothub.md §1.4:
// "MQTT terminates the connection").
var errViolation = errors.New("IoT Hub protocol violation")

// OnConnect authenticates the device (docs/iothub.md §1.2, §1.3). It runs before
// mochi takes over any existing session, so a refused CONNECT leaves the live
// connection of the same client id alone. Bad credentials get CONNACK 5, a
// disabled device CONNACK 3.
func (h *hook) OnConnect(cl *mqtt.Client, pk packets.Packet) error {
	code, err := h.authenticate(cl, pk)
	if err == nil {
		return nil
	}
	h.s.rejected.Add(1)
	h.s.log.Debug().Err(err).Str("client", cl.ID).Msg("connect refused")
	_ = h.s.mochi.SendConnack(cl, code, false, nil)
	return err
}

func (h *hook) authenticate(cl *mqtt.Client, pk packets.Packet) (packets.Code, error) {
	bad := packets.ErrBadUsernameOrPassword // v3 return code 5, Not authorized
	if pk.ProtocolVersion != 4 {
		return packets.ErrUnsupportedProtocolVersion, fmt.Errorf("protocol level %d: IoT Hub speaks MQTT 3.1.1", pk.ProtocolVersion)
	}
	u, err := iothub.ParseUsername(string(pk.Connect.Username), pk.Connect.ClientIdentifier)
	if err != nil {
		return bad, err
	}
	if !strings.EqualFold(u.Host, h.s.cfg.Hostname) {
		return bad, fmt.Errorf("username host %q is not this hub (%q)", u.Host, h.s.cfg.Hostname)
	}
	if u.ModuleID != "" {
		return h.authenticateModule(cl, pk, u) // broker/identity.go
	}
	creds, err := h.s.cfg.Identities.DeviceCredentials(u.DeviceID)
	if err != nil {
		return bad, err
	}
	if creds.Auth != AuthSAS {
		// docs/iothub.md §1.2: an X.509 device sends no password; its TLS
		// client certificate authenticates it.
		if err := h.authenticateX509(cl, u.DeviceID, creds, pk.Connect.Password); err != nil {
			return bad, err
		}
	} else if err := h.authenticateSAS(u.DeviceID, creds, pk); err != nil {
		return bad, err
	}
	if pk.Connect.WillFlag {
		// docs/iothub.md §1.2: a Will is allowed only on the device's telemetry topic.
		if t, err := iothub.ParseDeviceTopic(u.DeviceID, pk.Connect.WillTopic); err != nil || t.Kind != iothub.KindTelemetry {
			return bad, fmt.Errorf("will topic %q is not the device's telemetry topic", pk.Connect.WillTopic)
		}
	}
	if !creds.Enabled {
		return packets.ErrServerUnavailable, fmt.Errorf("device %s is disabled", u.DeviceID) // v3 return code 3
	}
	return packets.CodeSuccess, nil
}

// authenticateSAS checks the SAS token in the CONNECT password (docs/iothub.md §1.3).
func (h *hook) authenticateSAS(deviceID string, creds Credentials, pk packets.Packet) error {
	if !pk.Connect.PasswordFlag {
		return errors.New("no SAS token")
	}
	tok, err := iothub.ParseSAS(string(pk.Connect.Password))
	if err != nil {
		return err
	}
	if !tok.CoversResource(iothub.DeviceResource(h.s.cfg.Hostname, deviceID)) {
		return fmt.Errorf("%w: sr %q", iothub.ErrSASScope, tok.Resource)
	}
	keys := [][]byte{creds.PrimaryKey, creds.SecondaryKey}
	if tok.KeyName != "" {
		// docs/iothub.md §1.3: a token signed with a shared access policy's key
		// (skn names it) authenticates the device if the policy grants
		// DeviceConnect.
		if keys, err = h.policyKeys(tok.KeyName); err != nil {
			return err
		}
	}
	_, err = tok.Verify(time.Now(), keys...)
	return err
}

// policyKeys returns the keys of a policy that grants DeviceConnect.
func (h *hook) policyKeys(name string) ([][]byte, error) {
	if h.s.cfg.Policies == nil {
		return nil, fmt.Errorf("%w %q: this hub takes no policy-signed device tokens", ErrUnknownPolicy, name)
	}
	p, err := h.s.cfg.Policies.PolicyCredentials(name)
	if err != nil {
		return nil, err
	}
	if !p.DeviceConnect {
		return nil, fmt.Errorf("shared access policy %q does not grant DeviceConnect", name)
	}
	return [][]byte{p.PrimaryKey, p.SecondaryKey}, nil
}

// OnConnectAuthenticate accepts: OnConnect has already refused what it must.
func (h *hook) OnConnectAuthenticate(*mqtt.Client, packets.Packet) bool { return true }

// OnACLCheck allows a device to subscribe only to IoT Hub's documented filters.
// Publishes are checked in OnPacketRead.
func (h *hook) OnACLCheck(cl *mqtt.Client, topic string, write bool) bool {
	if write {
		return true
	}
	return iothub.SubscriptionAllowed(cl.ID, topic)
}

// OnPacketRead enforces IoT Hub's rules before mochi acts on a packet: only
// documented topics, no QoS 2, size limits (docs/iothub.md §1.4). Returning an
// error closes the connection.
func (h *hook) OnPacketRead(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	switch pk.FixedHeader.Type {
	case packets.Publish:
		if pk.FixedHeader.Qos > 1 {
			return h.violation(cl, "QoS 2 publish")
		}
		t, err := iothub.ParseDeviceTopic(cl.ID, pk.TopicName)
		if err != nil {
			return h.violation(cl, err.Error())
		}
		if limit := sizeLimit(t.Kind); len(pk.Payload) > limit {
			return h.violation(cl, fmt.Sprintf("%s payload of %d bytes exceeds %d", t.Kind, len(pk.Payload), limit))
		}
		if h.acceptPublish(cl, t, &pk) { // see shallow.go
			return answered, nil
		}
	case packets.Puback:
		h.s.acked(cl, pk.PacketID) // a hub message sent with DeliverQoS1; mochi ignores ids it did not send
	case packets.Subscribe:
		for _, f := range pk.Filters {
			if !iothub.SubscriptionAllowed(cl.ID, f.Filter) {
				return h.violation(cl, fmt.Sprintf("subscription to %q", f.Filter))
			}
		}
		if h.subscribe(cl, &pk) { // see shallow.go
			return answered, nil
		}
	}
	return pk, nil
}

func (h *hook) violation(cl *mqtt.Client, what string) (packets.Packet, error) {
	h.s.violations.Add(1)
	h.s.log.Debug().Str("device", cl.ID).Str("violation", what).Msg("closing connection")
	return packets.Packet{}, fmt.Errorf("%w: %w: %s", packets.ErrRejectPacket, errViolation, what) // mochi closes the connection on ErrRejectPacket
}

func sizeLimit(k iothub.TopicKind) int {
	switch k {
	case iothub.KindMethodResponse:
		return iothub.MaxMethodPayloadBytes
	case iothub.KindTwinReported:
		return iothub.MaxReportedBytes
	case iothub.KindTwinGet:
		return 1024
	}
	return iothub.MaxTelemetryBytes
}

// OnPublish hands a device's publish to the hub. It is acknowledged (QoS 1)
// but never routed to other clients: every device topic is hub-terminated.
func (h *hook) OnPublish(cl *mqtt.Client, pk packets.Packet) (packets.Packet, error) {
	t, err := iothub.ParseDeviceTopic(cl.ID, pk.TopicName) // OnPacketRead has checked it
	if err == nil {
		h.publish(cl.ID, t, pk)
	}
	return pk, packets.CodeSuccessIgnore // acknowledged, not routed, not retained
}

// OnWillSent hands a device's Will (checked at CONNECT to be telemetry) to the hub.
func (h *hook) OnWillSent(cl *mqtt.Client, pk packets.Packet) {
	if t, err := iothub.ParseDeviceTopic(cl.ID, pk.TopicName); err == nil {
		h.publish(cl.ID, t, pk)
	}
}

func (h *hook) publish(id string, t iothub.DeviceTopic, pk packets.Packet) {
	if h.s.cfg.Hub == nil {
		return
	}
	if pk.FixedHeader.Retain && t.Kind == iothub.KindTelemetry {
		// docs/iothub.md §1.4: RETAIN is not stored; the message is passed on
		// with the application property mqtt-retain.
		if t.Properties == nil {
			t.Properties = url.Values{}
		}
		t.Properties.Set("mqtt-retain", "true")
	}
	h.s.in.Add(1)
	h.s.cfg.Hub.DevicePublished(id, t, pk.Payload)
}

// OnSessionEstablished records the device's live connection, schedules its
// end when the SAS token it connected with expires (IoT Hub disconnects the
// device then), and tells the hub. Mochi calls it with the CONNECT packet
// after CONNACK, once any older connection has been taken over.
func (h *hook) OnSessionEstablished(cl *mqtt.Client, pk packets.Packet) {
	if tok, err := iothub.ParseSAS(string(pk.Connect.Password)); err == nil { // OnConnect has verified it
		h.s.expiries.add(cl, time.Unix(tok.Expiry, 0))
	}
	d := h.s.device(cl.ID)
	d.events.Lock()
	defer d.events.Unlock()
	d.mu.Lock()
	d.cl = cl
	d.mu.Unlock()
	h.s.connects.Add(1)
	if h.s.cfg.Hub != nil {
		h.s.cfg.Hub.DeviceConnected(cl.ID, sessionFilters(cl))
	}
}

// OnDisconnect tells the hub, unless a newer connection has already taken the
// device's session over. Under the device's events lock, so the hub sees one
// device's events in order.
func (h *hook) OnDisconnect(cl *mqtt.Client, _ error, _ bool) {
	h.s.expiries.remove(cl)
	v, ok := h.s.devices.Load(cl.ID)
	if !ok {
		return // refused at CONNECT
	}
	d := v.(*device)
	d.events.Lock()
	defer d.events.Unlock()
	d.mu.Lock()
	current := d.cl == cl
	if current {
		d.cl = nil
	}
	d.mu.Unlock()
	if !current {
		return // taken over, or refused
	}
	h.s.disconnects.Add(1)
	if h.s.cfg.Hub != nil {
		h.s.cfg.Hub.DeviceDisconnected(cl.ID)
	}
}

// OnSubscribed tells the hub the filters the device's session holds once a
// SUBSCRIBE granted any.
func (h *hook) OnSubscribed(cl *mqtt.Client, _ packets.Packet, codes []byte) {
	for _, c := range codes {
		if c < 0x80 {
			h.subscriptionsChanged(cl)
			return
		}
	}
}

// OnUnsubscribed tells the hub the filters the device's session still holds.
// Mochi also calls it when it drops a session's subscriptions as a newer
// connection takes the client id over; the hub hears of those only while the
// connection is still the device's live one.
func (h *hook) OnUnsubscribed(cl *mqtt.Client, _ packets.Packet) {
	h.subscriptionsChanged(cl)
}

// subscriptionsChanged reports the session's filters to the hub if cl is the
// device's live connection. Under the device's events lock, so the hub sees
// them in order with the connection's DeviceConnected and DeviceDisconnected.
func (h *hook) subscriptionsChanged(cl *mqtt.Client) {
	if h.s.cfg.Hub == nil {
		return
	}
	v, ok := h.s.devices.Load(cl.ID)
	if !ok {
		return
	}
	d := v.(*device)
	d.events.Lock()
	defer d.events.Unlock()
	d.mu.Lock()
	current := d.cl == cl
	d.mu.Unlock()
	if current {
		h.s.cfg.Hub.DeviceSubscriptions(cl.ID, sessionFilters(cl))
	}
}

// sessionFilters lists the filters cl's session holds, sorted.
func sessionFilters(cl *mqtt.Client) []string {
	subs := cl.State.Subscriptions.GetAll()
	if len(subs) == 0 {
		return nil
	}
	out := make([]string, 0, len(subs))
	for f := range subs {
		out = append(out, f)
	}
	slices.Sort(out)
	return out
}
