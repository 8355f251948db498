package main

import (
	"testing"
	"time"
)

func TestCoordFlags(t *testing.T) {
	env := func(string) string { return "" }
	for _, tt := range []struct {
		name    string
		f       coordFlags
		wantErr bool
		cancel  bool
	}{
		{"defaults", coordFlags{barrierTimeout: time.Minute, heartbeatTimeout: time.Second, atEnd: "leave"}, false, false},
		{"cancel", coordFlags{barrierTimeout: time.Minute, heartbeatTimeout: time.Second, atEnd: "cancel"}, false, true},
		{"bad at-end", coordFlags{barrierTimeout: time.Minute, heartbeatTimeout: time.Second, atEnd: "kill"}, true, false},
		{"zero timeout", coordFlags{heartbeatTimeout: time.Second, atEnd: "leave"}, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, err := tt.f.resolve(env)
			if (err != nil) != tt.wantErr || c.CancelAtEnd != tt.cancel {
				t.Errorf("resolve: %+v, %v", c, err)
			}
		})
	}
}
