package broker

import (
	"testing"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	mqtt "github.com/mochi-mqtt/server/v2"

	"github.com/fleetsim/fleetsim/internal/iothub"
)

// TestNoRetainedMessages: once the broker runs, mochi's topic tree holds no
// retained message (the $SYS values it publishes at start are dropped), so
// a SUBSCRIBE does not walk the tree; a device's retained publish is not
// stored either.
func TestNoRetainedMessages(t *testing.T) {
	e := start(t)
	c, err := connect(t, e, memory, "d1", token("d1", key1, time.Hour), true)
	if err != nil {
		t.Fatal(err)
	}
	subscribe(t, c, iothub.FilterMethods, 0, func(paho.Client, paho.Message) {})
	if tok := c.Publish("devices/d1/messages/events/", 1, true, "x"); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("publish: %v", tok.Error())
	}
	if n := e.s.mochi.Topics.Retained.Len(); n != 0 {
		t.Errorf("%d retained messages: %v", n, e.s.mochi.Topics.Retained.GetAll())
	}
}

// TestHookProvides: the hook claims exactly the events it handles; mochi
// skips it for the others (OnPacketEncode and OnPacketSent run for every
// packet written).
func TestHookProvides(t *testing.T) {
	var h hook
	for _, tc := range []struct {
		event byte
		want  bool
	}{
		{mqtt.OnConnect, true}, {mqtt.OnConnectAuthenticate, true}, {mqtt.OnACLCheck, true},
		{mqtt.OnPacketRead, true}, {mqtt.OnPublish, true}, {mqtt.OnSessionEstablished, true},
		{mqtt.OnDisconnect, true}, {mqtt.OnSubscribed, true}, {mqtt.OnWillSent, true},
		{mqtt.OnPacketEncode, false}, {mqtt.OnPacketSent, false}, {mqtt.OnSubscribe, false},
		{mqtt.OnPublished, false}, {mqtt.OnRetainMessage, false}, {mqtt.OnStarted, false},
	} {
		if got := h.Provides(tc.event); got != tc.want {
			t.Errorf("Provides(%d) = %v, want %v", tc.event, got, tc.want)
		}
	}
}
