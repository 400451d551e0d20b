// allowed_origins on connections, with pusher-js (Node build). In Node it sends no `Origin` and so
// connects to an app that lists origins; made to send one, as a page's browser does (its faye
// WebSocket given the header), a listed origin connects and any other is refused with 4009, after
// which pusher-js does not retry.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import Pusher from 'pusher-js';
import { useSinew, appEnv } from './lib/fixture.mjs';
import { makeClient, connected, reachesState } from './lib/pusher-client.mjs';
import { sleep } from './lib/util.mjs';

const APP = { id: '4343', key: 'origin-key', secret: 'origin-secret' };
const PAGE = 'https://app.example.com';

/** Runs `fn` while pusher-js's WebSockets send `Origin: origin`. */
async function fromPage(origin, fn) {
  const runtime = Pusher.Runtime;
  const original = runtime.getWebSocketAPI;
  const Socket = original.call(runtime);
  class PageSocket extends Socket {
    constructor(url) {
      super(url, [], { headers: { Origin: origin } });
    }
  }
  runtime.getWebSocketAPI = () => PageSocket;
  try {
    return await fn();
  } finally {
    runtime.getWebSocketAPI = original;
  }
}

describe('allowed_origins', () => {
  const ctx = useSinew({ env: appEnv(APP, { SINEW_APP_ALLOWED_ORIGINS: `${PAGE}, https://*.example.org` }) }, APP);

  test('pusher-js in Node (no Origin) connects', { timeout: 10000 }, async () => {
    await connected(makeClient(ctx.server, APP.key));
  });

  test('a page on a listed origin or subdomain pattern connects', { timeout: 10000 }, async () => {
    for (const origin of [PAGE, 'https://chat.example.org']) {
      await fromPage(origin, () => connected(makeClient(ctx.server, APP.key)));
    }
  });

  test('a page on another origin is refused with 4009 and pusher-js does not retry', { timeout: 15000 }, async () => {
    await fromPage('https://evil.example', async () => {
      const client = makeClient(ctx.server, APP.key);
      await reachesState(client, ['disconnected', 'failed'], 8000);
      const codes = client.__errors.map((e) => e?.error?.data?.code ?? e?.data?.code);
      assert.ok(codes.includes(4009), `errors seen: ${JSON.stringify(client.__errors)}`);
      const statesBefore = client.__states.length;
      await sleep(2500);
      assert.deepEqual(client.__states.slice(statesBefore), [], 'pusher-js must not reconnect after 4009');
    });
  });
});
