// TOML configuration: several apps, per-app switches and limits (spec Appendix B, C).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { useSinew, uniq } from './lib/fixture.mjs';
import { runSinewToExit, toToml } from './lib/server.mjs';
import { sdkFor, startAuthServer } from './lib/auth-server.mjs';
import { makeClient, connected, subscribe, nextEvent, record, reachesState } from './lib/pusher-client.mjs';
import { rawConnect, rawEstablished, rawSubscribe, privateAuth, wsUrl, framesWithin } from './lib/raw.mjs';
import { signedRequest, sdkCall } from './lib/rest.mjs';
import { sleep, waitFor, withTimeout } from './lib/util.mjs';

describe('config file validation', () => {
  test('an unknown top-level key fails start-up and names the key', { timeout: 15000 }, async () => {
    const res = await runSinewToExit({
      config: toToml({ host: '127.0.0.1', port: 0, frobnicate: true, apps: [{ id: '1', key: 'k', secret: 's' }] }),
    });
    assert.equal(res.timedOut, false, 'sinew kept running with an unknown key');
    assert.notEqual(res.code, 0);
    assert.match(res.stdout + res.stderr, /frobnicate/);
  });

  test('an unknown app key fails start-up and names the key', { timeout: 15000 }, async () => {
    const res = await runSinewToExit({
      config: toToml({ host: '127.0.0.1', port: 0, apps: [{ id: '1', key: 'k', secret: 's', max_conections: 5 }] }),
    });
    assert.equal(res.timedOut, false, 'sinew kept running with an unknown app key');
    assert.notEqual(res.code, 0);
    assert.match(res.stdout + res.stderr, /max_conections/);
  });

  test('a config file that does not parse fails start-up', { timeout: 15000 }, async () => {
    const res = await runSinewToExit({ config: 'host = "127.0.0.1"\nport = \n[[apps]\n' });
    assert.equal(res.timedOut, false);
    assert.notEqual(res.code, 0);
  });
});

const MAIN = { id: '100', key: 'main-key', secret: 'main-secret' };
const OTHER = { id: '200', key: 'other-key', secret: 'other-secret' };
const OFF = { id: '300', key: 'off-key', secret: 'off-secret', enabled: false };
const TIGHT = {
  id: '400',
  key: 'tight-key',
  secret: 'tight-secret',
  client_events: false,
  max_connections: 3,
  max_event_data_bytes: 100,
  max_channels_per_event: 3,
  max_batch_size: 2,
  max_channel_name_length: 20,
  max_event_name_length: 10,
  cache_ttl_seconds: 1,
};
const FEATURES = {
  id: '500',
  key: 'features-key',
  secret: 'features-secret',
  client_events: true,
  watchlist: true,
  subscription_count: true,
  max_client_events_per_second: 2,
};

describe('several apps from one config', () => {
  const ctx = useSinew({ config: { activity_timeout: 7, apps: [MAIN, OTHER, OFF, TIGHT, FEATURES] } }, MAIN);

  test('activity_timeout from the config is announced in the handshake', { timeout: 10000 }, async () => {
    const [conn] = await rawEstablished(ctx.server, MAIN.key);
    const f = await conn.next('pusher:connection_established');
    assert.equal(f.data.activity_timeout, 7);
  });

  test('apps are isolated: same channel name, different apps', { timeout: 10000 }, async () => {
    const name = uniq('shared-');
    const [m] = await rawEstablished(ctx.server, MAIN.key);
    const [o] = await rawEstablished(ctx.server, OTHER.key);
    await rawSubscribe(m, name);
    await rawSubscribe(o, name);
    const mark = o.frames.length;
    await ctx.sdk.trigger(name, 'only-main', 'x');
    await m.next('only-main');
    assert.equal((await framesWithin(o, (f) => f.event === 'only-main', 300, mark)).length, 0);
    const list = await (await sdkFor(ctx.server, OTHER).get({ path: '/channels' })).json();
    assert.ok(name in list.channels);
  });

  test('a key of one app cannot sign for another app id', { timeout: 10000 }, async () => {
    const res = await signedRequest(ctx.server, OTHER, { path: `/apps/${MAIN.id}/channels` });
    assert.ok([401, 404].includes(res.status), `${res.status} ${res.text}`);
  });

  test('a private signature made with another app\'s secret is refused', { timeout: 10000 }, async () => {
    const [conn, id] = await rawEstablished(ctx.server, MAIN.key);
    const name = uniq('private-cross-');
    const res = await rawSubscribe(conn, name, { auth: `${MAIN.key}:${privateAuth(OTHER, id, name).split(':')[1]}` });
    assert.notEqual(res.event, 'pusher_internal:subscription_succeeded', res.raw);
  });

  test('a disabled app refuses connections with 4003', { timeout: 10000 }, async () => {
    const conn = rawConnect(wsUrl(ctx.server, OFF.key));
    const close = await withTimeout(conn.closed, 5000, 'close for disabled app');
    assert.equal(close.code, 4003);
    assert.ok(!conn.frames.some((f) => f.event === 'pusher:connection_established'));
    const c = makeClient(ctx.server, OFF.key);
    await reachesState(c, ['disconnected', 'failed'], 6000);
    const codes = c.__errors.map((e) => e?.error?.data?.code ?? e?.data?.code);
    assert.ok(codes.includes(4003), JSON.stringify(c.__errors));
  });

  test('a disabled app is 403 on REST', { timeout: 10000 }, async () => {
    const res = await sdkCall(sdkFor(ctx.server, OFF).trigger('x', 'e', {}));
    assert.equal(res.status, 403, res.text);
  });

  test('max_connections from the config', { timeout: 10000 }, async () => {
    for (let i = 0; i < 3; i++) await rawEstablished(ctx.server, TIGHT.key);
    const conn = rawConnect(wsUrl(ctx.server, TIGHT.key));
    const close = await withTimeout(conn.closed, 5000, 'close over quota');
    assert.ok([4004, 4100].includes(close.code), `close ${close.code}`);
    // Other apps are not affected by this app's quota.
    await rawEstablished(ctx.server, MAIN.key);
  });

  test('per-app REST limits from the config', { timeout: 10000 }, async () => {
    const sdk = sdkFor(ctx.server, TIGHT);
    assert.equal((await sdkCall(sdk.trigger('c', 'e', 'x'.repeat(100)))).status, 200);
    assert.equal((await sdkCall(sdk.trigger('c', 'e', 'x'.repeat(101)))).status, 413);
    assert.equal((await sdkCall(sdk.trigger(['a', 'b', 'c'], 'e', 'x'))).status, 200);
    assert.equal((await sdkCall(sdk.trigger(['a', 'b', 'c', 'd'], 'e', 'x'))).status, 400);
    const batch = (n) => Array.from({ length: n }, (_, i) => ({ channel: `b${i}`, name: 'e', data: 'x' }));
    assert.equal((await sdkCall(sdk.triggerBatch(batch(2)))).status, 200);
    assert.equal((await sdkCall(sdk.triggerBatch(batch(3)))).status, 400);
    assert.equal((await sdkCall(sdk.trigger('c'.repeat(20), 'e', 'x'))).status, 200);
    assert.equal((await sdkCall(sdk.trigger('c'.repeat(21), 'e', 'x'))).status, 400);
    assert.equal((await sdkCall(sdk.trigger('c', 'e'.repeat(10), 'x'))).status, 200);
    assert.equal((await sdkCall(sdk.trigger('c', 'e'.repeat(11), 'x'))).status, 400);
  });

  test('max_channel_name_length also applies to subscriptions', { timeout: 10000 }, async () => {
    const [conn] = await rawEstablished(ctx.server, TIGHT.key);
    assert.equal((await rawSubscribe(conn, 'c'.repeat(20))).event, 'pusher_internal:subscription_succeeded');
    assert.notEqual((await rawSubscribe(conn, 'c'.repeat(21))).event, 'pusher_internal:subscription_succeeded');
  });

  test('client_events = false in the config', { timeout: 10000 }, async () => {
    const name = uniq('private-tight-');
    const [a, aId] = await rawEstablished(ctx.server, TIGHT.key);
    const [b, bId] = await rawEstablished(ctx.server, TIGHT.key);
    await rawSubscribe(a, name, { auth: privateAuth(TIGHT, aId, name) });
    await rawSubscribe(b, name, { auth: privateAuth(TIGHT, bId, name) });
    const mark = b.frames.length;
    const err = a.nextNew('pusher:error', 3000);
    a.send({ event: 'client-x', channel: name, data: {} });
    await err;
    assert.equal((await framesWithin(b, (f) => f.event === 'client-x', 300, mark)).length, 0);
  });

  test('cache_ttl_seconds expires the cached event', { timeout: 10000 }, async () => {
    // max_channel_name_length is 20 for this app.
    const name = `cache-${Math.random().toString(36).slice(2, 10)}`;
    const sdk = sdkFor(ctx.server, TIGHT);
    await sdk.trigger(name, 'e', 'v');
    const [fresh] = await rawEstablished(ctx.server, TIGHT.key);
    fresh.send({ event: 'pusher:subscribe', data: { auth: '', channel: name } });
    await fresh.next((f) => f.event === 'e' && f.channel === name);
    fresh.close();
    await sleep(2200);
    const [late] = await rawEstablished(ctx.server, TIGHT.key);
    late.send({ event: 'pusher:subscribe', data: { auth: '', channel: name } });
    const f = await late.next((f) => (f.event === 'e' || f.event === 'pusher:cache_miss') && f.channel === name);
    assert.equal(f.event, 'pusher:cache_miss', 'cached event outlived cache_ttl_seconds');
  });

  test('max_client_events_per_second from the config', { timeout: 10000 }, async () => {
    const name = uniq('private-slow-');
    const [a, aId] = await rawEstablished(ctx.server, FEATURES.key);
    const [b, bId] = await rawEstablished(ctx.server, FEATURES.key);
    await rawSubscribe(a, name, { auth: privateAuth(FEATURES, aId, name) });
    await rawSubscribe(b, name, { auth: privateAuth(FEATURES, bId, name) });
    const mark = b.frames.length;
    for (let i = 0; i < 5; i++) a.send({ event: 'client-n', channel: name, data: { i } });
    await a.next((f) => f.event === 'pusher:error' && f.data.code === 4301, 3000);
    const delivered = await framesWithin(b, (f) => f.event === 'client-n', 300, mark);
    const total = b.frames.filter((f) => f.event === 'client-n').length;
    assert.ok(total >= 1 && total <= 4, `delivered ${total} of 5 with a limit of 2/s (${delivered.length} late)`);
    await a.ping();
  });

  test('subscription_count events when the feature is on', { timeout: 10000 }, async () => {
    const name = uniq('counted-');
    const c1 = makeClient(ctx.server, FEATURES.key);
    await connected(c1);
    const [ch1] = await subscribe(c1, name);
    const counts = record(ch1, 'pusher:subscription_count');
    const c2 = makeClient(ctx.server, FEATURES.key);
    await connected(c2);
    await subscribe(c2, name);
    await waitFor(() => counts.some((c) => c.data.subscription_count === 2), 'subscription_count 2');
    assert.equal(ch1.subscriptionCount, 2);
    c2.unsubscribe(name);
    await waitFor(() => counts.some((c) => c.data.subscription_count === 1), 'subscription_count 1');
  });

  test('subscription_count is never sent on presence channels', { timeout: 10000 }, async () => {
    const { presenceAuth } = await import('./lib/raw.mjs');
    const name = uniq('presence-counted-');
    const [a, aId] = await rawEstablished(ctx.server, FEATURES.key);
    const [b, bId] = await rawEstablished(ctx.server, FEATURES.key);
    const cd = (id) => JSON.stringify({ user_id: id });
    await rawSubscribe(a, name, { auth: presenceAuth(FEATURES, aId, name, cd('a')), channel_data: cd('a') });
    await rawSubscribe(b, name, { auth: presenceAuth(FEATURES, bId, name, cd('b')), channel_data: cd('b') });
    await a.next('pusher_internal:member_added');
    await sleep(200);
    const counts = [...a.frames, ...b.frames].filter((f) => f.event === 'pusher_internal:subscription_count');
    assert.deepEqual(counts.map((f) => f.raw), []);
  });

  test('no subscription_count events when the feature is off (default)', { timeout: 10000 }, async () => {
    const name = uniq('uncounted-');
    const [a] = await rawEstablished(ctx.server, MAIN.key);
    const [b] = await rawEstablished(ctx.server, MAIN.key);
    await rawSubscribe(a, name);
    await rawSubscribe(b, name);
    const got = await framesWithin(a, (f) => f.event === 'pusher_internal:subscription_count', 300);
    assert.equal(got.length + a.frames.filter((f) => f.event === 'pusher_internal:subscription_count').length, 0);
  });

  test('watchlist online/offline events when the feature is on', { timeout: 15000 }, async () => {
    const auth = await startAuthServer(ctx.server, FEATURES);
    try {
      const friend = uniq('friend');
      const later = uniq('later');
      const signIn = async (id, watchlist) => {
        const c = makeClient(ctx.server, FEATURES.key, {
          auth,
          userParams: { user_id: id, ...(watchlist ? { watchlist: watchlist.join(',') } : {}) },
        });
        c.signin();
        await connected(c);
        return c;
      };
      const f = await signIn(friend);
      await withTimeout(f.user.signinDonePromise, 5000, 'friend sign-in');
      const watcher = makeClient(ctx.server, FEATURES.key, {
        auth,
        userParams: { user_id: uniq('watcher'), watchlist: [friend, later].join(',') },
      });
      const online = record(watcher.user.watchlist, 'online');
      const offline = record(watcher.user.watchlist, 'offline');
      watcher.signin();
      await connected(watcher);
      await waitFor(() => online.some((e) => e.data.user_ids.includes(friend)), 'initial online event for friend');
      const l = await signIn(later);
      await withTimeout(l.user.signinDonePromise, 5000, 'later sign-in');
      await waitFor(() => online.some((e) => e.data.user_ids.includes(later)), 'online event for later');
      f.disconnect();
      await waitFor(() => offline.some((e) => e.data.user_ids.includes(friend)), 'offline event for friend');
    } finally {
      await auth.stop();
    }
  });

  test('other apps get the built-in defaults (10 KB data limit)', { timeout: 10000 }, async () => {
    assert.equal((await sdkCall(ctx.sdk.trigger('c', 'e', 'x'.repeat(10240)))).status, 200);
    assert.equal((await sdkCall(ctx.sdk.trigger('c', 'e', 'x'.repeat(10241)))).status, 413);
  });
});
