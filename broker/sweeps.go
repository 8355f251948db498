package broker

import (
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// sweepInterval is how often mochi walks every client for expired sessions
// and inflight messages. Mochi does both once a second and each walk copies
// its whole client map, which costs a large fleet CPU all the time (see
// docs/performance.md). Neither sweep can find anything here sooner than this: devices speak
// MQTT 3.1.1, so sessions and inflight messages expire only by the server's
// maxima (sessions never, inflight messages after a day).
const sweepInterval = time.Minute

// sysTopicInterval is mochi's $SYS publishing interval in seconds: about 34
// years. Each publish reads MemStats (stopping the world) and stores 20
// retained messages that no device may subscribe to.
const sysTopicInterval = 1 << 30

// dropRetained removes every retained message, i.e. the $SYS values mochi
// publishes once when it starts (devices cannot retain: docs/iothub.md §1.4).
// While any retained message exists, mochi answers every SUBSCRIBE by
// walking the topic tree for matches, recursively, on the device's
// connection goroutine: a large share of connecting's CPU (see
// docs/performance.md), and its stack growth is what each connection keeps.
func dropRetained(s *mqtt.Server) {
	for topic := range s.Topics.Retained.GetAll() {
		s.Topics.RetainMessage(packets.Packet{TopicName: topic})
	}
}
