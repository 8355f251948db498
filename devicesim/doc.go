// Package devicesim simulates IoT Hub devices as real MQTT clients (paho), so
// a hub under test sees exactly what firmware built on the official device SDK
// puts on the wire: CONNECT with a SAS password and clean session 0, the three
// $iothub subscriptions at QoS 0, a twin GET on connect, reported patches
// matched by $rid, answers to direct methods, and token renewal by reconnect
// (docs/iothub.md §1–3, docs/sdk-notes.md §2).
//
// What a device does is data: a Behavior holds plain structs (method latency
// and status mix, reboot, firmware update, desired-property acknowledgement,
// connectivity flapping, telemetry) whose random choices all come from a
// per-device generator seeded from hash(deviceID) ^ seed, so one seed replays
// the same fleet.
//
// Cost model. paho spends about nine goroutines per connection (ten with
// keep-alive); devicesim adds none while a device is idle. Each Device is an
// event-driven state machine: paho's router and a shared timer scheduler post
// events to the device's small bounded queue, and a goroutine runs only while
// the queue has work (a serial executor), owned by the device and waited for
// by Run. Timers live in one heap per Device and one shared Scheduler per
// Fleet, never in a per-device runtime timer or goroutine.
package devicesim
