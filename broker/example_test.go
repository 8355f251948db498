package broker_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/url"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"

	"github.com/fleetsim/fleetsim/broker"
	"github.com/fleetsim/fleetsim/internal/iothub"
)

// registry is the smallest Identities: one device with one key.
type registry struct{ key []byte }

func (r registry) DeviceCredentials(id string) (broker.Credentials, error) {
	if id != "thermostat-1" {
		return broker.Credentials{}, fmt.Errorf("%s: %w", id, broker.ErrUnknownDevice)
	}
	return broker.Credentials{PrimaryKey: r.key, Enabled: true}, nil
}

// Start a broker with only the in-process transport, connect a device with
// paho as the IoT Hub device SDKs do (SAS token as password, clean session 0),
// and send it a direct-method request.
func Example() {
	const hub = "fleetsim.local"
	key := []byte("an example device key, 32 bytes")
	s, err := broker.New(broker.Config{Hostname: hub, Identities: registry{key}})
	if err != nil {
		fmt.Println(err)
		return
	}
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	defer func() {
		stop()
		<-done
	}()
	<-s.Ready()

	id := "thermostat-1"
	opts := paho.NewClientOptions().
		AddBroker("tcp://fleetsim.local:8883"). // any URL: the dialer below replaces it
		SetCustomOpenConnectionFn(func(*url.URL, paho.ClientOptions) (net.Conn, error) {
			return s.DialMemory(context.Background())
		}).
		SetClientID(id).
		SetUsername(iothub.DeviceUsername(hub, id, "example")).
		SetPassword(iothub.NewSAS(iothub.DeviceResource(hub, id), key, "", time.Now().Add(time.Hour))).
		SetCleanSession(false).
		SetProtocolVersion(4).
		SetAutoReconnect(false)
	device := paho.NewClient(opts)
	if tok := device.Connect(); tok.Wait() && tok.Error() != nil {
		fmt.Println(tok.Error())
		return
	}
	defer device.Disconnect(0)

	calls := make(chan string, 1)
	device.Subscribe(iothub.FilterMethods, 0, func(_ paho.Client, m paho.Message) {
		calls <- m.Topic() + " " + string(m.Payload())
	}).Wait()

	fmt.Println(s.Connected(id), s.Subscribed(id, iothub.FilterMethods)) // the session is live before mochi reads SUBSCRIBE
	if err := s.Deliver(id, iothub.MethodRequestTopic("reboot", "1"), []byte(`{"delay":5}`)); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(<-calls)

	err = s.Deliver("nobody", iothub.MethodRequestTopic("reboot", "2"), nil)
	fmt.Println(errors.Is(err, broker.ErrNotConnected))
	// Output:
	// true true
	// $iothub/methods/POST/reboot/?$rid=1 {"delay":5}
	// true
}
