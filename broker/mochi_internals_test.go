package broker

import (
	"reflect"
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
	"github.com/mochi-mqtt/server/v2/packets"
)

// TestMochiInternals fails when a mochi release moves what the broker
// reaches in mochi's internals (the write queue, the sweep tickers), so an
// upgrade cannot silently break delivery or bring back the once-a-second
// walk over every client. TestDeliverInOrder uses the write queue on a live
// connection.
func TestMochiInternals(t *testing.T) {
	if mochiInternalsErr != nil {
		t.Fatal(mochiInternalsErr)
	}
	s := mqtt.New(nil)
	defer s.Close()
	if err := stretchSweeps(s, time.Hour); err != nil {
		t.Fatal(err)
	}
}

// TestMochiLayoutChecks: the start-up checks refuse layouts other than the
// one the reaches assume.
func TestMochiLayoutChecks(t *testing.T) {
	ticker := reflect.TypeFor[*time.Ticker]()
	queue := reflect.TypeFor[chan *packets.Packet]()
	int32T := reflect.TypeFor[int32]()
	loopOK := structOf("clientExpiry", ticker, "inflightExpiry", ticker)
	loopRenamed := structOf("clientExpiry", ticker, "inflightSweep", ticker)
	loopRetyped := structOf("clientExpiry", ticker, "inflightExpiry", reflect.TypeFor[time.Duration]())
	mochiClient, mochiServer := reflect.TypeFor[mqtt.ClientState](), reflect.TypeFor[mqtt.Server]()
	for _, tc := range []struct {
		name   string
		client reflect.Type
		server reflect.Type
		ok     bool
	}{
		{"mochi's own", mochiClient, mochiServer, true},
		{"the assumed layout", structOf("outbound", queue, "outboundQty", int32T), structOf("loop", reflect.PointerTo(loopOK)), true},
		{"no queue", structOf("outboundQty", int32T), mochiServer, false},
		{"count retyped", structOf("outbound", queue, "outboundQty", reflect.TypeFor[int64]()), mochiServer, false},
		{"queue of values", structOf("outbound", reflect.TypeFor[chan packets.Packet](), "outboundQty", int32T), mochiServer, false},
		{"no loop", mochiClient, structOf("other", reflect.PointerTo(loopOK)), false},
		{"loop by value", mochiClient, structOf("loop", loopOK), false},
		{"ticker renamed", mochiClient, structOf("loop", reflect.PointerTo(loopRenamed)), false},
		{"ticker retyped", mochiClient, structOf("loop", reflect.PointerTo(loopRetyped)), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, qerr := outboundFields(tc.client)
			serr := sweepTickerFields(tc.server)
			if ok := qerr == nil && serr == nil; ok != tc.ok {
				t.Errorf("checks say %v, %v; want ok %v", qerr, serr, tc.ok)
			}
		})
	}
}

// structOf makes a struct type of unexported fields, given as name, type
// pairs: a stand-in for a layout mochi might have.
func structOf(nameTypes ...any) reflect.Type {
	var fs []reflect.StructField
	for i := 0; i < len(nameTypes); i += 2 {
		fs = append(fs, reflect.StructField{Name: nameTypes[i].(string), PkgPath: "mochi", Type: nameTypes[i+1].(reflect.Type)})
	}
	return reflect.StructOf(fs)
}
