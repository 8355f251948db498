'use strict';
// Issue: Registry create/get/list/delete, getTwin/updateTwin and
// Client.invokeDeviceMethod from the official service SDK, unchanged, against
// devices on the official device SDK: results, desired push, reported round
// trip, and the offline and timeout errors.
const { test } = require('node:test');
const lib = require('./lib');
const { assert } = lib;

test('registry: create, get, list, update, delete', async () => {
  const registry = lib.registry();
  const id = lib.unique('sdk-reg');
  const created = await lib.createDevice(registry, id);
  assert.equal(created.deviceId, id);
  assert.equal(created.status, 'enabled');
  assert.ok(created.authentication.symmetricKey.primaryKey.length >= 40, 'keys are generated');
  assert.ok(created.etag);

  const dup = await lib.call((cb) => registry.create({ deviceId: id }, cb));
  assert.equal(dup.err && dup.err.name, 'DeviceAlreadyExistsError');

  const got = await lib.ok((cb) => registry.get(id, cb), 'get');
  assert.equal(got.result.deviceId, id);
  assert.equal(got.result.authentication.symmetricKey.primaryKey, created.authentication.symmetricKey.primaryKey);

  const list = await lib.ok((cb) => registry.list(cb), 'list');
  assert.ok(list.result.some((d) => d.deviceId === id));

  const upd = await lib.ok((cb) => registry.update({ deviceId: id, status: 'disabled' }, cb), 'update');
  assert.equal(upd.result.status, 'disabled');

  const stats = await lib.ok((cb) => registry.getRegistryStatistics(cb), 'statistics');
  assert.ok(stats.result.totalDeviceCount >= 1);
  assert.ok(stats.result.disabledDeviceCount >= 1);

  await lib.ok((cb) => registry.delete(id, cb), 'delete');
  const gone = await lib.call((cb) => registry.get(id, cb));
  assert.equal(gone.err && gone.err.name, 'DeviceNotFoundError');
});

test('twins: get, update with etag, desired push and reported round trip', async () => {
  const registry = lib.registry();
  const dev = await lib.createDevice(registry, lib.unique('sdk-twin'));
  const client = await lib.openDevice(dev);
  try {
    const dtwin = await client.getTwin();
    const patches = [];
    dtwin.on('properties.desired', (p) => patches.push(p));

    const t0 = await lib.ok((cb) => registry.getTwin(dev.deviceId, cb), 'getTwin');
    assert.equal(t0.result.deviceId, dev.deviceId);
    assert.ok(t0.result.etag);

    const t1 = await lib.ok((cb) => registry.updateTwin(dev.deviceId,
      { tags: { building: '43', floor: 3 }, properties: { desired: { telemetryInterval: 30 } } }, t0.result.etag, cb), 'updateTwin');
    assert.equal(t1.result.tags.building, '43');
    assert.equal(t1.result.properties.desired.telemetryInterval, 30);
    assert.notEqual(t1.result.etag, t0.result.etag);

    const stale = await lib.call((cb) => registry.updateTwin(dev.deviceId, { tags: { x: 1 } }, t0.result.etag, cb));
    assert.equal(stale.err && stale.err.name, 'InvalidEtagError');

    await lib.waitFor(() => patches.some((p) => p.telemetryInterval === 30), 'desired patch on the device');
    const last = patches.find((p) => p.telemetryInterval === 30);
    assert.equal(typeof last.$version, 'number');

    await new Promise((resolve, reject) => dtwin.properties.reported.update({ firmware: { version: '1.2.3' } }, (e) => (e ? reject(e) : resolve())));
    const t2 = await lib.ok((cb) => registry.getTwin(dev.deviceId, cb), 'getTwin after reported');
    assert.equal(t2.result.properties.reported.firmware.version, '1.2.3');
    assert.equal(t2.result.connectionState, 'Connected');

    const bad = await lib.call((cb) => registry.updateTwin(dev.deviceId, { tags: { 'a.b': 1 } }, '*', cb));
    assert.equal(bad.err && bad.err.name, 'ArgumentError');
  } finally {
    await client.close();
  }
});

test('direct methods: result, device error status, offline, timeout, unknown device', async () => {
  const registry = lib.registry();
  const service = lib.serviceClient();
  const dev = await lib.createDevice(registry, lib.unique('sdk-method'));
  const client = await lib.openDevice(dev);
  try {
    client.onDeviceMethod('reboot', (req, res) => res.send(200, { rebooting: true, asked: req.payload }, () => {}));
    client.onDeviceMethod('fail', (req, res) => res.send(500, { error: 'requested failure' }, () => {}));
    client.onDeviceMethod('silent', () => {}); // never answers

    let r = await lib.ok((cb) => service.invokeDeviceMethod(dev.deviceId,
      { methodName: 'reboot', payload: { delay: 1 }, responseTimeoutInSeconds: 10, connectTimeoutInSeconds: 5 }, cb), 'invoke reboot');
    assert.equal(r.result.status, 200);
    assert.deepEqual(r.result.payload, { rebooting: true, asked: { delay: 1 } });

    // A device status of 500 comes back as HTTP 200 {status: 500}, so the SDK does not retry.
    r = await lib.ok((cb) => service.invokeDeviceMethod(dev.deviceId,
      { methodName: 'fail', payload: null, responseTimeoutInSeconds: 10 }, cb), 'invoke fail');
    assert.equal(r.result.status, 500);
    assert.deepEqual(r.result.payload, { error: 'requested failure' });

    r = await lib.call((cb) => service.invokeDeviceMethod(dev.deviceId,
      { methodName: 'silent', payload: 1, responseTimeoutInSeconds: 5 }, cb));
    assert.equal(r.err && r.err.name, 'GatewayTimeoutError');

    r = await lib.call((cb) => service.invokeDeviceMethod('no-such-device-' + Date.now(),
      { methodName: 'reboot', responseTimeoutInSeconds: 5 }, cb));
    assert.equal(r.err && r.err.name, 'DeviceNotFoundError');
  } finally {
    await client.close();
  }
  // Offline: registered but not connected → 404 DeviceNotOnline (404103).
  const off = await lib.call((cb) => service.invokeDeviceMethod(dev.deviceId,
    { methodName: 'reboot', responseTimeoutInSeconds: 5, connectTimeoutInSeconds: 0 }, cb));
  assert.ok(off.err, 'offline device must fail');
  const offResponse = off.response || off.err.response; // the SDK puts the HTTP response on the error
  assert.equal(offResponse && offResponse.statusCode, 404);
  assert.match(JSON.stringify(off.err.responseBody || off.err.message), /404103|DeviceNotOnline/);
});
