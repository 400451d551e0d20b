// What the tests run against: the real sinew binary, the official `pusher` server SDK, unmodified
// pusher-js 8.6 from npm, and a TCP proxy between pusher-js and sinew that can cut the line the
// way a dead network does (sockets destroyed, no WebSocket close frame).
import Pusher from 'pusher-js';
import PusherServer from 'pusher';
import { startSinew, DEFAULT_APP } from '../../../../tests/node/lib/server.mjs';
import { startProxy } from './proxy.mjs';

export { startSinew, DEFAULT_APP, startProxy };

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `predicate` until it returns a truthy value (or throws after `ms`). */
export async function waitFor(predicate, what, ms = 10000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await predicate();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** Sinew with history on channels starting with `history-` and `private-history-`. */
export function startHistorySinew({ size = 1000, ttl = 600, prefixes = ['history-', 'private-history-'] } = {}) {
  return startSinew({
    config: {
      apps: [{ ...DEFAULT_APP, history_channels: prefixes, history_size: size, history_ttl_seconds: ttl }],
    },
  });
}

/** The official Node server SDK pointed at `sinew`. */
export function officialSdk(sinew) {
  return new PusherServer({ appId: DEFAULT_APP.id, key: DEFAULT_APP.key, secret: DEFAULT_APP.secret, host: '127.0.0.1', port: String(sinew.port), useTLS: false });
}

/**
 * A pusher-js client that connects through `port` (the proxy). Private channels are authorized
 * in-process with the official SDK (a custom channelAuthorization handler).
 */
export function pusherClient(port, sdk, { transport = 'ws' } = {}) {
  // Sinew's HTTP fallback (xhr_streaming, xhr_polling) answers under /pusher on the same port.
  const http = transport === 'ws' ? {} : { httpHost: '127.0.0.1', httpPort: port, httpPath: '/pusher' };
  return new Pusher(DEFAULT_APP.key, {
    ...http,
    cluster: 'local',
    wsHost: '127.0.0.1',
    wsPort: port,
    wssPort: port,
    forceTLS: false,
    enabledTransports: [transport],
    disableStats: true,
    channelAuthorization: {
      customHandler: ({ socketId, channelName }, callback) => {
        try {
          callback(null, sdk.authorizeChannel(socketId, channelName));
        } catch (e) {
          callback(e, null);
        }
      },
    },
  });
}

export function whenState(pusher, state, ms = 15000) {
  return waitFor(() => pusher.connection.state === state, `pusher-js to be ${state} (now ${pusher.connection.state})`, ms);
}

export function subscribed(channel, ms = 10000) {
  return waitFor(() => channel.subscribed, `subscription to ${channel.name}`, ms);
}

/**
 * A pusher-js client behind its own proxy, with recover() on and `name` subscribed. It records the
 * `tick` events' numbers (`got`), any other non-pusher event its callbacks see (`other`), and the
 * recover instance's `recovery_failed` and `recovered` events.
 */
export async function recoveringClient(sinew, sdk, name, recover, options) {
  const proxy = await startProxy(sinew.port);
  const pusher = pusherClient(proxy.port, sdk, options);
  const r = recover(pusher);
  const c = { proxy, pusher, r, got: [], other: [], failures: [], recovered: [] };
  r.on('recovery_failed', (ch, reason) => c.failures.push([ch, reason]));
  r.on('recovered', (ch, info) => c.recovered.push([ch, info]));
  c.channel = pusher.subscribe(name);
  c.channel.bind('tick', (data) => c.got.push(data.n));
  c.channel.bind_global((event, data) => {
    if (event !== 'tick' && !event.startsWith('pusher:')) c.other.push([event, data]);
  });
  await subscribed(c.channel);
  c.close = async () => {
    r.stop();
    pusher.disconnect();
    await proxy.close();
  };
  return c;
}

/** Publishes `tick {n}` for each number, one after the other. */
export async function publish(sdk, name, numbers) {
  for (const n of numbers) await sdk.trigger(name, 'tick', { n });
}

export const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

let uniq = 0;
export const channelName = (prefix) => `${prefix}${process.pid}-${++uniq}`;
