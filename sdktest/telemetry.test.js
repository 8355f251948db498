'use strict';
// Issue 17: a message sent by the official device SDK, with its system and
// application properties, shows up in fleetsim's event stream decoded as IoT
// Hub decodes the topic the SDK wrote.
const { test } = require('node:test');
const https = require('node:https');
const { Message } = require('azure-iot-device');
const { ConnectionString, SharedAccessSignature, anHourFromNow } = require('azure-iot-common');
const lib = require('./lib');
const { assert } = lib;

// watch opens GET /fleetsim/v1/events for one device and resolves with a
// reader whose next() gives the next event.
function watch(deviceId) {
  const cs = ConnectionString.parse(process.env.FLEETSIM_SERVICE_CS);
  const sas = SharedAccessSignature.create(encodeURIComponent(cs.HostName), cs.SharedAccessKeyName, cs.SharedAccessKey, anHourFromNow()).toString();
  const path = `/fleetsim/v1/events?api-version=2021-04-12&types=telemetry&device=${encodeURIComponent(deviceId)}`;
  return new Promise((resolve, reject) => {
    const req = https.get({ host: cs.HostName, port: 443, path, headers: { Authorization: sas } }, (res) => {
      if (res.statusCode !== 200) return reject(new Error(`events: HTTP ${res.statusCode}`));
      res.setEncoding('utf8');
      let buf = '';
      const queue = [], waiting = [];
      res.on('data', (chunk) => {
        buf += chunk;
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const data = block.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).join('\n');
          if (!data || block.includes('event: dropped')) continue;
          const ev = JSON.parse(data);
          if (waiting.length) waiting.shift()(ev); else queue.push(ev);
        }
      });
      resolve({
        next: () => queue.length ? Promise.resolve(queue.shift()) : new Promise((r) => waiting.push(r)),
        close: () => req.destroy(),
      });
    });
    req.on('error', reject);
  });
}

test('device SDK: a message and its properties in the event stream', async () => {
  const registry = lib.registry();
  const dev = await lib.createDevice(registry, lib.unique('sdk-d2c'));
  const stream = await watch(dev.deviceId);
  const client = await lib.openDevice(dev);
  try {
    const msg = new Message(JSON.stringify({ temperature: 21.5 }));
    msg.messageId = 'm-1 2';
    msg.correlationId = 'c/1';
    msg.contentType = 'application/json';
    msg.contentEncoding = 'utf-8';
    msg.properties.add('temperatureAlert', 'true');
    msg.properties.add('unit', '°C');
    msg.properties.add('a b', 'c&d=e+f');
    await lib.ok((cb) => client.sendEvent(msg, cb), 'sendEvent');
    const ev = await Promise.race([stream.next(), new Promise((_, rej) => setTimeout(() => rej(new Error('no event in 10 s')), 10000))]);
    assert.equal(ev.type, 'telemetry');
    assert.equal(ev.deviceId, dev.deviceId);
    assert.deepEqual(ev.payload, { temperature: 21.5 });
    assert.equal(ev.systemProperties['message-id'], 'm-1 2');
    assert.equal(ev.systemProperties['correlation-id'], 'c/1');
    assert.equal(ev.systemProperties['content-type'], 'application/json');
    assert.equal(ev.systemProperties['content-encoding'], 'utf-8');
    assert.deepEqual(ev.applicationProperties, { temperatureAlert: 'true', unit: '°C', 'a b': 'c&d=e+f' });
  } finally {
    stream.close();
    await client.close();
  }
});
