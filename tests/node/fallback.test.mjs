// HTTP fallback transports (spec section 9) with unmodified pusher-js 8.6.0 (Node build), forced
// onto xhr_streaming and then xhr_polling: connect, every channel type, REST events through the
// official SDK, client events, a stream re-attach after more than 256 KiB, cleanup after leaving.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { useSinew, uniq } from './lib/fixture.mjs';
import { makeClient, connected, subscribe, nextEvent, record } from './lib/pusher-client.mjs';
import { waitFor } from './lib/util.mjs';

async function usage(server) {
  const res = await fetch(`${server.httpBase}/usage`, { signal: AbortSignal.timeout(5000) });
  return res.json();
}

for (const transport of ['xhr_streaming', 'xhr_polling']) {
  describe(`pusher-js over ${transport}`, () => {
    const ctx = useSinew({ env: { SINEW_HTTP_SESSION_TIMEOUT: '1' } });

    /** A pusher-js client that may only use `transport`, pointed at sinew's fallback endpoints. */
    const client = (opts = {}) =>
      makeClient(ctx.server, ctx.app.key, {
        auth: ctx.auth,
        ...opts,
        pusher: {
          enabledTransports: [transport],
          httpHost: '127.0.0.1',
          httpPort: ctx.server.port,
          httpPath: '/pusher',
          forceTLS: false,
          ...(opts.pusher || {}),
        },
      });
    /** A WebSocket client, to watch the fallback clients from the other transport. */
    const wsClient = (opts = {}) => makeClient(ctx.server, ctx.app.key, { auth: ctx.auth, ...opts });

    test('connects on the forced transport', { timeout: 20000 }, async () => {
      const c = client();
      const socketId = await connected(c, 15000);
      assert.match(socketId, /^\d+\.\d+$/);
      assert.equal(c.connection.connection.transport.name, transport);
      const u = await usage(ctx.server);
      assert.equal(u.http_sessions, 1, JSON.stringify(u));
    });

    test('public and private channels receive REST events from the SDK', { timeout: 20000 }, async () => {
      const c = client();
      await connected(c, 15000);
      const pub = uniq('news-');
      const priv = uniq('private-news-');
      const [pubChannel] = await subscribe(c, pub);
      const [privChannel] = await subscribe(c, priv);
      const gotPub = nextEvent(pubChannel, 'headline');
      const gotPriv = nextEvent(privChannel, 'secret');
      await ctx.sdk.trigger([pub, priv], 'headline', { n: 1 });
      await ctx.sdk.trigger(priv, 'secret', { text: 'ünïcode ✓' });
      assert.deepEqual((await gotPub).data, { n: 1 });
      assert.deepEqual((await gotPriv).data, { text: 'ünïcode ✓' });
    });

    test('presence members across transports, and client events', { timeout: 20000 }, async () => {
      const name = uniq('presence-room-');
      const watcher = wsClient({ channelParams: { user_id: 'ws-user', user_info: '{"via":"ws"}' } });
      await connected(watcher);
      const [wChan] = await subscribe(watcher, name);
      const added = nextEvent(wChan, 'pusher:member_added');

      const c = client({ channelParams: { user_id: 'http-user', user_info: '{"via":"http"}' } });
      await connected(c, 15000);
      const [cChan, members] = await subscribe(c, name);
      assert.equal(members.count, 2);
      assert.equal(members.me.id, 'http-user');
      assert.deepEqual(members.get('ws-user').info, { via: 'ws' });
      assert.deepEqual((await added).data, { id: 'http-user', info: { via: 'http' } });

      // Client events both ways between a WebSocket and a fallback client.
      const toHttp = nextEvent(cChan, 'client-hello');
      const toWs = nextEvent(wChan, 'client-hello');
      assert.ok(wChan.trigger('client-hello', { from: 'ws' }));
      assert.ok(cChan.trigger('client-hello', { from: 'http' }));
      const h = await toHttp;
      assert.deepEqual(h.data, { from: 'ws' });
      assert.equal(h.metadata.user_id, 'ws-user');
      assert.deepEqual((await toWs).data, { from: 'http' });
    });

    test('survives more than 256 KiB of traffic on one session', { timeout: 30000 }, async () => {
      const c = client();
      const socketId = await connected(c, 15000);
      const name = uniq('bulk-');
      const [channel] = await subscribe(c, name);
      const socket = c.connection.connection.transport.socket;
      let reconnects = 0;
      const original = socket.reconnect.bind(socket);
      socket.reconnect = () => {
        reconnects += 1;
        return original();
      };
      const seen = record(channel, 'bulk');
      const payload = 'x'.repeat(9000);
      const total = 40; // about 360 KiB of frames
      for (let i = 0; i < total; i += 1) {
        await ctx.sdk.trigger(name, 'bulk', { i, payload });
      }
      await waitFor(() => seen.length === total, `${total} bulk events (got ${seen.length})`, 20000);
      assert.deepEqual(
        seen.map((e) => e.data.i),
        Array.from({ length: total }, (_, i) => i),
        'every event once, in order',
      );
      assert.ok(reconnects >= 1, 'the receive request was re-attached');
      assert.equal(c.connection.socket_id, socketId, 'same session throughout');
      assert.equal(c.connection.state, 'connected');
      // (pusher-js enters `connecting` inside its constructor, before the recorder is bound.)
      assert.deepEqual([...c.__states], ['connected'], 'never left connected');
      assert.deepEqual(c.__errors, []);
    });

    test('a client that disconnects is cleaned up', { timeout: 20000 }, async () => {
      const name = uniq('presence-leave-');
      const watcher = wsClient({ channelParams: { user_id: 'stays' } });
      await connected(watcher);
      const [wChan] = await subscribe(watcher, name);
      const c = client({ channelParams: { user_id: 'leaves' } });
      await connected(c, 15000);
      await subscribe(c, name);
      await waitFor(() => wChan.members.count === 2, 'both members');
      const removed = nextEvent(wChan, 'pusher:member_removed', 10000);
      c.disconnect();
      assert.equal((await removed).data.id, 'leaves');
      await waitFor(async () => (await usage(ctx.server)).http_sessions === 0, 'no http session left', 10000);
      const { body } = await ctx.sdk.get({ path: `/channels/${name}/users` }).then(async (r) => ({ body: await r.json() }));
      assert.deepEqual(body.users, [{ id: 'stays' }]);
    });
  });
}
