// Package sdktest is the compatibility suite: the official Azure IoT Node SDKs
// (azure-iothub, azure-iot-device, azure-iot-device-mqtt, pinned in
// package-lock.json), unchanged, against a whole fleetsim hub. The Go test
// starts the hub with its REST API on port 443 (the Node service SDK cannot use
// another port) and runs the *.test.js files with node's test runner.
package sdktest
