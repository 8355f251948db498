'use strict';
// Issue: a device built on the official Node device SDK receives
// cloud-to-device messages. IoT Hub's service SDKs send them over AMQP,
// which fleetsim does not serve, so the test sends through fleetsim's own
// REST endpoint, POST /fleetsim/v1/devices/{id}/messages, with a service
// SAS token as every service request carries.
const { test } = require('node:test');
const https = require('node:https');
const { ConnectionString, SharedAccessSignature, anHourFromNow } = require('azure-iot-common');
const lib = require('./lib');
const { assert } = lib;

// c2d calls the endpoint; it resolves with the status, the iothub-errorcode
// header and the JSON answer.
function c2d(method, deviceId, body) {
  const cs = ConnectionString.parse(lib.serviceCS);
  const sas = SharedAccessSignature.create(encodeURIComponent(cs.HostName), cs.SharedAccessKeyName, cs.SharedAccessKey, anHourFromNow()).toString();
  const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = https.request({
      host: cs.HostName, method,
      path: `/fleetsim/v1/devices/${encodeURIComponent(deviceId)}/messages?api-version=2021-04-12`,
      headers: { Authorization: sas, 'Content-Type': 'application/json', ...(data ? { 'Content-Length': data.length } : {}) },
    }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        resolve({ status: res.statusCode, code: res.headers['iothub-errorcode'], body: text ? JSON.parse(text) : undefined });
      });
    });
    req.on('error', reject);
    if (data) req.write(data);
    req.end();
  });
}

test('device SDK: receives a cloud-to-device message with its properties and completes it', async () => {
  const registry = lib.registry();
  const dev = await lib.createDevice(registry, lib.unique('sdk-c2d'));
  // Sent while the device is offline: the message waits for it.
  const sent = await c2d('POST', dev.deviceId, {
    data: 'hello device', messageId: 'mid-1', correlationId: 'cid-1', contentType: 'text/plain', contentEncoding: 'utf-8',
    properties: { kind: 'greeting', 'a b': 'x&y=z/+' }, ttlSeconds: 600,
  });
  assert.equal(sent.status, 201, JSON.stringify(sent.body));
  assert.equal(sent.body.messageId, 'mid-1');
  assert.equal(sent.body.durable, true); // the suite's hub keeps its data in a directory

  const client = await lib.openDevice(dev);
  try {
    const got = [];
    client.on('message', (msg) => {
      got.push(msg);
      client.complete(msg, () => {});
    });
    const msg = await lib.waitFor(() => got[0], 'the waiting message');
    assert.equal(msg.data.toString(), 'hello device');
    assert.equal(msg.messageId, 'mid-1');
    assert.equal(msg.correlationId, 'cid-1');
    assert.equal(msg.contentType, 'text/plain');
    assert.equal(msg.contentEncoding, 'utf-8');
    assert.equal(msg.to, `/devices/${dev.deviceId}/messages/deviceBound`);
    assert.equal(msg.properties.getValue('kind'), 'greeting');
    assert.equal(msg.properties.getValue('a b'), 'x&y=z/+');
    // $.exp carries the expiry to the millisecond.
    assert.ok(Math.abs(Date.parse(msg.expiryTimeUtc) - Date.parse(sent.body.expiryTimeUtc)) < 1000, `${msg.expiryTimeUtc} vs ${sent.body.expiryTimeUtc}`);

    // Sent while online: delivered at once. The PUBACK completes both.
    const second = await c2d('POST', dev.deviceId, { data: '{"op":"ping"}', contentType: 'application/json' });
    assert.equal(second.status, 201);
    const msg2 = await lib.waitFor(() => got[1], 'the second message');
    assert.equal(msg2.messageId, second.body.messageId);
    assert.deepEqual(JSON.parse(msg2.data.toString()), { op: 'ping' });
    await lib.waitFor(async () => {
      const st = await c2d('GET', dev.deviceId);
      return st.status === 200 && st.body.counts.completed === 2 && st.body.counts.queued === 0;
    }, 'both messages completed');
  } finally {
    await client.close();
    await lib.call((cb) => registry.delete(dev.deviceId, cb));
  }
});

test('fleetsim C2D endpoint: unknown device and bad body get IoT Hub error bodies', async () => {
  const r = await c2d('POST', lib.unique('nobody'), { data: 'x' });
  assert.equal(r.status, 404);
  assert.equal(r.code, 'DeviceNotFound');
  assert.match(r.body.Message, /DeviceNotFound/);
  const registry = lib.registry();
  const dev = await lib.createDevice(registry, lib.unique('sdk-c2d-bad'));
  try {
    const bad = await c2d('POST', dev.deviceId, { body: 'not a field' });
    assert.equal(bad.status, 400);
    assert.equal(bad.code, 'ArgumentInvalid');
    assert.equal(JSON.parse(bad.body.Message).errorCode, 400004);
  } finally {
    await lib.call((cb) => registry.delete(dev.deviceId, cb));
  }
});
