// Connection handshake, refusals, pings and malformed input (spec sections 1, 2.2, 3).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { useSinew, appEnv } from './lib/fixture.mjs';
import { startSinew } from './lib/server.mjs';
import { makeClient, connected, reachesState, subscribe, nextEvent } from './lib/pusher-client.mjs';
import { startAuthServer, sdkFor } from './lib/auth-server.mjs';
import { rawConnect, rawEstablished, wsUrl, framesWithin } from './lib/raw.mjs';
import { plainRequest } from './lib/rest.mjs';
import { sleep, withTimeout, waitFor } from './lib/util.mjs';

const waitForState = (client, state, ms) =>
  waitFor(() => client.connection.state === state, `state ${state} (states: ${client.__states.join(' > ')})`, ms);

const SOCKET_ID_RE = /^\d+\.\d+$/;
const APP = { id: '4242', key: 'conn-key', secret: 'conn-secret' };

describe('handshake', () => {
  const ctx = useSinew({ env: appEnv(APP) }, APP);

  test('announces its port on stdout and answers GET /up', { timeout: 10000 }, async () => {
    assert.equal(ctx.server.announcedOn, 'stdout', 'the listening line must be printed on stdout');
    const res = await plainRequest(`${ctx.server.httpBase}/up`);
    assert.equal(res.status, 200);
  });

  test('first frame is pusher:connection_established with a double-encoded payload', { timeout: 10000 }, async () => {
    const conn = rawConnect(wsUrl(ctx.server, APP.key));
    await conn.opened;
    const first = await conn.next(() => true);
    assert.equal(first.event, 'pusher:connection_established', `first frame: ${first.raw}`);
    assert.equal(typeof first.msg.data, 'string', 'data must be a JSON string (double encoding)');
    const data = JSON.parse(first.msg.data);
    assert.match(data.socket_id, SOCKET_ID_RE);
    assert.ok(Number.isInteger(data.activity_timeout) && data.activity_timeout > 0, `activity_timeout ${data.activity_timeout}`);
  });

  test('socket ids are unique per connection', { timeout: 10000 }, async () => {
    const ids = new Set();
    for (let i = 0; i < 5; i++) {
      const [, id] = await rawEstablished(ctx.server, APP.key);
      assert.match(id, SOCKET_ID_RE);
      ids.add(id);
    }
    assert.equal(ids.size, 5);
  });

  test('pusher-js connects and gets a socket id', { timeout: 10000 }, async () => {
    const client = makeClient(ctx.server, APP.key);
    const socketId = await connected(client);
    assert.match(socketId, SOCKET_ID_RE);
    assert.equal(client.connection.state, 'connected');
  });

  test('pusher-js with an unknown key is refused with 4001 and does not retry', { timeout: 15000 }, async () => {
    const client = makeClient(ctx.server, 'no-such-key');
    const state = await reachesState(client, ['disconnected', 'failed'], 8000);
    assert.ok(['disconnected', 'failed'].includes(state));
    const codes = client.__errors.map((e) => e?.error?.data?.code ?? e?.data?.code);
    assert.ok(codes.includes(4001), `errors seen: ${JSON.stringify(client.__errors)}`);
    const statesBefore = client.__states.length;
    await sleep(2500);
    assert.deepEqual(client.__states.slice(statesBefore), [], 'pusher-js must not reconnect after 4001');
    assert.notEqual(client.connection.state, 'connected');
  });

  test('raw socket with an unknown key gets pusher:error 4001 then close 4001', { timeout: 10000 }, async () => {
    const conn = rawConnect(wsUrl(ctx.server, 'no-such-key'));
    const close = await withTimeout(conn.closed, 5000, 'close after unknown key');
    assert.equal(close.code, 4001);
    const err = conn.frames.find((f) => f.event === 'pusher:error');
    if (err) {
      assert.equal(err.data.code, 4001, err.raw);
      assert.equal(typeof err.data.message, 'string');
    }
    assert.ok(!conn.frames.some((f) => f.event === 'pusher:connection_established'));
  });

  test('connects without a protocol parameter (treated as 7)', { timeout: 10000 }, async () => {
    const conn = rawConnect(wsUrl(ctx.server, APP.key, ''));
    await conn.opened;
    const f = await conn.next(() => true);
    assert.equal(f.event, 'pusher:connection_established', f.raw);
  });

  test('accepts a trailing slash after the key and ignores unknown query parameters', { timeout: 10000 }, async () => {
    const conn = rawConnect(`${ctx.server.wsBase}/app/${APP.key}/?protocol=7&client=java&version=2.0.0&foo=bar`);
    await conn.opened;
    const f = await conn.next(() => true);
    assert.equal(f.event, 'pusher:connection_established', f.raw);
  });

  test('an unsupported protocol version is refused with 4007', { timeout: 10000 }, async () => {
    const conn = rawConnect(wsUrl(ctx.server, APP.key, 'protocol=99&client=js&version=8.6.0'));
    const close = await withTimeout(conn.closed, 5000, 'close after bad protocol');
    assert.equal(close.code, 4007, `frames: ${conn.frames.map((f) => f.raw).join(' | ')}`);
    assert.ok(!conn.frames.some((f) => f.event === 'pusher:connection_established'));
  });

  test('protocol 5 and 6 are accepted; below 5 is refused with 4007', { timeout: 10000 }, async () => {
    for (const p of ['5', '6']) {
      const conn = rawConnect(wsUrl(ctx.server, APP.key, `protocol=${p}&client=js&version=8.6.0`));
      await conn.opened;
      assert.equal((await conn.next(() => true)).event, 'pusher:connection_established', `protocol ${p}`);
    }
    const old = rawConnect(wsUrl(ctx.server, APP.key, 'protocol=4&client=js&version=8.6.0'));
    const close = await withTimeout(old.closed, 5000, 'close for protocol 4');
    assert.equal(close.code, 4007);
  });

  test('a malformed version string is refused with 4006', { timeout: 10000 }, async () => {
    const conn = rawConnect(wsUrl(ctx.server, APP.key, 'protocol=7&client=js&version=not-a-version'));
    const first = await withTimeout(
      Promise.race([conn.closed.then((c) => ({ close: c })), conn.next(() => true).then((f) => ({ frame: f }))]),
      5000,
      'a frame or a close for a malformed version',
    );
    if (first.frame) assert.notEqual(first.frame.event, 'pusher:connection_established', `accepted: ${first.frame.raw}`);
    const close = await withTimeout(conn.closed, 5000, 'close for a malformed version');
    assert.equal(close.code, 4006, `frames: ${conn.frames.map((f) => f.raw).join(' | ')}`);
  });

  test('a path other than /app/{key} is refused (404 or 4005)', { timeout: 10000 }, async () => {
    const conn = rawConnect(`${ctx.server.wsBase}/nope/${APP.key}?protocol=7`);
    let outcome;
    try {
      await conn.opened;
      const close = await withTimeout(conn.closed, 5000, 'close on bad path');
      outcome = `close ${close.code}`;
    } catch (e) {
      outcome = e.message;
    }
    assert.match(outcome, /HTTP 404|close 4005/);
  });

  test('pusher:ping is answered with pusher:pong', { timeout: 10000 }, async () => {
    const [conn] = await rawEstablished(ctx.server, APP.key);
    const pong = await conn.ping();
    assert.equal(pong.event, 'pusher:pong');
  });

  test('WebSocket-level ping frames are answered', { timeout: 10000 }, async () => {
    const [conn] = await rawEstablished(ctx.server, APP.key);
    const got = withTimeout(new Promise((r) => conn.ws.once('pong', (d) => r(d.toString()))), 3000, 'ws pong');
    conn.ws.ping('sinew');
    assert.equal(await got, 'sinew');
  });

  test('invalid JSON gets pusher:error with code null and the socket stays open', { timeout: 10000 }, async () => {
    const [conn] = await rawEstablished(ctx.server, APP.key);
    const errP = conn.nextNew('pusher:error', 3000);
    conn.send('{this is not json');
    const err = await errP;
    assert.equal(typeof err.msg.data, 'object', `pusher:error data is an object, not a string: ${err.raw}`);
    assert.equal(err.data.code, null, err.raw);
    assert.equal(typeof err.data.message, 'string');
    await conn.ping();
    assert.equal(conn.closeInfo, null);
  });

  test('an unknown pusher: event gets pusher:error with code null and the socket stays open', { timeout: 10000 }, async () => {
    const [conn] = await rawEstablished(ctx.server, APP.key);
    const errP = conn.nextNew('pusher:error', 3000);
    conn.send({ event: 'pusher:no_such_thing', data: {} });
    const err = await errP;
    assert.equal(err.data.code, null, err.raw);
    await conn.ping();
    assert.equal(conn.closeInfo, null);
  });

  test('unsubscribing from a channel never joined is ignored silently', { timeout: 10000 }, async () => {
    const [conn] = await rawEstablished(ctx.server, APP.key);
    conn.send({ event: 'pusher:unsubscribe', data: { channel: 'never-joined' } });
    const extra = await framesWithin(conn, () => true, 300);
    assert.deepEqual(extra.map((f) => f.raw), []);
    await conn.ping();
  });

  test('pusher-js disconnect() closes cleanly and the client can reconnect', { timeout: 10000 }, async () => {
    const client = makeClient(ctx.server, APP.key);
    const first = await connected(client);
    client.disconnect();
    await reachesState(client, ['disconnected']);
    client.connect();
    const second = await connected(client);
    assert.notEqual(first, second);
  });
});

describe('connection quota', () => {
  const LIMITED = { id: '77', key: 'limited-key', secret: 'limited-secret' };
  const ctx = useSinew({ env: appEnv(LIMITED, { SINEW_APP_MAX_CONNECTIONS: '2' }) }, LIMITED);

  test('a connection over max_connections is refused with 4004 or 4100', { timeout: 15000 }, async () => {
    const [a] = await rawEstablished(ctx.server, LIMITED.key);
    await rawEstablished(ctx.server, LIMITED.key);
    const third = rawConnect(wsUrl(ctx.server, LIMITED.key));
    const close = await withTimeout(third.closed, 5000, 'close of the third connection');
    assert.ok([4004, 4100].includes(close.code), `close code ${close.code}`);
    assert.ok(!third.frames.some((f) => f.event === 'pusher:connection_established'));
    const err = third.frames.find((f) => f.event === 'pusher:error');
    if (err) assert.equal(err.data.code, close.code);

    // pusher-js sees the same refusal.
    const client = makeClient(ctx.server, LIMITED.key);
    await sleep(1500);
    assert.notEqual(client.connection.state, 'connected');
    const codes = client.__errors.map((e) => e?.error?.data?.code ?? e?.data?.code);
    assert.ok(codes.some((c) => c === 4004 || c === 4100), JSON.stringify(client.__errors));
    client.disconnect();

    // Freeing a slot lets a new connection in.
    a.close();
    await sleep(300);
    const [, id] = await rawEstablished(ctx.server, LIMITED.key);
    assert.match(id, SOCKET_ID_RE);
  });
});

describe('liveness timers', () => {
  const FAST = { id: '78', key: 'fast-key', secret: 'fast-secret' };
  const ctx = useSinew({ config: { activity_timeout: 2, pong_timeout: 1, apps: [FAST] } }, FAST);

  test('a silent socket gets pusher:ping, then close 4201 when it does not answer', { timeout: 15000 }, async () => {
    const [conn] = await rawEstablished(ctx.server, FAST.key);
    const established = conn.frames[0];
    assert.equal(established.data.activity_timeout, 2);
    const ping = await conn.next('pusher:ping', 6000);
    assert.equal(ping.channel, undefined);
    const close = await withTimeout(conn.closed, 6000, 'close after an unanswered ping');
    assert.equal(close.code, 4201);
  });

  test('a socket that answers pings stays open', { timeout: 15000 }, async () => {
    const [conn] = await rawEstablished(ctx.server, FAST.key);
    conn.ws.on('message', (buf) => {
      if (JSON.parse(buf.toString()).event === 'pusher:ping') conn.send({ event: 'pusher:pong', data: {} });
    });
    await sleep(4500);
    assert.ok(conn.frames.some((f) => f.event === 'pusher:ping'), 'server pinged the idle socket');
    assert.equal(conn.closeInfo, null, `closed: ${JSON.stringify(conn.closeInfo)}`);
  });

  test('WebSocket-level ping frames count as activity', { timeout: 15000 }, async () => {
    const [conn] = await rawEstablished(ctx.server, FAST.key);
    const timer = setInterval(() => conn.ws.readyState === 1 && conn.ws.ping(), 500);
    try {
      await sleep(4500);
    } finally {
      clearInterval(timer);
    }
    assert.equal(conn.closeInfo, null, `closed although it kept pinging: ${JSON.stringify(conn.closeInfo)}`);
  });

  test('pusher-js keeps one connection alive across several activity timeouts', { timeout: 15000 }, async () => {
    const client = makeClient(ctx.server, FAST.key);
    const id = await connected(client);
    await sleep(5000);
    assert.equal(client.connection.state, 'connected');
    assert.equal(client.connection.socket_id, id, `reconnected; states: ${client.__states.join(' > ')}`);
  });
});

describe('shutdown', () => {
  test('after a restart pusher-js reconnects, signs in again and resubscribes', { timeout: 45000 }, async () => {
    const APPR = { id: '1', key: 'app-key', secret: 'app-secret' };
    let server = await startSinew();
    const port = server.port;
    const auth = await startAuthServer(server, APPR);
    try {
      const client = makeClient(server, APPR.key, {
        auth,
        userParams: { user_id: 'phoenix' },
        channelParams: { user_id: 'phoenix', user_info: '{}' },
      });
      client.signin();
      const firstId = await connected(client);
      const [priv] = await subscribe(client, 'private-restart');
      const [pres] = await subscribe(client, 'presence-restart');
      await server.stop();
      await reachesState(client, ['connecting', 'unavailable'], 5000);
      server = await startSinew({ env: { SINEW_PORT: String(port) } });
      assert.equal(server.port, port);
      // pusher-js retries at once after 4200, while nothing listens yet; a refused WebSocket does not
      // end its attempt early: the next one starts when the attempt's 15 s timeout runs out.
      await waitForState(client, 'connected', 25000);
      assert.notEqual(client.connection.socket_id, firstId);
      await waitFor(() => priv.subscribed && pres.subscribed, 'resubscription after reconnect', 5000);
      await waitFor(() => client.user.serverToUserChannel && client.user.serverToUserChannel.subscribed, 'sign-in after reconnect', 5000);
      const sdk = sdkFor(server, APPR);
      const got = nextEvent(priv, 'again');
      await sdk.trigger('private-restart', 'again', { ok: true });
      assert.deepEqual((await got).data, { ok: true });
      const toUser = nextEvent(client.user, 'welcome-back');
      await sdk.sendToUser('phoenix', 'welcome-back', { n: 1 });
      assert.deepEqual((await toUser).data, { n: 1 });
      assert.equal(pres.members.me.id, 'phoenix');
      client.disconnect();
    } finally {
      await auth.stop();
      await server.stop();
    }
  });


  test('SIGTERM closes sockets with 4200 and pusher-js starts reconnecting', { timeout: 15000 }, async () => {
    const server = await startSinew();
    try {
      const [conn] = await rawEstablished(server, 'app-key');
      const client = makeClient(server, 'app-key');
      await connected(client);
      server.proc.kill('SIGTERM');
      const close = await withTimeout(conn.closed, 5000, 'close on shutdown');
      assert.equal(close.code, 4200);
      await reachesState(client, ['connecting', 'unavailable'], 5000);
      const codes = client.__errors.map((e) => e?.data?.code ?? e?.error?.data?.code);
      assert.ok(codes.includes(4200), JSON.stringify(client.__errors));
      client.disconnect();
      const exit = await withTimeout(new Promise((r) => (server.exited ? r(server.exited) : server.proc.once('exit', (code) => r({ code })))), 5000, 'sinew to exit');
      assert.equal(exit.code, 0, `exit ${JSON.stringify(exit)}\n${server.stderr}`);
    } finally {
      await server.stop();
    }
  });
});
