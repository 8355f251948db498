'use strict';
// Issue 17: X.509 devices. The azure-iothub Registry creates self-signed
// (thumbprints) and CA-signed devices; the official device SDK connects them
// with `x509=true` in the connection string and setOptions({cert, key}),
// unchanged. The Go test makes the certificates (FLEETSIM_X509_DIR: a CA the
// hub trusts, a self-signed certificate with CN x509-self, a certificate for
// x509-ca signed by the CA, and a second self-signed one that matches no
// registered thumbprint) before it starts the hub.
const { test } = require('node:test');
const fs = require('node:fs');
const path = require('node:path');
const crypto = require('node:crypto');
const { MqttWs } = require('azure-iot-device-mqtt');
const lib = require('./lib');
const { assert } = lib;

const dir = process.env.FLEETSIM_X509_DIR;
if (!dir) throw new Error('FLEETSIM_X509_DIR is not set: run this suite through "go test ./sdktest"');

function pair(name) {
  return {
    cert: fs.readFileSync(path.join(dir, `${name}.pem`), 'utf8'),
    key: fs.readFileSync(path.join(dir, `${name}-key.pem`), 'utf8'),
  };
}

// thumbprints are a certificate's SHA-1 and SHA-256 in hex, as IoT Hub takes them.
function thumbprints(certPem) {
  const c = new crypto.X509Certificate(certPem);
  return { sha1: c.fingerprint.replace(/:/g, ''), sha256: c.fingerprint256.replace(/:/g, '') };
}

function x509ConnectionString(deviceId) {
  return `HostName=${lib.hostName};DeviceId=${deviceId};x509=true;GatewayHostName=${lib.mqttAddr}`;
}

// openX509 connects over MQTT/TLS (the SDK's X.509 client goes to port 8883
// of HostName, whatever GatewayHostName says) or, with transport MqttWs, over
// WebSocket on port 443.
async function openX509(deviceId, options, transport = lib.Mqtt) {
  const client = lib.DeviceClient.fromConnectionString(x509ConnectionString(deviceId), transport);
  client.setOptions(options);
  await client.open();
  return client;
}

// roundTrip proves a connected device works: a method call answered and a
// reported property written.
async function roundTrip(client, deviceId) {
  client.onDeviceMethod('ping', (req, res) => res.send(200, { pong: req.payload }, () => {}));
  const twin = await client.getTwin();
  await new Promise((resolve, reject) => twin.properties.reported.update({ auth: 'x509' }, (err) => (err ? reject(err) : resolve())));
  const service = lib.serviceClient();
  const r = await lib.ok((cb) => service.invokeDeviceMethod(deviceId,
    { methodName: 'ping', payload: 7, responseTimeoutInSeconds: 10, connectTimeoutInSeconds: 10 }, cb), 'invoke');
  assert.equal(r.result.status, 200);
  assert.deepEqual(r.result.payload, { pong: 7 });
  const t = await lib.ok((cb) => lib.registry().getTwin(deviceId, cb), 'getTwin');
  assert.equal(t.result.properties.reported.auth, 'x509');
}

test('X.509 self-signed: registry create with thumbprints, device SDK connects with its certificate', async () => {
  const registry = lib.registry();
  const self = pair('x509-self');
  const tp = thumbprints(self.cert);
  // The SDK infers type selfSigned from the thumbprints.
  const created = await lib.createDevice(registry, 'x509-self', {
    authentication: { x509Thumbprint: { primaryThumbprint: tp.sha1, secondaryThumbprint: tp.sha256 } },
  });
  assert.equal(created.authentication.type, 'selfSigned');
  const got = (await lib.ok((cb) => registry.get('x509-self', cb), 'get')).result;
  assert.equal(got.authentication.type, 'selfSigned');
  assert.equal(got.authentication.x509Thumbprint.primaryThumbprint.toUpperCase(), tp.sha1.toUpperCase());
  assert.equal(got.authentication.x509Thumbprint.secondaryThumbprint.toUpperCase(), tp.sha256.toUpperCase());
  assert.ok(!got.authentication.symmetricKey || !got.authentication.symmetricKey.primaryKey, 'an X.509 device shows no keys');

  const client = await openX509('x509-self', self);
  try {
    await roundTrip(client, 'x509-self');
  } finally {
    await client.close();
  }

  // A certificate that matches neither thumbprint is refused.
  const stranger = lib.DeviceClient.fromConnectionString(x509ConnectionString('x509-self'), lib.Mqtt);
  stranger.setOptions(pair('x509-stranger'));
  await assert.rejects(stranger.open(), (err) => /unauthori[sz]ed|not authori[sz]ed/i.test(`${err.name} ${err.message}`));
});

test('X.509 CA-signed: registry create as certificateAuthority, device SDK connects with a CA-signed certificate', async () => {
  const registry = lib.registry();
  const created = await lib.createDevice(registry, 'x509-ca', { authentication: { type: 'certificateAuthority' } });
  assert.equal(created.authentication.type, 'certificateAuthority');
  const twin = (await lib.ok((cb) => registry.getTwin('x509-ca', cb), 'getTwin')).result;
  assert.equal(twin.authenticationType, 'certificateAuthority');

  for (const transport of [lib.Mqtt, MqttWs]) {
    const client = await openX509('x509-ca', pair('x509-ca'), transport);
    try {
      await roundTrip(client, 'x509-ca');
    } finally {
      await client.close();
    }
  }
});

test('X.509 module: registry addModule with thumbprints shows them and no keys; certificateAuthority is refused for a module', async () => {
  // The Node ModuleClient does not connect modules with X.509 (it needs a
  // SharedAccessKey), so the broker's side is tested in Go with paho.
  const registry = lib.registry();
  await lib.createDevice(registry, 'x509-mod-host', {});
  const tp = thumbprints(pair('x509-self').cert);
  const added = (await lib.ok((cb) => registry.addModule({
    deviceId: 'x509-mod-host', moduleId: 'edge',
    authentication: { type: 'selfSigned', x509Thumbprint: { primaryThumbprint: tp.sha1, secondaryThumbprint: tp.sha256 } },
  }, cb), 'addModule')).result;
  assert.equal(added.authentication.type, 'selfSigned');
  const got = (await lib.ok((cb) => registry.getModule('x509-mod-host', 'edge', cb), 'getModule')).result;
  assert.equal(got.authentication.x509Thumbprint.primaryThumbprint.toUpperCase(), tp.sha1.toUpperCase());
  assert.ok(!got.authentication.symmetricKey || !got.authentication.symmetricKey.primaryKey, 'an X.509 module shows no keys');
  const ca = await lib.call((cb) => registry.addModule({
    deviceId: 'x509-mod-host', moduleId: 'edge-ca', authentication: { type: 'certificateAuthority' },
  }, cb));
  assert.ok(ca.err, 'a certificateAuthority module was created');
  assert.equal(ca.err.response && ca.err.response.statusCode, 400);
});
