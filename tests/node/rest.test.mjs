// The REST API through the official SDK and through hand-signed requests (spec 6).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { useSinew, uniq, appEnv } from './lib/fixture.mjs';
import { sdkFor } from './lib/auth-server.mjs';
import { makeClient, connected, subscribe, nextEvent, record } from './lib/pusher-client.mjs';
import { rawEstablished, rawSubscribe, framesWithin } from './lib/raw.mjs';
import { signedRequest, plainRequest, sdkCall, md5 } from './lib/rest.mjs';
import { sleep, waitFor } from './lib/util.mjs';

const APP = { id: '9001', key: 'rest-key', secret: 'rest-secret' };

describe('REST API', () => {
  const ctx = useSinew({ env: appEnv(APP) }, APP);
  const body = (obj) => JSON.stringify(obj);
  const postEvents = (obj, extra = {}) =>
    signedRequest(ctx.server, APP, { method: 'POST', path: `/apps/${APP.id}/events`, body: body(obj), ...extra });

  test('trigger to one channel returns 200 {} and delivers', { timeout: 10000 }, async () => {
    const c = makeClient(ctx.server, APP.key);
    await connected(c);
    const name = uniq('one-');
    const [ch] = await subscribe(c, name);
    const got = nextEvent(ch, 'evt');
    const res = await sdkCall(ctx.sdk.trigger(name, 'evt', { a: 1 }));
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, {});
    assert.deepEqual((await got).data, { a: 1 });
  });

  test('trigger to several channels delivers once to each', { timeout: 10000 }, async () => {
    const c = makeClient(ctx.server, APP.key);
    await connected(c);
    const names = [uniq('m1-'), uniq('m2-'), uniq('m3-')];
    const chans = [];
    for (const n of names) chans.push((await subscribe(c, n))[0]);
    const seen = chans.map((ch) => record(ch, 'multi'));
    await ctx.sdk.trigger(names, 'multi', { all: true });
    await waitFor(() => seen.every((s) => s.length === 1), 'one event per channel');
    await sleep(200);
    assert.deepEqual(seen.map((s) => s.length), [1, 1, 1]);
  });

  test('events from sequential triggers arrive in order', { timeout: 15000 }, async () => {
    const c = makeClient(ctx.server, APP.key);
    await connected(c);
    const name = uniq('order-');
    const [ch] = await subscribe(c, name);
    const seen = record(ch, 'seq');
    for (let i = 0; i < 40; i++) await ctx.sdk.trigger(name, 'seq', { i });
    await waitFor(() => seen.length === 40, '40 events', 5000);
    assert.deepEqual(seen.map((s) => s.data.i), Array.from({ length: 40 }, (_, i) => i));
  });

  test('duplicate channels in one trigger deliver once', { timeout: 10000 }, async () => {
    const [conn] = await rawEstablished(ctx.server, APP.key);
    const name = uniq('dedupe-');
    await rawSubscribe(conn, name);
    const mark = conn.frames.length;
    await ctx.sdk.trigger([name, name], 'dd', 'x');
    const got = await framesWithin(conn, (f) => f.event === 'dd', 400, mark);
    assert.equal(got.length, 1);
  });

  test('socket_id excludes exactly that socket', { timeout: 10000 }, async () => {
    const name = uniq('excl-');
    const a = makeClient(ctx.server, APP.key);
    const b = makeClient(ctx.server, APP.key);
    const aId = await connected(a);
    await connected(b);
    const [aCh] = await subscribe(a, name);
    const [bCh] = await subscribe(b, name);
    const aSeen = record(aCh, 'ex');
    const got = nextEvent(bCh, 'ex');
    await ctx.sdk.trigger(name, 'ex', { n: 1 }, { socket_id: aId });
    await got;
    await sleep(300);
    assert.equal(aSeen.length, 0);
  });

  test('a malformed socket_id is 400', { timeout: 10000 }, async () => {
    const res = await postEvents({ name: 'e', data: 'x', channel: 'c', socket_id: 'abc' });
    assert.equal(res.status, 400, res.text);
  });

  test('trigger with info returns subscription_count and user_count', { timeout: 15000 }, async () => {
    const pub = uniq('info-');
    const pres = uniq('presence-info-');
    const c1 = makeClient(ctx.server, APP.key, { auth: ctx.auth, channelParams: { user_id: 'u1', user_info: '{}' } });
    const c2 = makeClient(ctx.server, APP.key, { auth: ctx.auth, channelParams: { user_id: 'u1', user_info: '{}' } });
    await connected(c1);
    await connected(c2);
    for (const c of [c1, c2]) {
      await subscribe(c, pub);
      await subscribe(c, pres);
    }
    const res = await sdkCall(ctx.sdk.trigger([pub, pres], 'i', {}, { info: 'subscription_count,user_count' }));
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.channels[pub].subscription_count, 2, res.text);
    assert.equal(res.json.channels[pub].user_count, undefined, 'no user_count for a public channel');
    assert.equal(res.json.channels[pres].user_count, 1, res.text);
    assert.equal(res.json.channels[pres].subscription_count, 2, res.text);
  });

  test('triggerBatch delivers in order; info per event', { timeout: 10000 }, async () => {
    const [conn] = await rawEstablished(ctx.server, APP.key);
    const a = uniq('ba-');
    const b = uniq('bb-');
    await rawSubscribe(conn, a);
    await rawSubscribe(conn, b);
    const res = await sdkCall(
      ctx.sdk.triggerBatch([
        { channel: a, name: 'b1', data: { i: 1 } },
        { channel: b, name: 'b2', data: 'two', info: 'subscription_count' },
        { channel: a, name: 'b3', data: { i: 3 } },
      ]),
    );
    assert.equal(res.status, 200, res.text);
    if (res.json.batch) {
      assert.equal(res.json.batch.length, 3);
      assert.deepEqual(res.json.batch[1], { subscription_count: 1 });
    } else {
      assert.fail(`expected a batch array in the reply when an event asks for info: ${res.text}`);
    }
    await conn.next((f) => f.event === 'b3');
    const order = conn.frames.filter((f) => ['b1', 'b2', 'b3'].includes(f.event));
    assert.deepEqual(order.map((f) => [f.event, f.channel, f.msg.data]), [
      ['b1', a, '{"i":1}'],
      ['b2', b, 'two'],
      ['b3', a, '{"i":3}'],
    ]);
  });

  test('triggerBatch without info replies {}', { timeout: 10000 }, async () => {
    const res = await sdkCall(ctx.sdk.triggerBatch([{ channel: uniq('x-'), name: 'e', data: 'd' }]));
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, {});
  });

  test('GET /channels lists occupied channels, filtered by prefix', { timeout: 15000 }, async () => {
    const prefix = uniq('list') + '-';
    const [conn] = await rawEstablished(ctx.server, APP.key);
    const names = [`${prefix}a`, `${prefix}b`];
    for (const n of names) await rawSubscribe(conn, n);
    await rawSubscribe(conn, uniq('elsewhere-'));
    const res = await sdkCall(ctx.sdk.get({ path: '/channels', params: { filter_by_prefix: prefix } }));
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(Object.keys(res.json.channels).sort(), names);
    for (const n of names) assert.equal(typeof res.json.channels[n], 'object');

    const all = await (await ctx.sdk.get({ path: '/channels' })).json();
    for (const n of names) assert.ok(n in all.channels);

    conn.send({ event: 'pusher:unsubscribe', data: { channel: names[0] } });
    await waitFor(async () => {
      const r = await (await ctx.sdk.get({ path: '/channels', params: { filter_by_prefix: prefix } })).json();
      return !(names[0] in r.channels) && names[1] in r.channels;
    }, 'vacated channel to leave the list', 3000, 100);
  });

  test('GET /channels?info=user_count needs the presence- prefix', { timeout: 10000 }, async () => {
    const ok = await sdkCall(ctx.sdk.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } }));
    assert.equal(ok.status, 200, ok.text);
    const bad = await sdkCall(ctx.sdk.get({ path: '/channels', params: { info: 'user_count' } }));
    assert.equal(bad.status, 400, bad.text);
  });

  test('GET /channels/{name} for occupied and empty channels', { timeout: 10000 }, async () => {
    const name = uniq('single-');
    const [c1] = await rawEstablished(ctx.server, APP.key);
    const [c2] = await rawEstablished(ctx.server, APP.key);
    await rawSubscribe(c1, name);
    await rawSubscribe(c2, name);
    const res = await sdkCall(ctx.sdk.get({ path: `/channels/${name}`, params: { info: 'subscription_count' } }));
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.occupied, true);
    assert.equal(res.json.subscription_count, 2);
    const empty = await sdkCall(ctx.sdk.get({ path: `/channels/${uniq('empty-')}` }));
    assert.equal(empty.status, 200);
    assert.equal(empty.json.occupied, false);
    const badInfo = await sdkCall(ctx.sdk.get({ path: `/channels/${name}`, params: { info: 'user_count' } }));
    assert.equal(badInfo.status, 400, `user_count on a public channel: ${badInfo.text}`);
  });

  test('channel names with = @ , . ; work in REST paths; a percent-encoded path is signed as sent', { timeout: 10000 }, async () => {
    const name = `${uniq('odd-')}=@,.;x`;
    const [conn] = await rawEstablished(ctx.server, APP.key);
    assert.equal((await rawSubscribe(conn, name)).event, 'pusher_internal:subscription_succeeded');
    const res = await sdkCall(ctx.sdk.get({ path: `/channels/${name}`, params: { info: 'subscription_count' } }));
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.occupied, true);
    assert.equal(res.json.subscription_count, 1);
    const encodedPath = `/apps/${APP.id}/channels/${name.replace('@', '%40')}`;
    const enc = await signedRequest(ctx.server, APP, { path: encodedPath, query: { info: 'subscription_count' } });
    assert.equal(enc.status, 200, enc.text);
    assert.equal(enc.json.occupied, true, enc.text);
  });

  test('GET /channels/{name}/users is 400 on a non-presence channel', { timeout: 10000 }, async () => {
    const res = await sdkCall(ctx.sdk.get({ path: `/channels/${uniq('public-')}/users` }));
    assert.equal(res.status, 400, res.text);
  });

  test('empty-string data is a valid trigger', { timeout: 10000 }, async () => {
    const [conn] = await rawEstablished(ctx.server, APP.key);
    const name = uniq('empty-data-');
    await rawSubscribe(conn, name);
    const res = await postEvents({ name: 'nothing', data: '', channel: name });
    assert.equal(res.status, 200, res.text);
    const f = await conn.next('nothing');
    assert.equal(f.msg.data, '');
  });

  describe('authentication', () => {
    test('a wrong secret is 401', { timeout: 10000 }, async () => {
      const wrong = sdkFor(ctx.server, { ...APP, secret: 'not-the-secret' });
      const res = await sdkCall(wrong.trigger(uniq('c-'), 'e', {}));
      assert.equal(res.status, 401, res.text);
      const res2 = await sdkCall(wrong.get({ path: '/channels' }));
      assert.equal(res2.status, 401, res2.text);
    });

    test('an unknown key is 401', { timeout: 10000 }, async () => {
      const res = await sdkCall(sdkFor(ctx.server, { ...APP, key: 'who-is-this' }).get({ path: '/channels' }));
      assert.equal(res.status, 401, res.text);
    });

    test('a timestamp older than 600 s is 401; 500 s is fine', { timeout: 10000 }, async () => {
      const now = Math.floor(Date.now() / 1000);
      const old = await signedRequest(ctx.server, APP, { path: `/apps/${APP.id}/channels`, timestamp: now - 700 });
      assert.equal(old.status, 401, old.text);
      const future = await signedRequest(ctx.server, APP, { path: `/apps/${APP.id}/channels`, timestamp: now + 700 });
      assert.equal(future.status, 401, future.text);
      const recent = await signedRequest(ctx.server, APP, { path: `/apps/${APP.id}/channels`, timestamp: now - 500 });
      assert.equal(recent.status, 200, recent.text);
    });

    test('hand-signed requests match the SDK scheme (sanity check of the crafting helper)', { timeout: 10000 }, async () => {
      const res = await postEvents({ name: 'hand', data: '{}', channels: [uniq('h-')] });
      assert.equal(res.status, 200, res.text);
      const list = await signedRequest(ctx.server, APP, {
        path: `/apps/${APP.id}/channels`,
        query: { filter_by_prefix: 'presence-', info: 'user_count' },
      });
      assert.equal(list.status, 200, list.text);
    });

    test('a wrong app id is 404 or 401', { timeout: 10000 }, async () => {
      const res = await sdkCall(sdkFor(ctx.server, { ...APP, id: '12345' }).get({ path: '/channels' }));
      assert.ok([401, 404].includes(res.status), `${res.status} ${res.text}`);
    });

    test('missing or tampered signature is 401', { timeout: 10000 }, async () => {
      const missing = await plainRequest(
        `${ctx.server.httpBase}/apps/${APP.id}/channels?auth_key=${APP.key}&auth_timestamp=${Math.floor(Date.now() / 1000)}&auth_version=1.0`,
      );
      assert.equal(missing.status, 401, missing.text);
      const bodyText = body({ name: 'e', data: 'x', channel: 'c' });
      // Signed for one body, sent with another.
      const res = await signedRequest(ctx.server, APP, {
        method: 'POST',
        path: `/apps/${APP.id}/events`,
        body: bodyText,
        query: { body_md5: md5('{"something":"else"}') },
      });
      assert.equal(res.status, 401, res.text);
      // Query parameter added after signing.
      const { signedUrl } = await import('./lib/rest.mjs');
      const url = signedUrl(ctx.server, APP, { path: `/apps/${APP.id}/channels` });
      const tampered = await plainRequest(`${url}&filter_by_prefix=x`);
      assert.equal(tampered.status, 401, tampered.text);
    });

    test('GET with the MD5 of the empty body is accepted; another md5 is 401', { timeout: 10000 }, async () => {
      const ok = await signedRequest(ctx.server, APP, { path: `/apps/${APP.id}/channels`, query: { body_md5: md5('') } });
      assert.equal(ok.status, 200, ok.text);
      const bad = await signedRequest(ctx.server, APP, { path: `/apps/${APP.id}/channels`, query: { body_md5: md5('x') } });
      assert.equal(bad.status, 401, bad.text);
    });
  });

  describe('limits and validation', () => {
    test('data of 10240 bytes is accepted, 10241 is 413', { timeout: 10000 }, async () => {
      const ok = await sdkCall(ctx.sdk.trigger(uniq('big-'), 'e', 'x'.repeat(10240)));
      assert.equal(ok.status, 200, ok.text);
      const big = await sdkCall(ctx.sdk.trigger(uniq('big-'), 'e', 'x'.repeat(10241)));
      assert.equal(big.status, 413, big.text);
      // Bytes, not characters: 5121 two-byte characters are 10242 bytes.
      const multi = await sdkCall(ctx.sdk.trigger(uniq('big-'), 'e', 'é'.repeat(5121)));
      assert.equal(multi.status, 413, multi.text);
    });

    test('100 channels are accepted, 101 is 400 (SDK refuses; hand-signed)', { timeout: 10000 }, async () => {
      const hundred = Array.from({ length: 100 }, (_, i) => `c100-${i}`);
      const ok = await sdkCall(ctx.sdk.trigger(hundred, 'e', {}));
      assert.equal(ok.status, 200, ok.text);
      assert.throws(() => ctx.sdk.trigger([...hundred, 'one-more'], 'e', {}), /100 channels/);
      const res = await postEvents({ name: 'e', data: '{}', channels: [...hundred, 'one-more'] });
      assert.equal(res.status, 400, res.text);
    });

    test('batch of 10 is accepted, 11 is 400', { timeout: 10000 }, async () => {
      const mk = (n) => Array.from({ length: n }, (_, i) => ({ channel: `batch-${i}`, name: 'e', data: String(i) }));
      const ok = await sdkCall(ctx.sdk.triggerBatch(mk(10)));
      assert.equal(ok.status, 200, ok.text);
      const over = await sdkCall(ctx.sdk.triggerBatch(mk(11)));
      assert.equal(over.status, 400, over.text);
    });

    test('invalid channel names are 400', { timeout: 10000 }, async () => {
      for (const ch of ['has space', 'slash/no', 'x'.repeat(201), '', '#not-a-user-channel']) {
        const res = await postEvents({ name: 'e', data: '{}', channels: [ch] });
        assert.equal(res.status, 400, `${JSON.stringify(ch)}: ${res.status} ${res.text}`);
      }
      const batch = await signedRequest(ctx.server, APP, {
        method: 'POST',
        path: `/apps/${APP.id}/batch_events`,
        body: body({ batch: [{ channel: 'ok', name: 'e', data: '1' }, { channel: 'bad name', name: 'e', data: '2' }] }),
      });
      assert.equal(batch.status, 400, batch.text);
    });

    test('missing fields, bad JSON, long or reserved event names are 400', { timeout: 10000 }, async () => {
      const cases = [
        ['no name', body({ data: '{}', channels: ['a'] })],
        ['no data', body({ name: 'e', channels: ['a'] })],
        ['no channel', body({ name: 'e', data: '{}' })],
        ['bad json', '{"name":'],
        ['long name', body({ name: 'e'.repeat(201), data: '{}', channels: ['a'] })],
        ['empty channels', body({ name: 'e', data: '{}', channels: [] })],
        ['reserved pusher: name', body({ name: 'pusher:subscribe', data: '{}', channels: ['a'] })],
        ['reserved pusher_internal: name', body({ name: 'pusher_internal:member_added', data: '{}', channels: ['a'] })],
      ];
      for (const [what, b] of cases) {
        const res = await signedRequest(ctx.server, APP, { method: 'POST', path: `/apps/${APP.id}/events`, body: b });
        assert.equal(res.status, 400, `${what}: ${res.status} ${res.text}`);
      }
      const okName = await postEvents({ name: 'e'.repeat(200), data: '{}', channels: ['a'] });
      assert.equal(okName.status, 200, okName.text);
    });

    test('an encrypted channel in a multi-channel trigger is 400', { timeout: 10000 }, async () => {
      const res = await postEvents({ name: 'e', data: '{}', channels: ['private-encrypted-a', 'plain'] });
      assert.equal(res.status, 400, res.text);
    });

    test('unknown routes are 404', { timeout: 10000 }, async () => {
      const signed = await signedRequest(ctx.server, APP, { path: `/apps/${APP.id}/nope` });
      assert.equal(signed.status, 404, signed.text);
      const plain = await plainRequest(`${ctx.server.httpBase}/definitely/not/here`);
      assert.equal(plain.status, 404, plain.text);
    });
  });
});
