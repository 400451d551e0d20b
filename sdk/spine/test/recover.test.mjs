// sinew-spine with sinew-recover (on by default) in jsdom browsers, against the real sinew and
// sinew-demo: after a cut line, the changes made meanwhile are replayed from the channel's history
// and Note.fetch() is not called; it is when the history cannot cover the gap, when there is no
// history, or when nothing had been received before the drop.
import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startSinew, startDemo, waitFor } from './lib/stack.mjs';
import { openClient, closeAll } from './lib/browser.mjs';
import { startProxy } from '../../recover/test/lib/proxy.mjs';

async function api(demo, method, path, body) {
  const res = await fetch(`${demo.url}${path}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  assert.ok(res.ok, `${method} ${path}: ${res.status}`);
  return res.status === 204 ? null : res.json().catch(() => null);
}

const plain = (notes) => notes.map((n) => ({ id: String(n.id), title: n.title, done: n.done }));

/** A stack, and a jsdom client whose WebSocket goes through a proxy that can cut it. */
function setUp(sinewEnv) {
  const ctx = { proxies: [] };
  before(async () => {
    ctx.sinew = await startSinew({ env: sinewEnv });
    ctx.demo = await startDemo(ctx.sinew);
  });
  afterEach(async () => {
    closeAll();
    for (const p of ctx.proxies.splice(0)) await p.close();
  });
  after(async () => {
    await ctx.demo?.stop();
    await ctx.sinew?.stop();
  });
  ctx.client = async () => {
    const proxy = await startProxy(ctx.sinew.port);
    ctx.proxies.push(proxy);
    const client = await openClient(ctx.sinew, ctx.demo, { wsPort: proxy.port });
    client.proxy = proxy;
    return client;
  };
  /** Cuts the line, makes `changes` through the backend, restores it, waits for the same notes. */
  ctx.away = async (client, changes) => {
    client.proxy.cut();
    await waitFor(() => client.pusher.connection.state !== 'connected', 'pusher-js to notice the cut');
    await changes();
    client.proxy.restore();
    await waitFor(() => client.pusher.connection.state === 'connected', 'the reconnect', 15000);
    const expected = plain(await ctx.demo.notes());
    await waitFor(() => JSON.stringify(client.store()) === JSON.stringify(expected), 'the store to match the backend');
    return expected;
  };
  return ctx;
}

describe('with history on the channel', () => {
  const ctx = setUp({ SINEW_APP_HISTORY_CHANNELS: 'private-,presence-' });

  test('missed create, update and destroy are replayed; Note.fetch() is not called', async () => {
    const keep = await api(ctx.demo, 'POST', '/notes', { title: 'keep' });
    const gone = await api(ctx.demo, 'POST', '/notes', { title: 'gone' });
    const c = await ctx.client();
    // One live change first, so the client has a position to resume from.
    await api(ctx.demo, 'PUT', `/notes/${keep.id}`, { title: 'keep', done: true });
    await waitFor(() => c.changes.length === 1, 'the live update');

    const expected = await ctx.away(c, async () => {
      await api(ctx.demo, 'POST', '/notes', { title: 'written while away' });
      await api(ctx.demo, 'PUT', `/notes/${keep.id}`, { title: 'edited while away', done: true });
      await api(ctx.demo, 'DELETE', `/notes/${gone.id}`);
    });
    assert.equal(expected.length, 2);
    assert.deepEqual(c.changes.map((ch) => `${ch.type}:${ch.result}`), ['update:updated', 'create:created', 'update:updated', 'destroy:destroyed']);
    assert.deepEqual(c.recovered.map((r) => r.replayed), [3]);
    assert.deepEqual(c.resyncs, [], 'no resync');
    assert.deepEqual(c.ajaxSent.map((r) => `${r.type} ${r.url}`), [`GET /notes`], 'only the first fetch');
    assert.equal(c.proxy.connections, 2, 'one reconnect');
    assert.deepEqual(c.errors, []);
  });

  test('nothing received before the drop: no position to resume from, so Note.fetch() runs', async () => {
    const c = await ctx.client();
    const expected = await ctx.away(c, () => api(ctx.demo, 'POST', '/notes', { title: 'missed, then fetched' }));
    assert.ok(expected.some((n) => n.title === 'missed, then fetched'));
    assert.deepEqual(c.resyncs, ['Note']);
    assert.equal(c.ajaxSent.filter((r) => r.type === 'GET').length, 2, 'the first fetch and the resync');
    assert.deepEqual(c.recovered, []);
  });
});

describe('with a history shorter than the gap', () => {
  const ctx = setUp({ SINEW_APP_HISTORY_CHANNELS: 'private-', SINEW_APP_HISTORY_SIZE: '3' });

  test('recovery fails (too_old) and Note.fetch() reloads', async () => {
    const c = await ctx.client();
    const failures = [];
    c.live.recovery.on('recovery_failed', (name, reason) => failures.push([name, reason]));
    await api(ctx.demo, 'POST', '/notes', { title: 'live' });
    await waitFor(() => c.changes.length === 1, 'the live create');
    await ctx.away(c, async () => {
      for (let i = 1; i <= 6; i++) await api(ctx.demo, 'POST', '/notes', { title: `missed ${i}` });
    });
    assert.deepEqual(failures, [[ctx.demo.channel, 'too_old']]);
    assert.deepEqual(c.resyncs, ['Note']);
    assert.equal(c.ajaxSent.filter((r) => r.type === 'GET').length, 2);
    assert.deepEqual(c.recovered, []);
    assert.deepEqual(c.errors, [], 'sinew:recovery_failed on the channel is not taken for a model change');
  });
});

describe('without history', () => {
  const ctx = setUp({});

  test('Note.fetch() runs after a reconnect, as before', async () => {
    const c = await ctx.client();
    await api(ctx.demo, 'POST', '/notes', { title: 'live' });
    await waitFor(() => c.changes.length === 1, 'the live create');
    const expected = await ctx.away(c, () => api(ctx.demo, 'POST', '/notes', { title: 'missed, then fetched' }));
    assert.equal(expected.length, 2);
    assert.deepEqual(c.resyncs, ['Note']);
    assert.deepEqual(c.errors, []);
  });

  test('recover: false keeps the old behaviour (a resync on every resubscription)', async () => {
    const proxy = await startProxy(ctx.sinew.port);
    ctx.proxies.push(proxy);
    const c = await openClient(ctx.sinew, ctx.demo, { wsPort: proxy.port, syncOptions: { recover: false } });
    c.proxy = proxy;
    assert.equal(c.live.recovery, null);
    await ctx.away(c, () => api(ctx.demo, 'POST', '/notes', { title: 'missed again' }));
    assert.deepEqual(c.resyncs, ['Note']);
  });
});
