// Records what the real clients send and writes it as seed corpora for the fuzz targets
// (fuzz/corpus/<target>/). Not a test: run it by hand after `cargo build` and `npm ci`:
//
//   node tests/node/capture-seeds.mjs
//
// A recording TCP proxy sits between the clients and a running target/debug/sinew: unmodified
// pusher-js 8.6.0 (WebSocket, then xhr_streaming and xhr_polling), the official `pusher` Node SDK
// (REST calls, channel and user authorization signed by the app back end of lib/auth-server.mjs),
// and pusher-js calling Sinew's own JWT auth endpoints. Every byte the clients send is kept per
// connection; the requests and frames are then cut out of those streams:
//
//   request_head    each connection's first request head (byte 0: the path prefix choice)
//   ws_frame        each WebSocket connection's frames as sent, masked (header bytes: size limit,
//                   chunk seed)
//   client_message  the text of each frame, one file per message and one per connection
//   rest_query      `METHOD\nPATH\nQUERY\nBODY` of each REST request
//   fallback_body   each xhr_send body and each receive request's query (byte 0: the size limit)
//   jwt             `authorization\ncookie\nform-body` of each token auth request
//
// File names are content hashes; a run adds its captures beside those already there (socket ids and
// timestamps differ from run to run).
import net from 'node:net';
import crypto from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { SignJWT } from 'jose';
import { startSinew, REPO_ROOT, DEFAULT_APP } from './lib/server.mjs';
import { startAuthServer, MASTER_KEY_B64 } from './lib/auth-server.mjs';
import { makeClient, connected, subscribe, disconnectAll } from './lib/pusher-client.mjs';
import { sleep } from './lib/util.mjs';

const CORPUS = path.join(REPO_ROOT, 'fuzz', 'corpus');
// The secret the jwt fuzz target's apps use.
const JWT_SECRET = 'a-shared-secret-of-32-bytes-at-least!';

/** A TCP proxy to `port` that keeps what each client connection sent. */
async function recordingProxy(port) {
  const conns = [];
  const server = net.createServer((client) => {
    const sent = [];
    conns.push(sent);
    const upstream = net.connect(port, '127.0.0.1');
    client.on('data', (d) => {
      sent.push(Buffer.from(d));
      upstream.write(d);
    });
    upstream.on('data', (d) => client.write(d));
    client.on('end', () => upstream.end());
    upstream.on('end', () => client.end());
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: server.address().port,
    streams: () => conns.map((c) => Buffer.concat(c)),
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** HTTP/1.1 requests cut out of one connection's bytes; `rest` is what follows the last head. */
function splitRequests(buf) {
  const out = [];
  let at = 0;
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', at);
    if (end < 0) break;
    const head = buf.subarray(at, end + 4);
    const lines = head.toString('latin1').split('\r\n');
    const [method, target] = lines[0].split(' ');
    const headers = {};
    for (const l of lines.slice(1)) {
      const i = l.indexOf(':');
      if (i > 0) headers[l.slice(0, i).trim().toLowerCase()] = l.slice(i + 1).trim();
    }
    let bodyEnd = end + 4;
    let body = Buffer.alloc(0);
    if (headers['transfer-encoding'] === 'chunked') {
      const parts = [];
      for (;;) {
        const nl = buf.indexOf('\r\n', bodyEnd);
        if (nl < 0) break;
        const n = parseInt(buf.subarray(bodyEnd, nl).toString(), 16);
        if (!(n > 0)) {
          bodyEnd = nl + 4;
          break;
        }
        parts.push(buf.subarray(nl + 2, nl + 2 + n));
        bodyEnd = nl + 2 + n + 2;
      }
      body = Buffer.concat(parts);
    } else if (headers['content-length']) {
      const n = Number(headers['content-length']);
      body = buf.subarray(bodyEnd, bodyEnd + n);
      bodyEnd += n;
    }
    out.push({ head, method, target, headers, body });
    at = bodyEnd;
    if (method === 'GET' && (headers.upgrade || '').toLowerCase() === 'websocket') break;
  }
  return { requests: out, rest: buf.subarray(at) };
}

/** The text messages in a client's masked frames (fragments joined). */
function textMessages(buf) {
  const out = [];
  let at = 0;
  let partial = null;
  while (at + 2 <= buf.length) {
    const b0 = buf[at];
    let len = buf[at + 1] & 0x7f;
    let p = at + 2;
    if (len === 126) {
      len = buf.readUInt16BE(p);
      p += 2;
    } else if (len === 127) {
      len = Number(buf.readBigUInt64BE(p));
      p += 8;
    }
    const mask = buf.subarray(p, p + 4);
    p += 4;
    if (p + len > buf.length) break;
    const payload = Buffer.from(buf.subarray(p, p + len)).map((b, i) => b ^ mask[i % 4]);
    at = p + len;
    const opcode = b0 & 0x0f;
    if (opcode === 1) partial = [payload];
    else if (opcode === 0 && partial) partial.push(payload);
    else continue;
    if (b0 & 0x80) {
      out.push(Buffer.concat(partial));
      partial = null;
    }
  }
  return out;
}

const written = {};
function seed(target, bytes) {
  const dir = path.join(CORPUS, target);
  mkdirSync(dir, { recursive: true });
  const data = Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes);
  const name = crypto.createHash('sha1').update(data).digest('hex').slice(0, 16);
  writeFileSync(path.join(dir, name), data);
  written[target] = (written[target] || 0) + 1;
}

function writeSeeds(streams) {
  for (const stream of streams) {
    const { requests, rest } = splitRequests(stream);
    if (requests.length === 0) continue;
    seed('request_head', Buffer.concat([Buffer.from([0]), requests[0].head]));
    for (const r of requests) {
      const [p, q = ''] = r.target.split(/\?(.*)/s);
      if (r.method === 'GET' && p.includes('/app/')) {
        // Byte 0 0x7F and byte 1 0xFF: raw mode, limit 32767; byte 2: chunk seed.
        if (rest.length) seed('ws_frame', Buffer.concat([Buffer.from([0x7f, 0xff, 0x01]), rest]));
        const messages = textMessages(rest);
        for (const m of messages) seed('client_message', m);
        if (messages.length) seed('client_message', Buffer.concat(messages.flatMap((m) => [m, Buffer.from('\n')])));
      } else if (/\/apps\/[^/]+\/(auth|user-auth)$/.test(p)) {
        const line = (s) => Buffer.from(`${s || ''}\n`);
        seed('jwt', Buffer.concat([Buffer.from([0]), line(r.headers.authorization), line(r.headers.cookie), r.body]));
        // The token's claims for the target's signed mode (byte 0: 2), which signs them again,
        // with an `exp` that has not passed.
        const payload = (r.headers.authorization || '').replace(/^Bearer /, '').split('.')[1];
        if (payload) {
          const claims = { ...JSON.parse(Buffer.from(payload, 'base64url')), exp: 4102444800 };
          seed('jwt', Buffer.concat([Buffer.from([2]), Buffer.from(JSON.stringify(claims))]));
        }
      } else if (p.startsWith('/apps/') || p.startsWith('/users/')) {
        seed('rest_query', Buffer.concat([Buffer.from(`${r.method}\n${p}\n${q}\n`), r.body]));
      } else if (p.endsWith('/xhr_send')) {
        // Byte 0 160: a limit of 10240 bytes, the default max_message_bytes.
        seed('fallback_body', Buffer.concat([Buffer.from([160]), r.body]));
      } else if (p.endsWith('/xhr') || p.endsWith('/xhr_streaming')) {
        seed('fallback_body', Buffer.concat([Buffer.from([160]), Buffer.from(q)]));
      }
    }
  }
}

async function jwtFor(claims) {
  return new SignJWT(claims)
    .setProtectedHeader({ alg: 'HS256' })
    .setIssuedAt()
    .setExpirationTime(Math.floor(Date.now() / 1000) + 300)
    .sign(new TextEncoder().encode(JWT_SECRET));
}

async function main() {
  const app = DEFAULT_APP;
  const sinew = await startSinew({
    env: {
      SINEW_APP_ID: app.id,
      SINEW_APP_KEY: app.key,
      SINEW_APP_SECRET: app.secret,
      SINEW_APP_CLIENT_EVENTS: 'true',
      SINEW_APP_WATCHLIST: 'true',
      SINEW_APP_ENCRYPTION_MASTER_KEY_BASE64: MASTER_KEY_B64,
      SINEW_APP_JWT_SECRET: JWT_SECRET,
    },
  });
  const proxy = await recordingProxy(sinew.port);
  const via = { ...sinew, port: proxy.port, httpBase: `http://127.0.0.1:${proxy.port}` };
  const auth = await startAuthServer(via, app);
  try {
    // pusher-js over WebSocket: every channel kind, a client event, sign-in, unsubscribe.
    const a = makeClient(via, app.key, {
      auth,
      channelParams: { user_id: 'alice', user_info: JSON.stringify({ name: 'Alice ✓' }) },
      userParams: { user_id: 'alice', watchlist: 'bob,carol' },
    });
    const b = makeClient(via, app.key, { auth, channelParams: { user_id: '42', numeric_id: '1' } });
    await Promise.all([connected(a, 10000), connected(b, 10000)]);
    const [priv] = await subscribe(a, 'private-room');
    await subscribe(b, 'private-room');
    for (const name of ['news', 'presence-lobby', 'private-encrypted-vault', 'cache-scores']) {
      await subscribe(a, name).catch(() => {});
    }
    await subscribe(b, 'presence-lobby').catch(() => {});
    priv.trigger('client-typing', { user: 'alice', text: 'héllo "quoted" \\ ✓' });
    a.signin();
    await sleep(300);

    // The official SDK through the proxy: events, batches, queries, users.
    const sdk = auth.sdk;
    await sdk.trigger(['news', 'private-room'], 'headline', { n: 1, text: 'ünïcode ✓' });
    await sdk.trigger('news', 'excluded', 'plain string', { socket_id: a.connection.socket_id });
    await sdk.triggerBatch([
      { channel: 'news', name: 'a', data: { x: 1 } },
      { channel: 'private-room', name: 'b', data: 'two' },
    ]);
    await sdk.get({ path: '/channels', params: { filter_by_prefix: 'presence-', info: 'user_count' } });
    await sdk.get({ path: '/channels/presence-lobby', params: { info: 'user_count,subscription_count' } });
    await sdk.get({ path: '/channels/presence-lobby/users' });
    await sdk.sendToUser('alice', 'note', { hello: 'you' }).catch(() => {});
    await sdk.terminateUserConnections('nobody').catch(() => {});
    a.unsubscribe('news');
    await sleep(200);
    disconnectAll();

    // pusher-js on the HTTP fallbacks.
    for (const transport of ['xhr_streaming', 'xhr_polling']) {
      const c = makeClient(via, app.key, {
        auth,
        pusher: {
          enabledTransports: [transport],
          httpHost: '127.0.0.1',
          httpPort: proxy.port,
          httpPath: '/pusher',
          forceTLS: false,
        },
      });
      await connected(c, 15000);
      const [ch] = await subscribe(c, 'private-fallback', 10000);
      await subscribe(c, 'news', 10000);
      ch.trigger('client-fallback', { ok: true, text: 'über' });
      await sleep(500);
      disconnectAll();
    }

    // Sinew's own token auth endpoints, called by pusher-js with a bearer JWT.
    const jwt = await jwtFor({ sub: 'user-7', channels: ['private-jwt-*', 'presence-jwt'], user_info: { n: 7 } });
    const headers = { Authorization: `Bearer ${jwt}` };
    const t = makeClient(via, app.key, {
      pusher: {
        channelAuthorization: { endpoint: `${via.httpBase}/apps/${app.id}/auth`, transport: 'ajax', headers },
        userAuthentication: { endpoint: `${via.httpBase}/apps/${app.id}/user-auth`, transport: 'ajax', headers },
      },
    });
    await connected(t, 10000);
    await subscribe(t, 'private-jwt-1').catch(() => {});
    await subscribe(t, 'presence-jwt').catch(() => {});
    t.signin();
    await sleep(500);
    disconnectAll();
    await sleep(200);
  } finally {
    disconnectAll();
    await auth.stop();
    await proxy.close();
    await sinew.stop();
  }
  writeSeeds(proxy.streams());
  console.log('seeds written:', JSON.stringify(written));
}

await main();
