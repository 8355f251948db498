'use strict';
// Issue 17: module identities through the official SDKs, unchanged: the
// service SDK's Registry module calls and module methods, and the device
// SDK's ModuleClient over MQTT (twin, reported and desired properties,
// direct methods).
const { test } = require('node:test');
const { ModuleClient } = require('azure-iot-device');
const lib = require('./lib');
const { assert } = lib;

function moduleConnectionString(mod) {
  const key = mod.authentication.symmetricKey.primaryKey;
  return `HostName=${lib.hostName};DeviceId=${mod.deviceId};ModuleId=${mod.moduleId};SharedAccessKey=${key};GatewayHostName=${lib.mqttAddr}`;
}

test('service SDK: module identities and module twins', async () => {
  const registry = lib.registry();
  const dev = await lib.createDevice(registry, lib.unique('sdk-mod-dev'));
  const added = await lib.ok((cb) => registry.addModule({ deviceId: dev.deviceId, moduleId: 'edge-a' }, cb), 'addModule');
  assert.equal(added.result.moduleId, 'edge-a');
  assert.equal(added.result.deviceId, dev.deviceId);
  assert.ok(added.result.authentication.symmetricKey.primaryKey, 'a key is generated');
  await lib.ok((cb) => registry.addModule({ deviceId: dev.deviceId, moduleId: 'edge-b' }, cb), 'addModule b');

  const dup = await lib.call((cb) => registry.addModule({ deviceId: dev.deviceId, moduleId: 'edge-a' }, cb));
  assert.ok(dup.err, 'a second module with the same id is refused');
  assert.equal(dup.err.response.statusCode, 409);

  const got = await lib.ok((cb) => registry.getModule(dev.deviceId, 'edge-a', cb), 'getModule');
  assert.equal(got.result.etag, added.result.etag);
  const list = await lib.ok((cb) => registry.getModulesOnDevice(dev.deviceId, cb), 'getModulesOnDevice');
  assert.deepEqual(list.result.map((m) => m.moduleId), ['edge-a', 'edge-b']);

  const upd = await lib.ok((cb) => registry.updateModule({ ...got.result, managedBy: 'ops' }, cb), 'updateModule');
  assert.equal(upd.result.managedBy, 'ops');
  assert.notEqual(upd.result.etag, got.result.etag);
  const stale = await lib.call((cb) => registry.updateModule({ ...got.result, managedBy: 'x' }, cb));
  assert.ok(stale.err, 'a stale etag is refused');
  assert.equal(stale.err.response.statusCode, 412);

  const twin = await lib.ok((cb) => registry.getModuleTwin(dev.deviceId, 'edge-a', cb), 'getModuleTwin');
  assert.equal(twin.result.moduleId, 'edge-a');
  const patched = await lib.ok((cb) => registry.updateModuleTwin(dev.deviceId, 'edge-a',
    { tags: { role: 'camera' }, properties: { desired: { fps: 30 } } }, twin.result.etag, cb), 'updateModuleTwin');
  assert.equal(patched.result.tags.role, 'camera');
  assert.equal(patched.result.properties.desired.fps, 30);
  const devTwin = await lib.ok((cb) => registry.getTwin(dev.deviceId, cb), 'getTwin of the device');
  assert.equal(devTwin.result.properties.desired.fps, undefined, 'the device twin is its own');

  const q = registry.createQuery(`SELECT * FROM devices.modules WHERE deviceId = '${dev.deviceId}' AND tags.role = 'camera'`, 10);
  const rows = await lib.ok((cb) => q.nextAsTwin(cb), 'query devices.modules');
  assert.deepEqual(rows.result.map((t) => t.moduleId), ['edge-a']);

  await lib.ok((cb) => registry.removeModule(dev.deviceId, 'edge-b', cb), 'removeModule');
  const gone = await lib.call((cb) => registry.getModule(dev.deviceId, 'edge-b', cb));
  assert.ok(gone.err, 'a removed module is gone');
  assert.equal(gone.err.response.statusCode, 404);

  await lib.ok((cb) => registry.delete(dev.deviceId, cb), 'delete device');
  const orphan = await lib.call((cb) => registry.getModule(dev.deviceId, 'edge-a', cb));
  assert.ok(orphan.err, 'deleting the device deletes its modules');
  assert.equal(orphan.err.response.statusCode, 404);
});

test('device SDK: ModuleClient twin, desired patches and module methods', async () => {
  const registry = lib.registry();
  const service = lib.serviceClient();
  const dev = await lib.createDevice(registry, lib.unique('sdk-mod-conn'));
  const mod = (await lib.ok((cb) => registry.addModule({ deviceId: dev.deviceId, moduleId: 'sensor' }, cb), 'addModule')).result;
  const client = ModuleClient.fromConnectionString(moduleConnectionString(mod), lib.Mqtt);
  const device = await lib.openDevice(dev);
  try {
    await client.open();
    const deviceCalls = [];
    device.onDeviceMethod('whoami', (req, res) => { deviceCalls.push(req); res.send(200, 'device', () => {}); });
    client.onMethod('whoami', (req, res) => res.send(200, { module: mod.moduleId, got: req.payload }, () => {}));

    const twin = await client.getTwin();
    const desired = [];
    twin.on('properties.desired', (patch) => desired.push(patch));
    await new Promise((resolve, reject) => twin.properties.reported.update({ temp: 21 }, (err) => (err ? reject(err) : resolve())));
    const st = await lib.ok((cb) => registry.getModuleTwin(dev.deviceId, 'sensor', cb), 'getModuleTwin');
    assert.equal(st.result.properties.reported.temp, 21);
    const dt = await lib.ok((cb) => registry.getTwin(dev.deviceId, cb), 'getTwin');
    assert.equal(dt.result.properties.reported.temp, undefined, 'the module reported to its own twin');

    await lib.ok((cb) => registry.updateModuleTwin(dev.deviceId, 'sensor', { properties: { desired: { rate: 5 } } }, '*', cb), 'updateModuleTwin');
    await lib.waitFor(() => desired.some((d) => d.rate === 5), 'module desired patch');

    const r = await lib.ok((cb) => service.invokeDeviceMethod(dev.deviceId, 'sensor',
      { methodName: 'whoami', payload: { n: 1 }, responseTimeoutInSeconds: 10, connectTimeoutInSeconds: 10 }, cb), 'invoke module method');
    assert.equal(r.result.status, 200);
    assert.deepEqual(r.result.payload, { module: 'sensor', got: { n: 1 } });
    assert.equal(deviceCalls.length, 0, 'the device does not see its module\'s method calls');

    const d = await lib.ok((cb) => service.invokeDeviceMethod(dev.deviceId,
      { methodName: 'whoami', payload: null, responseTimeoutInSeconds: 10, connectTimeoutInSeconds: 10 }, cb), 'invoke device method');
    assert.equal(d.result.payload, 'device');

    const missing = await lib.call((cb) => service.invokeDeviceMethod(dev.deviceId, 'nosuch',
      { methodName: 'whoami', payload: null, responseTimeoutInSeconds: 5, connectTimeoutInSeconds: 0 }, cb));
    assert.ok(missing.err, 'an unknown module is refused');
    assert.equal(missing.err.response.statusCode, 404);
  } finally {
    await client.close();
    await device.close();
  }
});
