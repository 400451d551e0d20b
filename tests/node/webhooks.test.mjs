// Webhooks checked by the official SDK's own validation (spec section 7): a real HTTP receiver,
// real pusher-js clients, SINEW_WEBHOOK_URL as external tools set it.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { useSinew, uniq, appEnv } from './lib/fixture.mjs';
import { makeClient, connected, subscribe, nextEvent } from './lib/pusher-client.mjs';
import { sdkFor } from './lib/auth-server.mjs';
import { sleep, waitFor } from './lib/util.mjs';

const APP = { id: '71', key: 'hook-key', secret: 'hook-secret' };

// The receiver: every request is checked with pusher.webhook(...).isValid().
const received = [];
let invalid = 0;
let failNext = 0;
const receiver = http.createServer((req, res) => {
  let rawBody = '';
  req.setEncoding('utf8');
  req.on('data', (c) => (rawBody += c));
  req.on('end', () => {
    const webhook = sdkFor({ port: 1 }, APP).webhook({ headers: req.headers, rawBody });
    if (!webhook.isValid()) {
      invalid += 1;
      res.writeHead(401).end();
      return;
    }
    if (failNext > 0) {
      failNext -= 1;
      res.writeHead(500).end();
      return;
    }
    for (const e of webhook.getEvents()) received.push(e);
    res.writeHead(200).end('{}');
  });
});
await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
const hookUrl = `http://127.0.0.1:${receiver.address().port}/webhooks`;
after(() => receiver.close());

const eventsFor = (channel) => received.filter((e) => e.channel === channel);
const names = (channel) =>
  eventsFor(channel).map((e) => (e.user_id !== undefined ? `${e.name}:${e.user_id}` : e.name));

describe('webhooks', () => {
  const ctx = useSinew(
    {
      env: appEnv(APP, {
        SINEW_WEBHOOK_URL: hookUrl,
        SINEW_WEBHOOKS_LEAVE_DELAY_MS: '400',
        SINEW_WEBHOOKS_INITIAL_BACKOFF_MS: '100',
        SINEW_WEBHOOKS_DEAD_LETTER_FILE: path.join(tmpdir(), `sinew-node-dl-${process.pid}.jsonl`),
      }),
    },
    APP,
  );
  const client = async (user) => {
    const c = makeClient(ctx.server, APP.key, { auth: ctx.auth, channelParams: user ? { user_id: user } : {} });
    await connected(c);
    return c;
  };

  test('occupied and vacated fire once each, validated by the official SDK', { timeout: 15000 }, async () => {
    const name = uniq('news-');
    const a = await client();
    const b = await client();
    await subscribe(a, name);
    await subscribe(b, name);
    a.unsubscribe(name);
    b.unsubscribe(name);
    await waitFor(() => eventsFor(name).length >= 2, 'two webhooks', 5000);
    await sleep(600);
    assert.deepEqual(names(name), ['channel_occupied', 'channel_vacated']);
    assert.equal(invalid, 0);
  });

  test('presence members once per user; client_event carries socket_id and user_id', { timeout: 15000 }, async () => {
    const name = uniq('presence-room-');
    const alice1 = await client('alice');
    const alice2 = await client('alice');
    const bob = await client('bob');
    const [aChan] = await subscribe(alice1, name);
    await subscribe(alice2, name);
    const [bChan] = await subscribe(bob, name);
    const got = nextEvent(bChan, 'client-wave');
    aChan.trigger('client-wave', { hi: 1 });
    await got;
    alice1.disconnect();
    await sleep(100);
    alice2.disconnect();
    await waitFor(() => names(name).includes('member_removed:alice'), 'member_removed', 5000);
    await sleep(200);
    assert.deepEqual(
      names(name).filter((n) => !n.startsWith('client_event')),
      ['channel_occupied', 'member_added:alice', 'member_added:bob', 'member_removed:alice'],
    );
    const ce = eventsFor(name).find((e) => e.name === 'client_event');
    assert.equal(ce.event, 'client-wave');
    assert.equal(ce.user_id, 'alice');
    assert.match(ce.socket_id, /^\d+\.\d+$/);
    assert.deepEqual(JSON.parse(ce.data), { hi: 1 });
    assert.equal(invalid, 0);
  });

  test('a quick rejoin sends neither vacated nor a second occupied', { timeout: 15000 }, async () => {
    const name = uniq('page-');
    const a = await client();
    await subscribe(a, name);
    await waitFor(() => eventsFor(name).length >= 1, 'occupied', 5000);
    a.disconnect();
    const again = await client();
    await subscribe(again, name);
    await sleep(900);
    assert.deepEqual(names(name), ['channel_occupied']);
  });

  test('cache_miss once per empty cache channel; retried after 500s and delivered once', { timeout: 15000 }, async () => {
    failNext = 2;
    const name = uniq('cache-');
    const a = await client();
    const b = await client();
    const [ac] = await subscribe(a, name);
    await subscribe(b, name);
    assert.ok(ac);
    await waitFor(() => eventsFor(name).some((e) => e.name === 'cache_miss'), 'cache_miss', 8000);
    await sleep(500);
    assert.deepEqual(names(name), ['channel_occupied', 'cache_miss']);
  });
});
