'use strict';
// Issue: JobClient scheduleDeviceMethod, scheduleTwinUpdate, getJob,
// cancelJob (also while slow devices answer) and createQuery, and a
// devices.jobs query, unchanged, against devices on the official device SDK.
const { test } = require('node:test');
const lib = require('./lib');
const { assert } = lib;

async function fleet(registry, tag, n) {
  const devs = [];
  for (let i = 0; i < n; i++) {
    const d = await lib.createDevice(registry, `${tag}-${i}`);
    await lib.ok((cb) => registry.updateTwin(d.deviceId, { tags: { building: tag, floor: i % 2 } }, '*', cb), 'tag');
    devs.push(d);
  }
  return devs;
}

const terminal = ['completed', 'failed', 'cancelled'];

// checkStats checks one read of a job: its counters add up to deviceCount,
// and a terminal job has no device pending or running.
function checkStats(job) {
  const s = job.deviceJobStatistics;
  if (!s) return;
  assert.equal(s.pendingCount + s.runningCount + s.succeededCount + s.failedCount, s.deviceCount, `statistics of ${job.jobId}`);
  if (terminal.includes(job.status)) {
    assert.equal(s.pendingCount + s.runningCount, 0, `${job.jobId} is ${job.status} with devices not done`);
  }
}

async function untilTerminal(jobs, id) {
  return lib.waitFor(async () => {
    const r = await lib.ok((cb) => jobs.getJob(id, cb), 'getJob');
    checkStats(r.result);
    return terminal.includes(r.result.status) ? r.result : null;
  }, `job ${id} to finish`, 60000);
}

test('jobs: scheduleDeviceMethod over a query, with an offline device', async () => {
  const registry = lib.registry();
  const jobs = lib.jobClient();
  const tag = lib.unique('jm');
  const devs = await fleet(registry, tag, 4);
  const clients = [];
  try {
    for (const d of devs.slice(0, 3)) {
      const c = await lib.openDevice(d);
      c.onDeviceMethod('reboot', (req, res) => res.send(200, { ok: true, job: req.payload }, () => {}));
      clients.push(c);
    }
    await new Promise((r) => setTimeout(r, 300)); // let SUBSCRIBE land
    const jobId = lib.unique('job-m').replace(/[^A-Za-z0-9-]/g, '-').slice(0, 64);
    const created = await lib.ok((cb) => jobs.scheduleDeviceMethod(jobId, `tags.building = '${tag}'`,
      { methodName: 'reboot', payload: { why: 'sdk' }, responseTimeoutInSeconds: 10 }, cb), 'scheduleDeviceMethod');
    assert.equal(created.result.jobId, jobId);
    assert.ok(['queued', 'scheduled', 'running', 'completed'].includes(created.result.status));

    const done = await untilTerminal(jobs, jobId);
    assert.equal(done.status, 'completed');
    assert.equal(done.type, 'scheduleDeviceMethod');
    assert.deepEqual(done.deviceJobStatistics, { deviceCount: 4, failedCount: 1, succeededCount: 3, runningCount: 0, pendingCount: 0 });

    const q = registry.createQuery(`SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '${jobId}'`);
    const rows = await lib.ok((cb) => q.next(cb), 'devices.jobs');
    assert.equal(rows.result.length, 4);
    const failed = rows.result.filter((r) => r.status === 'failed');
    assert.equal(failed.length, 1);
    assert.equal(failed[0].deviceId, devs[3].deviceId);
    const good = rows.result.find((r) => r.status === 'completed');
    assert.equal(good.outcome.deviceMethodResponse.status, 200);
    assert.deepEqual(good.outcome.deviceMethodResponse.payload, { ok: true, job: { why: 'sdk' } });
    assert.equal(good.jobType, 'scheduleDeviceMethod');
  } finally {
    for (const c of clients) await c.close();
  }
});

test('jobs: promise form with startTime null and no maxExecutionTime is accepted', async () => {
  const registry = lib.registry();
  const jobs = lib.jobClient();
  const tag = lib.unique('jp');
  await fleet(registry, tag, 1);
  const jobId = lib.unique('job-p').replace(/[^A-Za-z0-9-]/g, '-').slice(0, 64);
  const res = await jobs.scheduleDeviceMethod(jobId, `tags.building = '${tag}'`, { methodName: 'reboot' });
  assert.equal(res.jobStatus.jobId, jobId);
  const done = await untilTerminal(jobs, jobId);
  assert.equal(done.maxExecutionTimeInSeconds, 3600);
});

test('jobs: scheduleTwinUpdate pushes desired to devices', async () => {
  const registry = lib.registry();
  const jobs = lib.jobClient();
  const tag = lib.unique('jt');
  const devs = await fleet(registry, tag, 2);
  const client = await lib.openDevice(devs[0]);
  try {
    const twin = await client.getTwin();
    const seen = [];
    twin.on('properties.desired', (p) => seen.push(p));
    const jobId = lib.unique('job-t').replace(/[^A-Za-z0-9-]/g, '-').slice(0, 64);
    await lib.ok((cb) => jobs.scheduleTwinUpdate(jobId, `tags.building = '${tag}'`,
      { etag: '*', tags: { rollout: 'wave1' }, properties: { desired: { config: { mode: 'eco' } } } }, new Date(), 60, cb), 'scheduleTwinUpdate');
    const done = await untilTerminal(jobs, jobId);
    assert.equal(done.status, 'completed');
    assert.equal(done.deviceJobStatistics.succeededCount, 2);
    await lib.waitFor(() => seen.some((p) => p.config && p.config.mode === 'eco'), 'desired from twin job');
    const t = await lib.ok((cb) => registry.getTwin(devs[1].deviceId, cb), 'getTwin');
    assert.equal(t.result.tags.rollout, 'wave1');
    assert.equal(t.result.properties.desired.config.mode, 'eco');
  } finally {
    await client.close();
  }
});

test('jobs: a future job is scheduled, then cancelled; createQuery finds it', async () => {
  const jobs = lib.jobClient();
  const jobId = lib.unique('job-c').replace(/[^A-Za-z0-9-]/g, '-').slice(0, 64);
  const start = new Date(Date.now() + 3600 * 1000);
  const created = await lib.ok((cb) => jobs.scheduleDeviceMethod(jobId, '*', { methodName: 'reboot' }, start, 600, cb), 'schedule');
  assert.ok(['queued', 'scheduled'].includes(created.result.status));
  const got = await lib.ok((cb) => jobs.getJob(jobId, cb), 'getJob');
  assert.equal(got.result.status, 'scheduled');
  const cancelled = await lib.ok((cb) => jobs.cancelJob(jobId, cb), 'cancelJob');
  assert.ok(['cancelled'].includes(cancelled.result.status) || cancelled.result.jobId === jobId);
  const final = await untilTerminal(jobs, jobId);
  assert.equal(final.status, 'cancelled');

  const q = jobs.createQuery('scheduleDeviceMethod', 'cancelled', 2);
  const found = [];
  let pages = 0;
  while (q.hasMoreResults && pages < 100) {
    const page = await lib.ok((cb) => q.next(cb), 'job query');
    pages++;
    for (const j of page.result) {
      assert.equal(j.status, 'cancelled');
      found.push(j.jobId);
    }
  }
  assert.ok(found.includes(jobId), 'createQuery lists the cancelled job');

  const bad = await lib.call((cb) => jobs.scheduleDeviceMethod('bad_id!', '*', { methodName: 'reboot' }, new Date(), 60, cb));
  assert.equal(bad.err && bad.err.name, 'ArgumentError');
  const dupe = await lib.call((cb) => jobs.scheduleDeviceMethod(jobId, '*', { methodName: 'reboot' }, new Date(), 60, cb));
  assert.equal(dupe.err && dupe.err.name, 'DeviceAlreadyExistsError'); // 409: the SDK names every 409 this way
});

test('jobs: cancel while slow devices answer; their calls are recorded, not left pending', async () => {
  const registry = lib.registry();
  const jobs = lib.jobClient();
  const tag = lib.unique('jx');
  const devs = await fleet(registry, tag, 2);
  const clients = [];
  const called = new Set();
  try {
    for (const d of devs) {
      const c = await lib.openDevice(d);
      c.onDeviceMethod('slow', (req, res) => {
        called.add(d.deviceId);
        setTimeout(() => res.send(200, { slow: d.deviceId }, () => {}), 5000);
      });
      clients.push(c);
    }
    await new Promise((r) => setTimeout(r, 300)); // let SUBSCRIBE land
    const jobId = lib.unique('job-x').replace(/[^A-Za-z0-9-]/g, '-').slice(0, 64);
    await lib.ok((cb) => jobs.scheduleDeviceMethod(jobId, `tags.building = '${tag}'`,
      { methodName: 'slow', payload: null, responseTimeoutInSeconds: 30 }, cb), 'scheduleDeviceMethod');
    await lib.waitFor(() => called.size === 2, 'both devices to be called');

    const cancelled = await lib.ok((cb) => jobs.cancelJob(jobId, cb), 'cancelJob');
    checkStats(cancelled.result);
    assert.equal(cancelled.result.jobId, jobId);
    // The calls are in flight: the job stays running until they are recorded.
    assert.equal(cancelled.result.status, 'running');
    assert.equal(cancelled.result.deviceJobStatistics.runningCount, 2);

    const done = await untilTerminal(jobs, jobId);
    assert.equal(done.status, 'cancelled');
    assert.deepEqual(done.deviceJobStatistics, { deviceCount: 2, failedCount: 0, succeededCount: 2, runningCount: 0, pendingCount: 0 });

    const q = registry.createQuery(`SELECT * FROM devices.jobs WHERE devices.jobs.jobId = '${jobId}'`);
    const rows = await lib.ok((cb) => q.next(cb), 'devices.jobs');
    assert.equal(rows.result.length, 2);
    for (const r of rows.result) {
      assert.equal(r.status, 'completed', `device job of ${r.deviceId}`);
      assert.equal(r.outcome.deviceMethodResponse.status, 200);
      assert.deepEqual(r.outcome.deviceMethodResponse.payload, { slow: r.deviceId });
    }
  } finally {
    for (const c of clients) await c.close();
  }
});
