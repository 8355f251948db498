// Package deps pins the module's dependencies while the packages that use them are written; it is removed once every dependency is imported for real.
package deps

import (
	_ "github.com/eclipse/paho.mqtt.golang"
	_ "github.com/gorilla/websocket"
	_ "github.com/mochi-mqtt/server/v2"
	_ "github.com/rs/zerolog"
	_ "go.etcd.io/bbolt"
	_ "go.uber.org/goleak"
	_ "golang.org/x/sync/errgroup"
	_ "gopkg.in/yaml.v3"
)
