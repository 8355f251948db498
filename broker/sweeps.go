package broker

import (
	"errors"
	"reflect"
	"time"
	"unsafe"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// sweepInterval is how often mochi walks every client for expired sessions
// and inflight messages. Mochi does both once a second and each walk copies
// its whole client map: at 100k devices that took a fifth of a core, all the
// time. Neither sweep can find anything here sooner than this: devices speak
// MQTT 3.1.1, so sessions and inflight messages expire only by the server's
// maxima (sessions never, inflight messages after a day).
const sweepInterval = time.Minute

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
