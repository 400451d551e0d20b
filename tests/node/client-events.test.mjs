// Client events (spec 2.7, 4.2, 4.3, 10.1, 10.10, 10.11).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { useSinew, uniq, appEnv } from './lib/fixture.mjs';
import { makeClient, connected, subscribe, nextEvent, record } from './lib/pusher-client.mjs';
import { rawEstablished, rawSubscribe, privateAuth, presenceAuth, framesWithin } from './lib/raw.mjs';
import { sleep, waitFor } from './lib/util.mjs';

const APP = { id: '55', key: 'ce-key', secret: 'ce-secret' };
const errorCodes = (client) => client.__errors.filter((e) => e.type === 'PusherError').map((e) => e.data && e.data.code);

describe('client events enabled', () => {
  const ctx = useSinew({ env: appEnv(APP, { SINEW_APP_CLIENT_EVENTS: 'true' }) }, APP);
  const user = async (id) => {
    const c = makeClient(ctx.server, APP.key, { auth: ctx.auth, channelParams: { user_id: id, user_info: '{}' } });
    await connected(c);
    return c;
  };

  test('private channel: delivered to the others, not echoed to the sender', { timeout: 10000 }, async () => {
    const name = uniq('private-chat-');
    const a = await user('a');
    const b = await user('b');
    const [aChan] = await subscribe(a, name);
    const [bChan] = await subscribe(b, name);
    const echoed = record(aChan, 'client-typing');
    const got = nextEvent(bChan, 'client-typing');
    assert.equal(aChan.trigger('client-typing', { who: 'a', n: 1 }), true);
    const { data } = await got;
    assert.deepEqual(data, { who: 'a', n: 1 });
    await sleep(300);
    assert.equal(echoed.length, 0, 'the sender must not receive its own client event');
  });

  test('presence channel: relayed with the sender user_id as metadata', { timeout: 10000 }, async () => {
    const name = uniq('presence-chat-');
    const a = await user('alice');
    const b = await user('bob');
    const [aChan] = await subscribe(a, name);
    const [bChan] = await subscribe(b, name);
    const got = nextEvent(bChan, 'client-wave');
    aChan.trigger('client-wave', { hi: true, user_id: 'forged' });
    const { data, metadata } = await got;
    assert.deepEqual(data, { hi: true, user_id: 'forged' });
    assert.equal(metadata.user_id, 'alice');
  });

  test('raw presence frame carries a top-level user_id and the data as sent', { timeout: 10000 }, async () => {
    const name = uniq('presence-raw-');
    const [a, aId] = await rawEstablished(ctx.server, APP.key);
    const [b, bId] = await rawEstablished(ctx.server, APP.key);
    const cd = (id) => JSON.stringify({ user_id: id });
    await rawSubscribe(a, name, { auth: presenceAuth(APP, aId, name, cd('7')), channel_data: cd('7') });
    await rawSubscribe(b, name, { auth: presenceAuth(APP, bId, name, cd('8')), channel_data: cd('8') });
    const p = b.nextNew('client-x');
    a.send({ event: 'client-x', channel: name, data: { a: 1 } });
    const f = await p;
    assert.equal(f.channel, name);
    assert.equal(f.msg.user_id, '7', f.raw);
    assert.deepEqual(f.msg.data, { a: 1 });
    // A string payload stays a string.
    const p2 = b.nextNew('client-s');
    a.send({ event: 'client-s', channel: name, data: 'plain text' });
    assert.equal((await p2).msg.data, 'plain text');
  });

  test('public channel: refused with pusher:error and not delivered', { timeout: 10000 }, async () => {
    const name = uniq('public-');
    const a = await user('a');
    const b = await user('b');
    const [aChan] = await subscribe(a, name);
    const [bChan] = await subscribe(b, name);
    const seen = record(bChan, 'client-nope');
    aChan.trigger('client-nope', { x: 1 });
    await waitFor(() => a.__errors.some((e) => e.type === 'PusherError'), 'pusher:error to the sender', 3000);
    await sleep(200);
    assert.equal(seen.length, 0);
    assert.equal(a.connection.state, 'connected');
  });

  test('encrypted channel: pusher-js refuses, and a raw client event is refused by the server', { timeout: 10000 }, async () => {
    const name = uniq('private-encrypted-ce-');
    const a = await user('a');
    const [aChan] = await subscribe(a, name);
    assert.throws(() => aChan.trigger('client-x', {}), /not currently supported|encrypted/i);

    const [r1, id1] = await rawEstablished(ctx.server, APP.key);
    const [r2, id2] = await rawEstablished(ctx.server, APP.key);
    await rawSubscribe(r1, name, { auth: privateAuth(APP, id1, name) });
    await rawSubscribe(r2, name, { auth: privateAuth(APP, id2, name) });
    const mark = r2.frames.length;
    const errP = r1.nextNew('pusher:error', 3000);
    r1.send({ event: 'client-x', channel: name, data: { nonce: 'n', ciphertext: 'c' } });
    await errP;
    const delivered = await framesWithin(r2, (f) => f.event === 'client-x', 300, mark);
    assert.equal(delivered.length, 0);
  });

  test('cache- public channel: client events refused', { timeout: 10000 }, async () => {
    const name = uniq('cache-ce-');
    const [r1] = await rawEstablished(ctx.server, APP.key);
    const [r2] = await rawEstablished(ctx.server, APP.key);
    await rawSubscribe(r1, name);
    await rawSubscribe(r2, name);
    const mark = r2.frames.length;
    const errP = r1.nextNew('pusher:error', 3000);
    r1.send({ event: 'client-x', channel: name, data: {} });
    await errP;
    assert.equal((await framesWithin(r2, (f) => f.event === 'client-x', 300, mark)).length, 0);
  });

  test('client events are not stored in cache channels', { timeout: 10000 }, async () => {
    const name = uniq('private-cache-ce-');
    const [r1, id1] = await rawEstablished(ctx.server, APP.key);
    const [r2, id2] = await rawEstablished(ctx.server, APP.key);
    await rawSubscribe(r1, name, { auth: privateAuth(APP, id1, name) });
    await rawSubscribe(r2, name, { auth: privateAuth(APP, id2, name) });
    const p = r2.nextNew('client-note');
    r1.send({ event: 'client-note', channel: name, data: { x: 1 } });
    await p;
    const [late, lateId] = await rawEstablished(ctx.server, APP.key);
    late.send({ event: 'pusher:subscribe', data: { auth: privateAuth(APP, lateId, name), channel: name } });
    const f = await late.next((f) => f.channel === name && (f.event === 'pusher:cache_miss' || f.event === 'client-note'));
    assert.equal(f.event, 'pusher:cache_miss', f.raw);
  });

  test('a socket not subscribed to the channel cannot send into it', { timeout: 10000 }, async () => {
    const name = uniq('private-member-');
    const [r1, id1] = await rawEstablished(ctx.server, APP.key);
    const [outsider] = await rawEstablished(ctx.server, APP.key);
    await rawSubscribe(r1, name, { auth: privateAuth(APP, id1, name) });
    outsider.send({ event: 'client-intrude', channel: name, data: {} });
    assert.equal((await framesWithin(r1, (f) => f.event === 'client-intrude', 400)).length, 0);
  });

  test('non client- names and pusher_internal: names from clients are never relayed', { timeout: 10000 }, async () => {
    const name = uniq('private-names-');
    const [r1, id1] = await rawEstablished(ctx.server, APP.key);
    const [r2, id2] = await rawEstablished(ctx.server, APP.key);
    await rawSubscribe(r1, name, { auth: privateAuth(APP, id1, name) });
    await rawSubscribe(r2, name, { auth: privateAuth(APP, id2, name) });
    r1.send({ event: 'server-looking', channel: name, data: {} });
    r1.send({ event: 'pusher_internal:member_added', channel: name, data: '{"user_id":"x"}' });
    r1.send({ event: 'pusher:cache_miss', channel: name, data: {} });
    const leaked = await framesWithin(r2, (f) => f.channel === name && f.event !== 'pusher_internal:subscription_succeeded', 400);
    assert.deepEqual(leaked.map((f) => f.raw), []);
  });

  test('client event data over 10 KB is refused and not delivered', { timeout: 10000 }, async () => {
    const name = uniq('private-big-');
    const [r1, id1] = await rawEstablished(ctx.server, APP.key);
    const [r2, id2] = await rawEstablished(ctx.server, APP.key);
    await rawSubscribe(r1, name, { auth: privateAuth(APP, id1, name) });
    await rawSubscribe(r2, name, { auth: privateAuth(APP, id2, name) });
    const mark = r2.frames.length;
    const errP = r1.nextNew('pusher:error', 3000);
    r1.send({ event: 'client-big', channel: name, data: 'x'.repeat(11000) });
    await errP;
    assert.equal((await framesWithin(r2, (f) => f.event === 'client-big', 300, mark)).length, 0);
    const okP = r2.nextNew('client-small');
    r1.send({ event: 'client-small', channel: name, data: 'x'.repeat(1000) });
    await okP;
  });

  test('over the rate limit: pusher:error 4301, the connection stays open', { timeout: 15000 }, async () => {
    const name = uniq('private-flood-');
    const a = await user('a');
    const b = await user('b');
    const [aChan] = await subscribe(a, name);
    const [bChan] = await subscribe(b, name);
    const got = record(bChan, 'client-flood');
    for (let i = 0; i < 30; i++) aChan.trigger('client-flood', { i });
    await waitFor(() => errorCodes(a).includes(4301), 'a 4301 pusher:error', 3000);
    await sleep(300);
    assert.ok(got.length >= 1 && got.length <= 20, `delivered ${got.length} of 30 in a burst (limit 10/s)`);
    assert.equal(a.connection.state, 'connected');
    assert.ok(!a.__states.slice(a.__states.indexOf('connected') + 1).length, `state changes: ${a.__states}`);
    // After the window passes, client events flow again.
    await sleep(1200);
    const again = nextEvent(bChan, 'client-after');
    aChan.trigger('client-after', { ok: 1 });
    assert.deepEqual((await again).data, { ok: 1 });
  });

  test('raw: rate-limit error frame shape and no close', { timeout: 15000 }, async () => {
    const name = uniq('private-flood-raw-');
    const [r1, id1] = await rawEstablished(ctx.server, APP.key);
    await rawSubscribe(r1, name, { auth: privateAuth(APP, id1, name) });
    for (let i = 0; i < 25; i++) r1.send({ event: 'client-f', channel: name, data: { i } });
    const err = await r1.next((f) => f.event === 'pusher:error' && f.data && f.data.code === 4301, 3000);
    assert.equal(typeof err.data.message, 'string');
    await r1.ping();
    assert.equal(r1.closeInfo, null);
  });
});

describe('client events disabled', () => {
  const OFF = { id: '56', key: 'ce-off-key', secret: 'ce-off-secret' };
  const ctx = useSinew({ env: appEnv(OFF, { SINEW_APP_CLIENT_EVENTS: 'false' }) }, OFF);

  test('client event on a private channel is refused with an error and not delivered', { timeout: 10000 }, async () => {
    const name = uniq('private-off-');
    const a = makeClient(ctx.server, OFF.key, { auth: ctx.auth });
    const b = makeClient(ctx.server, OFF.key, { auth: ctx.auth });
    await connected(a);
    await connected(b);
    const [aChan] = await subscribe(a, name);
    const [bChan] = await subscribe(b, name);
    const seen = record(bChan, 'client-off');
    aChan.trigger('client-off', { x: 1 });
    await waitFor(() => a.__errors.some((e) => e.type === 'PusherError'), 'pusher:error to the sender', 3000);
    await sleep(200);
    assert.equal(seen.length, 0);
    assert.equal(a.connection.state, 'connected');
  });
});
