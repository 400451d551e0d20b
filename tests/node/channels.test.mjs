// Public, private, encrypted and cache channels with pusher-js and the SDK (spec 2.4, 4).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { useSinew, uniq, DEFAULT_APP } from './lib/fixture.mjs';
import { makeClient, connected, subscribe, nextEvent, record, recordAll } from './lib/pusher-client.mjs';
import { rawEstablished, rawSubscribe, privateAuth, framesWithin } from './lib/raw.mjs';
import { sleep, waitFor } from './lib/util.mjs';

describe('channels', () => {
  // No env for the app: the built-in default app (1 / app-key / app-secret) is used.
  const ctx = useSinew({}, DEFAULT_APP);
  const client = (opts = {}) => makeClient(ctx.server, DEFAULT_APP.key, { auth: ctx.auth, ...opts });

  test('public channel: subscribe, receive a REST event with data unchanged', { timeout: 10000 }, async () => {
    const c = client();
    await connected(c);
    const name = uniq('news-');
    const [channel, data] = await subscribe(c, name);
    assert.equal(channel.subscribed, true);
    assert.ok(data === undefined || (typeof data === 'object' && Object.keys(data).length === 0), `succeeded data ${JSON.stringify(data)}`);
    const got = nextEvent(channel, 'headline');
    await ctx.sdk.trigger(name, 'headline', { title: 'hello', n: 1, nested: { a: [1, 2] } });
    const { data: payload } = await got;
    assert.deepEqual(payload, { title: 'hello', n: 1, nested: { a: [1, 2] } });
  });

  test('channel event data is relayed byte for byte as the string the publisher gave', { timeout: 10000 }, async () => {
    const [conn] = await rawEstablished(ctx.server, DEFAULT_APP.key);
    const name = uniq('raw-');
    const res = await rawSubscribe(conn, name);
    assert.equal(res.event, 'pusher_internal:subscription_succeeded', res.raw);
    const text = '{"b" : 2,   "a":"\\u00e9x"}';
    const p = conn.nextNew((f) => f.event === 'evt' && f.channel === name);
    await ctx.sdk.trigger(name, 'evt', text);
    const f = await p;
    assert.equal(f.msg.data, text);
    const plain = 'not json at all';
    const p2 = conn.nextNew((f) => f.event === 'evt2' && f.channel === name);
    await ctx.sdk.trigger(name, 'evt2', plain);
    assert.equal((await p2).msg.data, plain);
  });

  test('unsubscribe stops delivery', { timeout: 10000 }, async () => {
    const c = client();
    await connected(c);
    const name = uniq('unsub-');
    const [channel] = await subscribe(c, name);
    const seen = record(channel, 'ping');
    await ctx.sdk.trigger(name, 'ping', { n: 1 });
    await waitFor(() => seen.length === 1, 'first event');
    c.unsubscribe(name);
    await sleep(200);
    await ctx.sdk.trigger(name, 'ping', { n: 2 });
    await sleep(400);
    assert.equal(seen.length, 1);
  });

  test('private channel via the app auth endpoint', { timeout: 10000 }, async () => {
    const c = client();
    await connected(c);
    const name = uniq('private-room-');
    const [channel] = await subscribe(c, name);
    const got = nextEvent(channel, 'secret');
    await ctx.sdk.trigger(name, 'secret', { ok: true });
    assert.deepEqual((await got).data, { ok: true });
    assert.ok(ctx.auth.requests.some((r) => r.form.channel_name === name && r.form.socket_id === c.connection.socket_id));
  });

  test('private channel with a bad signature: pusher:subscription_error and no delivery', { timeout: 10000 }, async () => {
    const c = client({ channelParams: { mode: 'wrong-secret' } });
    await connected(c);
    const name = uniq('private-bad-');
    const channel = c.subscribe(name);
    const events = recordAll(channel);
    const { data: err } = await nextEvent(channel, 'pusher:subscription_error', 5000);
    assert.ok(err && typeof err === 'object', JSON.stringify(err));
    assert.equal(channel.subscribed, false);
    await ctx.sdk.trigger(name, 'leak', { no: 1 });
    await sleep(400);
    assert.ok(!events.some((e) => e.event === 'leak'), 'event delivered to an unauthorized socket');
    assert.equal(c.connection.state, 'connected', 'a failed subscription must not close the connection');
  });

  test('private channel auth with a mismatched key part is refused', { timeout: 10000 }, async () => {
    const c = client({ channelParams: { mode: 'wrong-key' } });
    await connected(c);
    const name = uniq('private-key-');
    const channel = c.subscribe(name);
    await nextEvent(channel, 'pusher:subscription_error', 5000);
    assert.equal(channel.subscribed, false);
  });

  test('raw: a bad private signature gets an error frame, the socket stays open', { timeout: 10000 }, async () => {
    const [conn, socketId] = await rawEstablished(ctx.server, DEFAULT_APP.key);
    const name = uniq('private-raw-');
    const wrong = privateAuth({ key: DEFAULT_APP.key, secret: 'nope' }, socketId, name);
    const res = await rawSubscribe(conn, name, { auth: wrong });
    assert.ok(['pusher:subscription_error', 'pusher:error'].includes(res.event), res.raw);
    const subErr = conn.frames.find((f) => f.event === 'pusher:subscription_error');
    if (subErr) {
      assert.equal(subErr.channel, name);
      assert.equal(subErr.data.type, 'AuthError', subErr.raw);
      assert.equal(subErr.data.status, 401, subErr.raw);
      assert.equal(typeof subErr.data.error, 'string', subErr.raw);
    }
    // Signing another socket's id is also refused.
    const other = privateAuth(DEFAULT_APP, '123.456', name);
    const res2 = await rawSubscribe(conn, name, { auth: other });
    assert.notEqual(res2.event, 'pusher_internal:subscription_succeeded', res2.raw);
    await conn.ping();
    // The right signature still works afterwards.
    const ok = await rawSubscribe(conn, name, { auth: privateAuth(DEFAULT_APP, socketId, name) });
    assert.equal(ok.event, 'pusher_internal:subscription_succeeded', ok.raw);
  });

  test('raw: private, encrypted and presence channels without auth are refused', { timeout: 10000 }, async () => {
    const [conn] = await rawEstablished(ctx.server, DEFAULT_APP.key);
    for (const prefix of ['private-noauth-', 'private-encrypted-noauth-', 'presence-noauth-', 'private-cache-noauth-']) {
      const res = await rawSubscribe(conn, uniq(prefix), {});
      assert.notEqual(res.event, 'pusher_internal:subscription_succeeded', res.raw);
    }
  });

  test('prefix matching is anchored: my-private-x is a public channel', { timeout: 10000 }, async () => {
    const [conn] = await rawEstablished(ctx.server, DEFAULT_APP.key);
    const name = uniq('my-private-');
    const res = await rawSubscribe(conn, name);
    assert.equal(res.event, 'pusher_internal:subscription_succeeded', res.raw);
  });

  test('raw: invalid channel names are refused', { timeout: 10000 }, async () => {
    const [conn] = await rawEstablished(ctx.server, DEFAULT_APP.key);
    for (const bad of ['has space', 'bad/slash', '', 'x'.repeat(201), '#server-to-user-someone']) {
      const res = await rawSubscribe(conn, bad);
      assert.notEqual(res.event, 'pusher_internal:subscription_succeeded', `${JSON.stringify(bad)}: ${res.raw}`);
    }
    const ok = await rawSubscribe(conn, 'A-z_0=9@,.;' + 'x'.repeat(189));
    assert.equal(ok.event, 'pusher_internal:subscription_succeeded', ok.raw);
    await conn.ping();
  });

  test('duplicate subscribe on one socket does not double delivery', { timeout: 10000 }, async () => {
    const [conn] = await rawEstablished(ctx.server, DEFAULT_APP.key);
    const name = uniq('dup-');
    assert.equal((await rawSubscribe(conn, name)).event, 'pusher_internal:subscription_succeeded');
    conn.send({ event: 'pusher:subscribe', data: { auth: '', channel: name } });
    await sleep(200);
    const mark = conn.frames.length;
    await ctx.sdk.trigger(name, 'once', 'x');
    const got = await framesWithin(conn, (f) => f.event === 'once', 400, mark);
    assert.equal(got.length, 1);
  });

  test('private-encrypted channel: pusher-js decrypts an SDK-encrypted event', { timeout: 10000 }, async () => {
    const c = client();
    await connected(c);
    const name = uniq('private-encrypted-vault-');
    const [channel] = await subscribe(c, name);
    const got = nextEvent(channel, 'sealed');
    await ctx.sdk.trigger(name, 'sealed', { secret: 'sinew' });
    assert.deepEqual((await got).data, { secret: 'sinew' });
  });

  test('raw: the encrypted payload is relayed untouched', { timeout: 10000 }, async () => {
    const [conn, socketId] = await rawEstablished(ctx.server, DEFAULT_APP.key);
    const name = uniq('private-encrypted-raw-');
    const ok = await rawSubscribe(conn, name, { auth: privateAuth(DEFAULT_APP, socketId, name) });
    assert.equal(ok.event, 'pusher_internal:subscription_succeeded', ok.raw);
    const p = conn.nextNew('sealed');
    await ctx.sdk.trigger(name, 'sealed', { x: 1 });
    const f = await p;
    assert.equal(typeof f.msg.data, 'string');
    const env = JSON.parse(f.msg.data);
    assert.ok(env.nonce && env.ciphertext, f.raw);
  });
});

describe('cache channels', () => {
  const ctx = useSinew({}, DEFAULT_APP);
  const client = () => makeClient(ctx.server, DEFAULT_APP.key, { auth: ctx.auth });

  test('empty cache channel: pusher:cache_miss after subscription_succeeded', { timeout: 10000 }, async () => {
    const c = client();
    await connected(c);
    const name = uniq('cache-empty-');
    const channel = c.subscribe(name);
    const order = [];
    channel.bind('pusher:subscription_succeeded', () => order.push('succeeded'));
    const miss = nextEvent(channel, 'pusher:cache_miss');
    channel.bind('pusher:cache_miss', () => order.push('miss'));
    await miss;
    assert.deepEqual(order, ['succeeded', 'miss']);
  });

  test('the last REST event is replayed to a new subscriber', { timeout: 10000 }, async () => {
    const name = uniq('cache-last-');
    await ctx.sdk.trigger(name, 'price', { v: 1 });
    await ctx.sdk.trigger(name, 'price', { v: 2 });
    const c = client();
    await connected(c);
    const channel = c.subscribe(name);
    const misses = record(channel, 'pusher:cache_miss');
    const got = nextEvent(channel, 'price');
    const { data } = await got;
    assert.deepEqual(data, { v: 2 });
    await sleep(200);
    assert.equal(misses.length, 0);
  });

  test('private-cache channel replays the cached event after auth', { timeout: 10000 }, async () => {
    const name = uniq('private-cache-');
    await ctx.sdk.trigger(name, 'state', { s: 'cached' });
    const c = client();
    await connected(c);
    const channel = c.subscribe(name);
    const { data } = await nextEvent(channel, 'state');
    assert.deepEqual(data, { s: 'cached' });
  });

  test('private-encrypted-cache channel replays the encrypted event and pusher-js decrypts it', { timeout: 10000 }, async () => {
    const name = uniq('private-encrypted-cache-');
    await ctx.sdk.trigger(name, 'sealed', { kept: 'secret' });
    const c = client();
    await connected(c);
    const channel = c.subscribe(name);
    const { data } = await nextEvent(channel, 'sealed');
    assert.deepEqual(data, { kept: 'secret' });
  });

  test('a cache- lookalike (x-cache-y) is not a cache channel', { timeout: 10000 }, async () => {
    const [conn] = await rawEstablished(ctx.server, DEFAULT_APP.key);
    const name = uniq('x-cache-');
    await rawSubscribe(conn, name);
    const after = await framesWithin(conn, (f) => f.event === 'pusher:cache_miss', 300, 0);
    assert.equal(after.length, 0);
  });

  test('raw: cached event arrives after subscription_succeeded, as a channel event', { timeout: 10000 }, async () => {
    const name = uniq('cache-raw-');
    await ctx.sdk.trigger(name, 'snap', 'payload-1');
    const [conn] = await rawEstablished(ctx.server, DEFAULT_APP.key);
    conn.send({ event: 'pusher:subscribe', data: { auth: '', channel: name } });
    const snap = await conn.next((f) => f.event === 'snap');
    assert.equal(snap.channel, name);
    assert.equal(snap.msg.data, 'payload-1');
    const idxOk = conn.frames.findIndex((f) => f.event === 'pusher_internal:subscription_succeeded');
    assert.ok(idxOk >= 0 && idxOk < conn.frames.indexOf(snap), conn.frames.map((f) => f.raw).join(' | '));
  });

  test('REST channel info reports the cached event', { timeout: 10000 }, async () => {
    const name = uniq('cache-info-');
    const [conn] = await rawEstablished(ctx.server, DEFAULT_APP.key);
    await rawSubscribe(conn, name);
    await ctx.sdk.trigger(name, 'snap', 'D1');
    const res = await ctx.sdk.get({ path: `/channels/${name}`, params: { info: 'cache' } });
    const body = await res.json();
    assert.equal(body.occupied, true);
    assert.ok(body.cache, JSON.stringify(body));
    assert.equal(body.cache.data, 'D1');
    assert.equal(body.cache.event, 'snap');
    const empty = await ctx.sdk.get({ path: `/channels/${uniq('cache-none-')}`, params: { info: 'cache' } });
    const emptyBody = await empty.json();
    assert.ok(emptyBody.cache === undefined || emptyBody.cache === null, JSON.stringify(emptyBody));
  });
});
