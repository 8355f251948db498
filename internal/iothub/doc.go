// Package iothub holds Azure IoT Hub's wire contract as fleetsim honours it:
// the device MQTT topic grammar, SAS tokens, the CONNECT username, connection
// strings, the limits and naming rules, the twin rules (keys, values, depth,
// sizes) that every twin write obeys, and the table of IoT Hub error codes
// with their HTTP statuses.
//
// It depends on the standard library only, so that the broker, the hub and the
// simulated devices can all share it without depending on one another.
// Section references such as "docs/iothub.md §1.5" point at the repository's
// reference docs; a bare "§4.3" in this package means docs/iothub.md.
package iothub
