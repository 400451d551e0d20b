// A raw protocol-7 WebSocket client (the `ws` package), for checks on exact
// frames and for things pusher-js refuses to send.
import crypto from 'node:crypto';
import WebSocket from 'ws';
import { withTimeout, sleep } from './util.mjs';

const QUERY = 'protocol=7&client=js&version=8.6.0&flash=false';

export function wsUrl(server, key, query = QUERY) {
  return `${server.wsBase}/app/${key}${query ? `?${query}` : ''}`;
}

const open = new Set();

/**
 * Opens a raw socket. Every received text frame is kept in `frames` as
 * {raw, msg, data} where msg is the parsed envelope and data the decoded `data`
 * (parsed again when it is a JSON string, as pusher-js does).
 */
export function rawConnect(url) {
  const ws = new WebSocket(url);
  const frames = [];
  const waiters = [];
  let closeInfo = null;
  const closed = new Promise((resolve) => {
    ws.on('close', (code, reason) => {
      closeInfo = { code, reason: reason.toString() };
      resolve(closeInfo);
      open.delete(conn);
    });
  });
  ws.on('error', () => {});
  ws.on('message', (buf, isBinary) => {
    const raw = buf.toString();
    let msg = null;
    let data;
    try {
      msg = JSON.parse(raw);
      data = msg.data;
      if (typeof data === 'string') {
        try {
          data = JSON.parse(data);
        } catch {
          // keep the string
        }
      }
    } catch {
      // not JSON; keep raw only
    }
    const frame = { raw, msg, data, isBinary, event: msg && msg.event, channel: msg && msg.channel };
    frames.push(frame);
    for (const w of [...waiters]) {
      if (w.pred(frame)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(frame);
      }
    }
  });
  const opened = new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode} on upgrade`)));
  });

  const conn = {
    ws,
    frames,
    closed,
    get closeInfo() {
      return closeInfo;
    },
    opened: withTimeout(opened, 5000, `websocket open ${url}`),
    /** Next frame (already received or future) after index `from` matching pred. */
    next(pred, ms = 5000, what = 'frame') {
      const p = typeof pred === 'string' ? (f) => f.event === pred : pred;
      const have = frames.find(p);
      if (have) return Promise.resolve(have);
      return withTimeout(
        new Promise((resolve) => waiters.push({ pred: p, resolve })),
        ms,
        `${typeof pred === 'string' ? pred : what}; frames so far: ${frames.map((f) => f.raw).join(' | ')}`,
      );
    },
    /** Like next() but only frames that arrive after this call. */
    nextNew(pred, ms = 5000, what = 'frame') {
      const p = typeof pred === 'string' ? (f) => f.event === pred : pred;
      return withTimeout(
        new Promise((resolve) => waiters.push({ pred: p, resolve })),
        ms,
        `${typeof pred === 'string' ? pred : what}; frames so far: ${frames.map((f) => f.raw).join(' | ')}`,
      );
    },
    send(obj) {
      ws.send(typeof obj === 'string' ? obj : JSON.stringify(obj));
    },
    async socketId() {
      const f = await conn.next('pusher:connection_established');
      return f.data.socket_id;
    },
    async ping(ms = 3000) {
      const p = conn.nextNew('pusher:pong', ms);
      conn.send({ event: 'pusher:ping', data: {} });
      return p;
    },
    close() {
      try {
        ws.terminate();
      } catch {
        // ignore
      }
    },
  };
  open.add(conn);
  return conn;
}

export function closeAllRaw() {
  for (const c of open) c.close();
  open.clear();
}

/** Connects and waits for connection_established; returns [conn, socketId]. */
export async function rawEstablished(server, key) {
  const conn = rawConnect(wsUrl(server, key));
  await conn.opened;
  const socketId = await conn.socketId();
  return [conn, socketId];
}

export function hmac(secret, text) {
  return crypto.createHmac('sha256', secret).update(text).digest('hex');
}

export function privateAuth(app, socketId, channel) {
  return `${app.key}:${hmac(app.secret, `${socketId}:${channel}`)}`;
}

export function presenceAuth(app, socketId, channel, channelData) {
  return `${app.key}:${hmac(app.secret, `${socketId}:${channel}:${channelData}`)}`;
}

export function userAuth(app, socketId, userData) {
  return `${app.key}:${hmac(app.secret, `${socketId}::user::${userData}`)}`;
}

/** Subscribes a raw socket and waits for subscription_succeeded (or an error frame). */
export async function rawSubscribe(conn, channel, extra = {}, ms = 5000) {
  conn.send({ event: 'pusher:subscribe', data: { auth: '', channel, ...extra } });
  const f = await conn.nextNew(
    (f) =>
      (f.event === 'pusher_internal:subscription_succeeded' && f.channel === channel) ||
      (f.event === 'pusher:subscription_error' && (f.channel === channel || f.channel === undefined)) ||
      f.event === 'pusher:error',
    ms,
    `subscription result for ${channel}`,
  );
  // A pusher:subscription_error is always followed by a pusher:error (possibly in a later read):
  // take that too, so the next call does not mistake it for its own answer.
  if (f.event === 'pusher:subscription_error') {
    const after = conn.frames.slice(conn.frames.indexOf(f) + 1);
    if (!after.some((x) => x.event === 'pusher:error')) await conn.nextNew('pusher:error', ms, 'pusher:error after subscription_error');
  }
  return f;
}

/**
 * Waits ms, then returns the frames matching pred received since frame index `since` (default:
 * from this call on). Take the index before the action when its frames may arrive before the
 * action's own promise resolves (a publish can reach subscribers before its HTTP response).
 */
export async function framesWithin(conn, pred, ms, since = conn.frames.length) {
  await sleep(ms);
  return conn.frames.slice(since).filter(pred);
}
