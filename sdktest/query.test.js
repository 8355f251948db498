'use strict';
// Issue: Registry.createQuery pages through a multi-page result with the
// x-ms-continuation header (left out on the last page).
const { test } = require('node:test');
const lib = require('./lib');
const { assert } = lib;

test('query: createQuery pages through a multi-page result', async () => {
  const registry = lib.registry();
  const tag = lib.unique('q');
  const ids = [];
  for (let i = 0; i < 23; i++) ids.push(`${tag}-${String(i).padStart(2, '0')}`);
  const bulk = await lib.ok((cb) => registry.addDevices(ids.map((deviceId) => ({ deviceId })), cb), 'addDevices');
  assert.equal(bulk.result.isSuccessful, true);
  for (const id of ids.slice(0, 17)) {
    await lib.ok((cb) => registry.updateTwin(id, { tags: { batch: tag, even: Number(id.slice(-2)) % 2 === 0 } }, '*', cb), 'tag');
  }
  const q = registry.createQuery(`SELECT * FROM devices WHERE tags.batch = '${tag}'`, 5);
  const seen = [];
  let pages = 0;
  while (q.hasMoreResults) {
    const page = await lib.ok((cb) => q.nextAsTwin(cb), 'nextAsTwin');
    pages++;
    for (const t of page.result) seen.push(t.deviceId);
    assert.ok(pages < 10, 'paging must end');
  }
  assert.equal(pages, 4);
  assert.deepEqual(seen.sort(), ids.slice(0, 17).sort());

  const count = registry.createQuery(`SELECT COUNT() AS n FROM devices WHERE tags.batch = '${tag}' AND tags.even = true`);
  const c = await lib.ok((cb) => count.next(cb), 'count');
  assert.deepEqual(c.result, [{ n: 9 }]);

  const bad = registry.createQuery('SELECT * FROM devices WHERE (tags.x = 1');
  const e = await lib.call((cb) => bad.next(cb));
  assert.equal(e.err && e.err.name, 'ArgumentError');
});
