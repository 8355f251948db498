package broker

import (
	"errors"
	"reflect"
	"time"
	"unsafe"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// sweepInterval is how often mochi walks every client for expired sessions
// and inflight messages. Mochi does both once a second and each walk copies
// its whole client map: at 100k devices that took a fifth of a core, all the
// time. Neither sweep can find anything here sooner than this: devices speak
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
// connection goroutine: at 10k devices that walk was 14 % of the connect
// phase's CPU, and its stack growth is what each connection keeps.
func dropRetained(s *mqtt.Server) {
	for topic := range s.Topics.Retained.GetAll() {
		s.Topics.RetainMessage(packets.Packet{TopicName: topic})
	}
}

// stretchSweeps sets mochi's client-expiry and inflight-expiry tickers to
// every. Mochi has no option for them, so it reaches the unexported tickers
// through reflection; if a mochi release renames them it changes nothing and
// says so (and TestStretchSweeps fails).
func stretchSweeps(s *mqtt.Server, every time.Duration) error {
	loop := reflect.ValueOf(s).Elem().FieldByName("loop")
	if !loop.IsValid() || loop.Kind() != reflect.Pointer || loop.IsNil() {
		return errors.New("mochi's Server.loop is gone")
	}
	var tickers []*time.Ticker
	for _, name := range []string{"clientExpiry", "inflightExpiry"} {
		f := loop.Elem().FieldByName(name)
		if !f.IsValid() || f.Type() != reflect.TypeFor[*time.Ticker]() {
			return errors.New("mochi's loop." + name + " is not a *time.Ticker")
		}
		t := *(**time.Ticker)(unsafe.Pointer(f.UnsafeAddr()))
		if t == nil {
			return errors.New("mochi's loop." + name + " is nil")
		}
		tickers = append(tickers, t)
	}
	for _, t := range tickers {
		t.Reset(every)
	}
	return nil
}
