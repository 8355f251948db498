// Package restapi is the hub's HTTPS service API: the registry, twin,
// direct-method, query and Jobs v2 endpoints that the official Azure IoT
// service SDKs call unchanged (docs/iothub.md §4, §5), service SAS authentication
// against shared access policies (§4.2), and the one place where errors are
// written as IoT Hub error bodies (§2.3).
//
// It also holds a small Client for the same API, used by the fleetsim command
// and by tests; it signs each request the way the Node service SDK does and
// turns error answers back into *iothub.Error.
//
// The package declares the interfaces it calls, one per handler group
// (Devices, Statistics, Twins, Methods, DeviceQueries, Modules, Jobs); the
// wiring checks them against hubjobs/registry and the hubjobs/jobs engine.
package restapi
