package broker

import (
	"testing"
	"time"

	mqtt "github.com/mochi-mqtt/server/v2"
)

// TestStretchSweeps fails when a mochi release moves the tickers that
// stretchSweeps reaches, so an upgrade cannot silently bring back the
// once-a-second walk over every client.
func TestStretchSweeps(t *testing.T) {
	s := mqtt.New(nil)
	defer s.Close()
	if err := stretchSweeps(s, time.Hour); err != nil {
		t.Fatal(err)
	}
}
