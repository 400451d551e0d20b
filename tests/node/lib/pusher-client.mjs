// Helpers around the real pusher-js client (Node build).
import Pusher from 'pusher-js';
import { withTimeout, waitFor } from './util.mjs';

const live = new Set();

/**
 * Creates a pusher-js client pointed at the given sinew server.
 * opts.auth: the auth server from auth-server.mjs (sets both endpoints)
 * opts.channelParams / opts.userParams: extra form fields for the auth endpoints
 * opts.pusher: further pusher-js options
 */
export function makeClient(server, key, opts = {}) {
  const options = {
    cluster: 'local',
    wsHost: '127.0.0.1',
    wsPort: server.port,
    wssPort: server.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    ...(opts.pusher || {}),
  };
  if (opts.auth) {
    options.channelAuthorization = {
      endpoint: opts.auth.endpoint,
      transport: 'ajax',
      params: opts.channelParams || {},
    };
    options.userAuthentication = {
      endpoint: opts.auth.userEndpoint,
      transport: 'ajax',
      params: opts.userParams || {},
    };
  }
  const client = new Pusher(key, options);
  // Keep a log of everything for assertions and for failure messages.
  client.__states = [];
  client.__errors = [];
  client.__messages = [];
  client.connection.bind('state_change', (s) => client.__states.push(s.current));
  client.connection.bind('error', (e) => client.__errors.push(e));
  client.connection.bind('message', (m) => client.__messages.push(m));
  live.add(client);
  return client;
}

export function disconnectAll() {
  for (const c of live) {
    try {
      c.disconnect();
    } catch {
      // already gone
    }
  }
  live.clear();
}

export function connected(client, ms = 5000) {
  if (client.connection.state === 'connected') return Promise.resolve(client.connection.socket_id);
  return withTimeout(
    new Promise((resolve, reject) => {
      const onChange = ({ current }) => {
        if (current === 'connected') {
          client.connection.unbind('state_change', onChange);
          resolve(client.connection.socket_id);
        } else if (current === 'failed' || current === 'disconnected') {
          client.connection.unbind('state_change', onChange);
          reject(new Error(`connection went ${current}; errors: ${JSON.stringify(client.__errors)}`));
        }
      };
      client.connection.bind('state_change', onChange);
    }),
    ms,
    `pusher-js to connect (states: ${client.__states.join(' > ')})`,
  );
}

/** Resolves with the pusher-js state once it is one of `states`. */
export function reachesState(client, states, ms = 5000) {
  return waitFor(
    () => states.includes(client.connection.state) && client.connection.state,
    `state in ${states} (states so far: ${client.__states.join(' > ')})`,
    ms,
  );
}

/** Subscribes and resolves with [channel, data of pusher:subscription_succeeded]. */
export function subscribe(client, name, ms = 5000) {
  const channel = client.subscribe(name);
  return withTimeout(
    new Promise((resolve, reject) => {
      channel.bind('pusher:subscription_succeeded', (data) => resolve([channel, data]));
      channel.bind('pusher:subscription_error', (err) =>
        reject(Object.assign(new Error(`subscription_error on ${name}: ${JSON.stringify(err)}`), { detail: err })),
      );
    }),
    ms,
    `subscription to ${name}`,
  );
}

/** Resolves with the next `event` emitted on `emitter` (a channel or pusher.user). */
export function nextEvent(emitter, event, ms = 5000) {
  return withTimeout(
    new Promise((resolve) => {
      const cb = (data, metadata) => {
        emitter.unbind(event, cb);
        resolve({ data, metadata });
      };
      emitter.bind(event, cb);
    }),
    ms,
    `event ${event}`,
  );
}

/** Records every `event` on `emitter` into an array. */
export function record(emitter, event) {
  const seen = [];
  emitter.bind(event, (data, metadata) => seen.push({ data, metadata }));
  return seen;
}

/** Records every event on the channel (bind_global). */
export function recordAll(channel) {
  const seen = [];
  channel.bind_global((event, data) => seen.push({ event, data }));
  return seen;
}

export { Pusher };
