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
	type loopOK struct{ clientExpiry, inflightExpiry *time.Ticker }
	type loopRenamed struct{ clientExpiry, inflightSweep *time.Ticker }
	type loopRetyped struct {
		clientExpiry   *time.Ticker
		inflightExpiry time.Duration
	}
	for _, tc := range []struct {
		name   string
		client reflect.Type
		server reflect.Type
		ok     bool
	}{
		{"mochi's own", reflect.TypeFor[mqtt.ClientState](), reflect.TypeFor[mqtt.Server](), true},
		{"the assumed layout", reflect.TypeFor[struct {
			outbound    chan *packets.Packet
			outboundQty int32
		}](), reflect.TypeFor[struct{ loop *loopOK }](), true},
		{"no queue", reflect.TypeFor[struct{ outboundQty int32 }](), reflect.TypeFor[struct{ loop *loopOK }](), false},
		{"count retyped", reflect.TypeFor[struct {
			outbound    chan *packets.Packet
			outboundQty int64
		}](), reflect.TypeFor[struct{ loop *loopOK }](), false},
		{"queue of values", reflect.TypeFor[struct {
			outbound    chan packets.Packet
			outboundQty int32
		}](), reflect.TypeFor[struct{ loop *loopOK }](), false},
		{"no loop", reflect.TypeFor[mqtt.ClientState](), reflect.TypeFor[struct{ other *loopOK }](), false},
		{"loop by value", reflect.TypeFor[mqtt.ClientState](), reflect.TypeFor[struct{ loop loopOK }](), false},
		{"ticker renamed", reflect.TypeFor[mqtt.ClientState](), reflect.TypeFor[struct{ loop *loopRenamed }](), false},
		{"ticker retyped", reflect.TypeFor[mqtt.ClientState](), reflect.TypeFor[struct{ loop *loopRetyped }](), false},
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
