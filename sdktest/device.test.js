'use strict';
// Issue: the official Node device SDK connects with a device connection string,
// registers a method handler and a desired-properties handler, and stays usable
// across a forced reconnect and token renewals (persistent session, clean=0).
const { test } = require('node:test');
const mqtt = require('mqtt');
const lib = require('./lib');
const { assert } = lib;

test('device SDK: connect, method and desired handlers, forced reconnect', async () => {
  const registry = lib.registry();
  const service = lib.serviceClient();
  const dev = await lib.createDevice(registry, lib.unique('sdk-dev'));
  const client = await lib.openDevice(dev);
  try {
    let calls = 0;
    client.onDeviceMethod('ping', (req, res) => {
      calls++;
      res.send(200, { pong: req.payload }, () => {});
    });
    const twin = await client.getTwin();
    const desired = [];
    twin.on('properties.desired', (patch) => desired.push(patch));

    const invoke = async (n) => lib.ok((cb) => service.invokeDeviceMethod(dev.deviceId,
      { methodName: 'ping', payload: { n }, responseTimeoutInSeconds: 10, connectTimeoutInSeconds: 10 }, cb), 'invoke');
    let r = await invoke(1);
    assert.equal(r.result.status, 200);
    assert.deepEqual(r.result.payload, { pong: { n: 1 } });

    // Force a reconnect: another connection with the same client id takes the
    // session over, then goes away. The SDK reconnects and re-subscribes only
    // methods; twin responses and desired patches must survive in the session.
    const key = dev.authentication.symmetricKey.primaryKey;
    const { SharedAccessSignature } = require('azure-iot-common');
    const { anHourFromNow } = require('azure-iot-common');
    const sas = SharedAccessSignature.create(encodeURIComponent(`${lib.hostName}/devices/${dev.deviceId}`), null, key, anHourFromNow()).toString();
    const [h, p] = lib.mqttAddr.split(':');
    const intruder = mqtt.connect({
      host: h, port: Number(p), protocol: 'mqtts', clientId: dev.deviceId, clean: false,
      username: `${lib.hostName}/${dev.deviceId}/?api-version=2021-04-12`, password: sas, reconnectPeriod: 0,
      servername: lib.hostName === 'localhost' ? undefined : lib.hostName,
    });
    await new Promise((resolve, reject) => { intruder.once('connect', resolve); intruder.once('error', reject); });
    await new Promise((resolve) => intruder.end(true, {}, resolve));

    r = await lib.waitFor(async () => {
      const x = await lib.call((cb) => service.invokeDeviceMethod(dev.deviceId,
        { methodName: 'ping', payload: { n: 2 }, responseTimeoutInSeconds: 5, connectTimeoutInSeconds: 10 }, cb));
      return x.err ? null : x;
    }, 'method after forced reconnect', 30000);
    assert.equal(r.result.status, 200);
    assert.deepEqual(r.result.payload, { pong: { n: 2 } });

    // Desired push after the reconnect still reaches the device.
    await lib.ok((cb) => registry.updateTwin(dev.deviceId, { properties: { desired: { color: 'green' } } }, '*', cb), 'updateTwin');
    await lib.waitFor(() => desired.some((d) => d.color === 'green'), 'desired patch after reconnect');
    assert.ok(calls >= 2);
  } finally {
    await client.close();
  }
});

test('device SDK: token renewal keeps the session', async () => {
  const registry = lib.registry();
  const service = lib.serviceClient();
  const dev = await lib.createDevice(registry, lib.unique('sdk-renew'));
  // Renew every 2 s (valid 12 s, renewed 10 s before expiry): DISCONNECT, new
  // CONNECT with the same client id and clean=0, and no SUBSCRIBE afterwards.
  const client = await lib.openDevice(dev, { tokenRenewal: { tokenValidTimeInSeconds: 12, tokenRenewalMarginInSeconds: 10 } });
  try {
    client.onDeviceMethod('echo', (req, res) => res.send(201, req.payload, () => {}));
    const twin = await client.getTwin();
    const seen = [];
    twin.on('properties.desired', (patch) => seen.push(patch));
    await new Promise((r) => setTimeout(r, 5000)); // at least two renewals
    const r = await lib.ok((cb) => service.invokeDeviceMethod(dev.deviceId,
      { methodName: 'echo', payload: 'x', responseTimeoutInSeconds: 10, connectTimeoutInSeconds: 5 }, cb), 'invoke after renewal');
    assert.equal(r.result.status, 201);
    assert.equal(r.result.payload, 'x');
    await lib.ok((cb) => registry.updateTwin(dev.deviceId, { properties: { desired: { rate: 7 } } }, '*', cb), 'updateTwin');
    await lib.waitFor(() => seen.some((d) => d.rate === 7), 'desired patch after renewals');
    await new Promise((resolve, reject) => twin.properties.reported.update({ renewed: true }, (e) => (e ? reject(e) : resolve())));
    const t = await lib.ok((cb) => registry.getTwin(dev.deviceId, cb), 'getTwin');
    assert.equal(t.result.properties.reported.renewed, true);
  } finally {
    await client.close();
  }
});

test('device SDK: a wrong key is refused as unauthorized and not retried', async () => {
  const registry = lib.registry();
  const dev = await lib.createDevice(registry, lib.unique('sdk-badkey'));
  dev.authentication.symmetricKey.primaryKey = Buffer.alloc(32, 7).toString('base64');
  await assert.rejects(lib.openDevice(dev), (err) => err.name === 'UnauthorizedError');
});

// A device token signed with a shared access policy key (skn names the
// policy, sr the device) authenticates the device when the policy grants
// DeviceConnect, as IoT Hub documents; a policy without it is refused. The
// token goes through the SDK's public AuthenticationProvider extension point,
// which also carries GatewayHostName (the hub's MQTT port in this suite).
test('device SDK: a token signed with a DeviceConnect policy key connects the device', async () => {
  const { EventEmitter } = require('node:events');
  const { AuthenticationType, ConnectionString, SharedAccessSignature, anHourFromNow } = require('azure-iot-common');
  for (const v of ['FLEETSIM_DEVICE_POLICY_CS', 'FLEETSIM_SERVICE_POLICY_CS']) {
    if (!process.env[v]) throw new Error(`${v} is not set: run this suite through "go test ./sdktest"`);
  }
  const registry = lib.registry();
  const service = lib.serviceClient();
  const dev = await lib.createDevice(registry, lib.unique('sdk-policy'));
  const tokenFrom = (policyCS) => {
    const cs = ConnectionString.parse(policyCS);
    return SharedAccessSignature.create(encodeURIComponent(`${lib.hostName}/devices/${dev.deviceId}`),
      cs.SharedAccessKeyName, cs.SharedAccessKey, anHourFromNow()).toString();
  };
  class PolicyToken extends EventEmitter {
    constructor(sas) { super(); this.type = AuthenticationType.Token; this.sas = sas; }
    getDeviceCredentials(cb) {
      const creds = { host: lib.hostName, deviceId: dev.deviceId, sharedAccessSignature: this.sas, gatewayHostName: lib.mqttAddr };
      if (cb) { cb(null, creds); return undefined; }
      return Promise.resolve(creds);
    }
    stop() {}
  }

  const refused = lib.DeviceClient.fromAuthenticationProvider(new PolicyToken(tokenFrom(process.env.FLEETSIM_SERVICE_POLICY_CS)), lib.Mqtt);
  await assert.rejects(refused.open(), 'a policy without DeviceConnect connected the device');
  await refused.close().catch(() => {});

  const client = lib.DeviceClient.fromAuthenticationProvider(new PolicyToken(tokenFrom(process.env.FLEETSIM_DEVICE_POLICY_CS)), lib.Mqtt);
  await client.open();
  try {
    client.onDeviceMethod('whoami', (req, res) => res.send(200, { id: dev.deviceId }, () => {}));
    const r = await lib.waitFor(async () => {
      const x = await lib.call((cb) => service.invokeDeviceMethod(dev.deviceId,
        { methodName: 'whoami', payload: null, responseTimeoutInSeconds: 5, connectTimeoutInSeconds: 5 }, cb));
      return x.err ? null : x;
    }, 'method on the policy-authenticated device', 20000);
    assert.equal(r.result.status, 200);
    assert.deepEqual(r.result.payload, { id: dev.deviceId });
  } finally {
    await client.close();
  }
});
