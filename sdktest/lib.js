'use strict';
// Shared helpers for the compatibility suite. The Go test in sdk_test.go starts
// fleetsim (REST on :443, MQTT over TLS on FLEETSIM_MQTT_ADDR) and passes:
//   FLEETSIM_SERVICE_CS   service connection string (iothubowner)
//   FLEETSIM_HOSTNAME     the hub host name the certificates and SAS use
//   FLEETSIM_MQTT_ADDR    host:port of MQTT over TLS (used as GatewayHostName)
//   NODE_EXTRA_CA_CERTS   fleetsim's generated CA, so the SDKs trust it unchanged
const assert = require('node:assert/strict');
const iothub = require('azure-iothub');
const { Client: DeviceClient } = require('azure-iot-device');
const { Mqtt } = require('azure-iot-device-mqtt');

for (const v of ['FLEETSIM_SERVICE_CS', 'FLEETSIM_HOSTNAME', 'FLEETSIM_MQTT_ADDR', 'NODE_EXTRA_CA_CERTS']) {
  if (!process.env[v]) throw new Error(`${v} is not set: run this suite through "go test ./sdktest" or "make sdktest"`);
}
const serviceCS = process.env.FLEETSIM_SERVICE_CS;
const hostName = process.env.FLEETSIM_HOSTNAME;
const mqttAddr = process.env.FLEETSIM_MQTT_ADDR;

// call runs a callback-style SDK function and resolves with {err, result, response}.
function call(fn) {
  return new Promise((resolve) => fn((err, result, response) => resolve({ err, result, response })));
}

// ok is call() that fails the test on an error.
async function ok(fn, what) {
  const r = await call(fn);
  if (r.err) throw new Error(`${what}: ${r.err.name}: ${r.err.message}`);
  return r;
}

function unique(prefix) {
  return `${prefix}-${process.pid}-${Date.now().toString(36)}-${Math.floor(Math.random() * 1e6)}`;
}

async function createDevice(registry, deviceId, extra) {
  const r = await ok((cb) => registry.create({ deviceId, ...(extra || {}) }, cb), `create ${deviceId}`);
  return r.result;
}

function deviceConnectionString(device) {
  const key = device.authentication.symmetricKey.primaryKey;
  return `HostName=${hostName};DeviceId=${device.deviceId};SharedAccessKey=${key};GatewayHostName=${mqttAddr}`;
}

// openDevice connects a device with the official device SDK over MQTT.
async function openDevice(device, options) {
  const client = DeviceClient.fromConnectionString(deviceConnectionString(device), Mqtt);
  if (options) client.setOptions(options);
  await client.open();
  return client;
}

// waitFor polls cond every 50 ms until it is truthy or the deadline passes.
async function waitFor(cond, what, ms = 10000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await cond();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

module.exports = {
  assert, iothub, DeviceClient, Mqtt, serviceCS, hostName, mqttAddr,
  call, ok, unique, createDevice, deviceConnectionString, openDevice, waitFor,
  registry: () => iothub.Registry.fromConnectionString(serviceCS),
  serviceClient: () => iothub.Client.fromConnectionString(serviceCS),
  jobClient: () => iothub.JobClient.fromConnectionString(serviceCS),
};
