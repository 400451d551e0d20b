// Three real sinew processes on one Redis (SINEW_ADAPTER=redis) behave as one server for unmodified
// pusher-js clients spread over the nodes and the official `pusher` SDK publishing to one node:
// delivery, socket exclusion, presence, client events, users, webhooks, a SIGKILLed node, and a
// Redis outage. Needs redis-server on PATH and a Redis at REDIS_URL (default redis://127.0.0.1:6379);
// every test uses its own key prefix and deletes it afterwards.
import { describe, test, afterEach, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { startSinew, waitReady } from './lib/server.mjs';
import { startAuthServer, sdkFor } from './lib/auth-server.mjs';
import { uniq, appEnv } from './lib/fixture.mjs';
import { makeClient, connected, subscribe, record, reachesState, disconnectAll } from './lib/pusher-client.mjs';
import { REDIS_URL, deletePrefix, sparePort, startRedisServer } from './lib/redis.mjs';
import { sleep, waitFor, withTimeout } from './lib/util.mjs';

const APP = { id: '515', key: 'cluster-key', secret: 'cluster-secret' };
/** How long "nothing more arrives" is watched for after the expected events came. */
const QUIET_MS = 400;

// Webhook receiver: every request is checked with the official SDK's pusher.webhook(...).isValid().
const hooks = [];
let invalidHooks = 0;
const receiver = http.createServer((req, res) => {
  let rawBody = '';
  req.setEncoding('utf8');
  req.on('data', (c) => (rawBody += c));
  req.on('end', () => {
    const webhook = sdkFor({ port: 1 }, APP).webhook({ headers: req.headers, rawBody });
    if (!webhook.isValid()) {
      invalidHooks += 1;
      res.writeHead(401).end();
      return;
    }
    for (const e of webhook.getEvents()) hooks.push(e);
    res.writeHead(200).end('{}');
  });
});
await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
const HOOK_URL = `http://127.0.0.1:${receiver.address().port}/webhooks`;
after(() => receiver.close());

const hookNames = (channel) =>
  hooks.filter((e) => e.channel === channel).map((e) => (e.user_id !== undefined ? `${e.name}:${e.user_id}` : e.name));

const clusters = [];

/**
 * Starts `n` sinew nodes on one Redis with a fresh prefix, waits until each reports /ready 200, and
 * starts an app back end (signing channel and user auth) plus one SDK per node.
 */
async function startCluster({ n = 3, redisUrl = REDIS_URL, env = {} } = {}) {
  const prefix = uniq('sinew-node-cluster-');
  const cluster = { prefix, redisUrl, nodes: [], auth: null, sdk: [] };
  clusters.push(cluster);
  const nodeEnv = appEnv(APP, {
    SINEW_ADAPTER: 'redis',
    SINEW_REDIS_URL: redisUrl,
    SINEW_REDIS_PREFIX: prefix,
    SINEW_WEBHOOKS_DEAD_LETTER_FILE: path.join(tmpdir(), `sinew-cluster-dl-${process.pid}.jsonl`),
    ...env,
  });
  cluster.nodes = await Promise.all(Array.from({ length: n }, () => startSinew({ env: nodeEnv })));
  await Promise.all(cluster.nodes.map((s) => waitReady(s, { ms: 15000 })));
  cluster.auth = await startAuthServer(cluster.nodes[0], APP);
  cluster.sdk = cluster.nodes.map((s) => sdkFor(s, APP));
  return cluster;
}

afterEach(async () => {
  disconnectAll();
  for (const c of clusters.splice(0)) {
    if (c.auth) await c.auth.stop();
    await Promise.all(c.nodes.map((s) => s.stop()));
    if (process.env.SINEW_E2E_VERBOSE) {
      for (const s of c.nodes) process.stderr.write(`--- node ${s.port} ---\n${s.stdout}\n${s.stderr}\n`);
    }
    await deletePrefix(c.redisUrl, c.prefix).catch(() => {});
  }
});

/** A connected pusher-js client on `server`; `user` sets the presence user id signed by the back end. */
async function client(cluster, server, { user, info } = {}) {
  const channelParams = {};
  if (user !== undefined) channelParams.user_id = user;
  if (info !== undefined) channelParams.user_info = JSON.stringify(info);
  const c = makeClient(server, APP.key, { auth: cluster.auth, channelParams, userParams: { user_id: user ?? '' } });
  await connected(c, 10000);
  return c;
}

/** A pusher-js client on `server`, signed in as `id` with its server-to-user channel subscribed. */
async function signedIn(cluster, server, id) {
  const c = makeClient(server, APP.key, { auth: cluster.auth, userParams: { user_id: id } });
  c.signin();
  await connected(c, 10000);
  await withTimeout(c.user.signinDonePromise, 10000, `sign-in of ${id}`);
  await waitFor(
    () => c.user.serverToUserChannel && c.user.serverToUserChannel.subscribed,
    `#server-to-user-${id} subscription`,
    10000,
  );
  return c;
}

function membersOf(channel) {
  const out = {};
  channel.members.each((m) => (out[String(m.id)] = m.info));
  return out;
}

/** `GET /channels/<name>/users` on one node, as sorted ids. */
async function userIds(sdk, name) {
  const res = await sdk.get({ path: `/channels/${name}/users` });
  const body = await res.json();
  return body.users.map((u) => u.id).sort();
}

/** Polls a node's presence user list until it equals `ids` (sorted). */
async function usersBecome(sdk, name, ids, ms = 10000) {
  let last;
  await waitFor(
    async () => {
      last = await userIds(sdk, name).catch((e) => String(e));
      return JSON.stringify(last) === JSON.stringify([...ids].sort());
    },
    `users of ${name} to be ${ids} (last: ${JSON.stringify(last)})`,
    ms,
    100,
  );
}

const dataOf = (seen) => seen.map((s) => s.data);

describe('cluster of three nodes on one Redis', () => {
  test('REST events from one node reach every node exactly once; socket exclusion crosses nodes', { timeout: 40000 }, async () => {
    const cl = await startCluster();
    const news = uniq('news-');
    const sports = uniq('sports-');
    // One client per node on both channels, and a second client on node 2 that is excluded later.
    const subs = [];
    for (const server of cl.nodes) {
      const c = await client(cl, server);
      const [n] = await subscribe(c, news);
      const [s] = await subscribe(c, sports);
      subs.push({ c, news: record(n, 'single'), multiNews: record(n, 'multi'), multiSports: record(s, 'multi'),
        batchNews: record(n, 'batch'), batchSports: record(s, 'batch'), skip: record(n, 'skip') });
    }
    const excluded = await client(cl, cl.nodes[1]);
    const [exChan] = await subscribe(excluded, news);
    const exSingle = record(exChan, 'single');
    const exSkip = record(exChan, 'skip');

    const sdk = cl.sdk[0];
    assert.equal((await sdk.trigger(news, 'single', { n: 1 })).status, 200);
    assert.equal((await sdk.trigger([news, sports], 'multi', { n: 2 })).status, 200);
    const batch = await sdk.triggerBatch([
      { channel: news, name: 'batch', data: { i: 1 } },
      { channel: sports, name: 'batch', data: { i: 2 } },
      { channel: news, name: 'batch', data: { i: 3 } },
    ]);
    assert.equal(batch.status, 200);
    const skip = await sdk.trigger(news, 'skip', { n: 4 }, { socket_id: excluded.connection.socket_id });
    assert.equal(skip.status, 200);

    const complete = () =>
      subs.every((s) => s.news.length >= 1 && s.multiNews.length >= 1 && s.multiSports.length >= 1 &&
        s.batchNews.length >= 2 && s.batchSports.length >= 1 && s.skip.length >= 1) && exSingle.length >= 1;
    await waitFor(complete, 'every event on every node', 10000);
    await sleep(QUIET_MS);
    subs.forEach((s, i) => {
      const where = `client on node ${i + 1}`;
      assert.deepEqual(dataOf(s.news), [{ n: 1 }], where);
      assert.deepEqual(dataOf(s.multiNews), [{ n: 2 }], where);
      assert.deepEqual(dataOf(s.multiSports), [{ n: 2 }], where);
      assert.deepEqual(dataOf(s.batchNews), [{ i: 1 }, { i: 3 }], where);
      assert.deepEqual(dataOf(s.batchSports), [{ i: 2 }], where);
      assert.deepEqual(dataOf(s.skip), [{ n: 4 }], where);
    });
    assert.deepEqual(dataOf(exSingle), [{ n: 1 }]);
    assert.equal(exSkip.length, 0, 'the excluded socket on node 2 did not get the event');
  });

  test('presence members agree on every node; member events once per user; REST lists are cluster-wide', { timeout: 40000 }, async () => {
    const cl = await startCluster();
    const name = uniq('presence-room-');
    const join = async (node, user) => {
      const c = await client(cl, cl.nodes[node], { user, info: { name: user.toUpperCase() } });
      const [chan] = await subscribe(c, name, 10000);
      return { c, chan, added: record(chan, 'pusher:member_added'), removed: record(chan, 'pusher:member_removed') };
    };
    const bob = await join(1, 'bob');
    const carol = await join(2, 'carol');
    const alice = await join(0, 'alice');
    // Alice's second socket, on another node than her first.
    const alice2 = await join(1, 'alice');
    const everyone = [alice, alice2, bob, carol];
    await waitFor(() => everyone.every((m) => m.chan.members.count === 3), 'three members everywhere', 10000);
    await sleep(QUIET_MS);
    const expected = { alice: { name: 'ALICE' }, bob: { name: 'BOB' }, carol: { name: 'CAROL' } };
    for (const [who, m] of [['alice', alice], ['alice', alice2], ['bob', bob], ['carol', carol]]) {
      assert.equal(m.chan.members.count, 3, who);
      assert.deepEqual(membersOf(m.chan), expected, who);
      assert.equal(m.chan.members.me.id, who);
      assert.deepEqual(m.chan.members.me.info, { name: who.toUpperCase() });
    }
    // Bob saw carol and alice arrive, once each; carol saw alice once, although alice has two sockets.
    assert.deepEqual(bob.added.map((e) => e.data.id), ['carol', 'alice']);
    assert.deepEqual(carol.added.map((e) => e.data.id), ['alice']);
    assert.deepEqual(alice.added.map((e) => e.data.id), [], 'her own second socket is not announced to her');

    for (const [i, sdk] of cl.sdk.entries()) {
      assert.deepEqual(await userIds(sdk, name), ['alice', 'bob', 'carol'], `users on node ${i + 1}`);
      const res = await sdk.get({
        path: '/channels',
        params: { info: 'subscription_count,user_count', filter_by_prefix: 'presence-' },
      });
      assert.deepEqual(await res.json(), { channels: { [name]: { subscription_count: 4, user_count: 3 } } },
        `channel list on node ${i + 1}`);
    }

    // One of alice's sockets leaves: nobody hears of it. The last one leaves: member_removed once.
    alice.c.disconnect();
    await Promise.all(cl.sdk.map((sdk) =>
      waitFor(async () => {
        const res = await sdk.get({ path: `/channels/${name}`, params: { info: 'subscription_count' } });
        return (await res.json()).subscription_count === 3;
      }, 'subscription_count 3', 10000, 50)));
    await sleep(QUIET_MS);
    assert.equal(bob.removed.length, 0);
    assert.equal(carol.removed.length, 0);
    alice2.c.disconnect();
    await waitFor(() => bob.removed.length >= 1 && carol.removed.length >= 1, 'member_removed of alice', 10000);
    await sleep(QUIET_MS);
    assert.deepEqual(bob.removed.map((e) => e.data.id), ['alice']);
    assert.deepEqual(carol.removed.map((e) => e.data.id), ['alice']);
    assert.equal(bob.chan.members.count, 2);
    for (const sdk of cl.sdk) await usersBecome(sdk, name, ['bob', 'carol']);
  });

  test('client events cross nodes and skip the sender; sendToUser and terminate reach other nodes', { timeout: 40000 }, async () => {
    const cl = await startCluster();
    const name = uniq('private-chat-');
    const chans = [];
    for (const server of cl.nodes) {
      const c = await client(cl, server);
      const [chan] = await subscribe(c, name, 10000);
      chans.push({ c, chan, typing: record(chan, 'client-typing') });
    }
    chans[0].chan.trigger('client-typing', { who: 'first' });
    await waitFor(() => chans[1].typing.length >= 1 && chans[2].typing.length >= 1, 'client event on nodes 2 and 3', 10000);
    await sleep(QUIET_MS);
    assert.equal(chans[0].typing.length, 0, 'the sender does not get its own event');
    for (const i of [1, 2]) {
      assert.deepEqual(dataOf(chans[i].typing), [{ who: 'first' }], `node ${i + 1}`);
      assert.equal(chans[i].typing[0].metadata?.user_id, undefined);
    }

    // A user signed in on node 3, reached through node 1.
    const id = uniq('dana');
    const dana = await signedIn(cl, cl.nodes[2], id);
    const bystander = await signedIn(cl, cl.nodes[2], uniq('eve'));
    const notices = record(dana.user, 'notice');
    const bystanderNotices = record(bystander.user, 'notice');
    assert.equal((await cl.sdk[0].sendToUser(id, 'notice', { text: 'hi' })).status, 200);
    await waitFor(() => notices.length >= 1, 'sendToUser on node 3', 10000);
    await sleep(QUIET_MS);
    assert.deepEqual(dataOf(notices), [{ text: 'hi' }]);
    assert.equal(bystanderNotices.length, 0);

    assert.equal((await cl.sdk[0].terminateUserConnections(id)).status, 200);
    await reachesState(dana, ['disconnected'], 10000);
    const codes = dana.__errors.map((e) => e?.data?.code ?? e?.error?.data?.code);
    assert.ok(codes.includes(4009), JSON.stringify(dana.__errors));
    assert.equal(bystander.connection.state, 'connected');
  });

  test('webhooks fire once per cluster-wide transition, validated by the official SDK', { timeout: 40000 }, async () => {
    const cl = await startCluster({
      env: { SINEW_WEBHOOK_URL: HOOK_URL, SINEW_WEBHOOKS_LEAVE_DELAY_MS: '50', SINEW_WEBHOOKS_BATCH_WINDOW_MS: '10' },
    });
    const plain = uniq('hooked-');
    const room = uniq('presence-hooked-');
    const a = await client(cl, cl.nodes[0], { user: 'u1' });
    const b = await client(cl, cl.nodes[1], { user: 'u1' });
    const c = await client(cl, cl.nodes[2], { user: 'u2' });
    await subscribe(a, plain);
    await subscribe(b, plain);
    await subscribe(a, room);
    await subscribe(b, room);
    await subscribe(c, room);
    await waitFor(
      () => hookNames(plain).length >= 1 && hookNames(room).length >= 3,
      `occupied and member_added hooks (so far ${JSON.stringify(hooks)})`,
      10000,
    );
    await sleep(QUIET_MS);
    assert.deepEqual(hookNames(plain), ['channel_occupied']);
    assert.deepEqual(hookNames(room).sort(), ['channel_occupied', 'member_added:u1', 'member_added:u2']);

    a.unsubscribe(plain);
    a.unsubscribe(room);
    await sleep(QUIET_MS);
    assert.deepEqual(hookNames(plain), ['channel_occupied'], 'one subscriber is left on node 2');
    assert.deepEqual(hookNames(room).sort(), ['channel_occupied', 'member_added:u1', 'member_added:u2']);
    b.unsubscribe(plain);
    b.unsubscribe(room);
    c.unsubscribe(room);
    await waitFor(
      () => hookNames(plain).length >= 2 && hookNames(room).length >= 6,
      `vacated and member_removed hooks (so far ${JSON.stringify(hooks)})`,
      10000,
    );
    await sleep(QUIET_MS);
    assert.deepEqual(hookNames(plain), ['channel_occupied', 'channel_vacated']);
    assert.deepEqual(hookNames(room).sort(), [
      'channel_occupied', 'channel_vacated', 'member_added:u1', 'member_added:u2', 'member_removed:u1', 'member_removed:u2',
    ]);
    assert.equal(invalidHooks, 0);
  });

  test('a SIGKILLed node is swept: its members are removed once, members it shared stay', { timeout: 45000 }, async (t) => {
    const cl = await startCluster({
      env: {
        SINEW_CLUSTER_NODE_TIMEOUT_SECONDS: '3',
        SINEW_WEBHOOK_URL: HOOK_URL,
        SINEW_WEBHOOKS_LEAVE_DELAY_MS: '50',
        SINEW_WEBHOOKS_BATCH_WINDOW_MS: '10',
      },
    });
    const [n1, n2, n3] = cl.nodes;
    const room = uniq('presence-doomed-');
    const lonely = uniq('lonely-');
    const join = async (server, user) => {
      const c = await client(cl, server, { user });
      const [chan] = await subscribe(c, room, 10000);
      return { c, chan, added: record(chan, 'pusher:member_added'), removed: record(chan, 'pusher:member_removed') };
    };
    const w1 = await join(n1, 'w1');
    const w2 = await join(n2, 'w2');
    await join(n3, 'leaver');
    await join(n3, 'mover');
    // "mover" also has a socket on node 2, which survives.
    await join(n2, 'mover');
    const onlyOnN3 = await client(cl, n3);
    await subscribe(onlyOnN3, lonely);
    await waitFor(() => w1.chan.members.count === 4 && w2.chan.members.count === 4, 'four members', 10000);
    await waitFor(() => hookNames(lonely).length >= 1 && hookNames(room).includes('member_added:leaver'),
      'hooks of the joins', 10000);

    const killedAt = Date.now();
    n3.proc.kill('SIGKILL');
    assert.equal((await n3.exitPromise).signal, 'SIGKILL');
    await waitFor(() => w1.removed.length >= 1 && w2.removed.length >= 1, 'member_removed of the dead node\'s user', 15000, 50);
    const sweptAfter = Date.now() - killedAt;
    await waitFor(() => hookNames(room).includes('member_removed:leaver') && hookNames(lonely).includes('channel_vacated'),
      `member_removed and channel_vacated hooks (so far ${JSON.stringify(hookNames(room))})`, 10000);
    await sleep(1000);
    for (const w of [w1, w2]) {
      assert.deepEqual(w.removed.map((e) => e.data.id), ['leaver'], 'only the user without another socket left');
      assert.deepEqual(Object.keys(membersOf(w.chan)).sort(), ['mover', 'w1', 'w2']);
    }
    assert.equal(hookNames(room).filter((h) => h === 'member_removed:leaver').length, 1);
    assert.ok(!hookNames(room).includes('member_removed:mover'), JSON.stringify(hookNames(room)));
    assert.deepEqual(hookNames(lonely), ['channel_occupied', 'channel_vacated']);
    for (const sdk of cl.sdk.slice(0, 2)) await usersBecome(sdk, room, ['mover', 'w1', 'w2']);

    // The leaver comes back on node 1: announced once, listed everywhere.
    const addedBefore = [w1.added.length, w2.added.length];
    const back = await join(n1, 'leaver');
    assert.equal(back.chan.members.count, 4);
    const addedSince = (w, i) => w.added.slice(addedBefore[i]).map((e) => e.data.id);
    await waitFor(() => addedSince(w1, 0).length >= 1 && addedSince(w2, 1).length >= 1,
      'member_added of the returning user', 10000);
    await sleep(QUIET_MS);
    assert.deepEqual(addedSince(w1, 0), ['leaver'], 'w1, on the same node');
    assert.deepEqual(addedSince(w2, 1), ['leaver'], 'w2, on another node');
    for (const sdk of cl.sdk.slice(0, 2)) await usersBecome(sdk, room, ['leaver', 'mover', 'w1', 'w2']);
    assert.equal(n1.exited, null);
    assert.equal(n2.exited, null);
    await waitReady(n1);
    await waitReady(n2);
    assert.equal(invalidHooks, 0);
    t.diagnostic(`members of the killed node removed ${sweptAfter} ms after SIGKILL`);
  });

  test('a Redis outage: nodes keep serving locally, report not ready, and rejoin with their state', { timeout: 60000 }, async (t) => {
    const port = await sparePort();
    let redis = await startRedisServer(port);
    try {
      const cl = await startCluster({ redisUrl: redis.url });
      const [n1] = cl.nodes;
      const feed = uniq('feed-');
      const room = uniq('presence-x-');
      const seen = [];
      for (const [i, server] of cl.nodes.entries()) {
        const c = await client(cl, server, { user: `p${i + 1}` });
        const [chan] = await subscribe(c, feed, 10000);
        await subscribe(c, room, 10000);
        const got = [];
        chan.bind('tick', (d) => got.push(d.seq));
        seen.push({ c, got });
      }
      for (const sdk of cl.sdk) await usersBecome(sdk, room, ['p1', 'p2', 'p3']);

      // Publish to node 1 every ~100 ms for the whole test.
      let seq = 0;
      const sent = []; // {seq, status, at}
      let stopped = false;
      const pump = (async () => {
        while (!stopped) {
          const s = ++seq;
          const at = Date.now();
          let status;
          try {
            status = (await cl.sdk[0].trigger(feed, 'tick', { seq: s })).status;
          } catch (e) {
            status = e.status ?? String(e);
          }
          sent.push({ seq: s, status, at });
          await sleep(100);
        }
      })();
      try {
        await waitFor(() => seen.every((s) => s.got.length >= 3), 'traffic on every node', 10000);

        // Outage.
        await redis.kill();
        const downAt = Date.now();
        const outageStart = seq;
        for (const s of cl.nodes) {
          const body = await waitReady(s, { status: 503, ms: 10000 });
          assert.deepEqual(body, { ready: false, adapter: 'disconnected' });
        }
        // Node 1's own subscriber keeps getting what is published to node 1.
        const duringOutage = seq + 1;
        await waitFor(() => seen[0].got.some((x) => x >= duringOutage + 3), 'local delivery during the outage', 10000);
        await sleep(Math.max(0, downAt + 10000 - Date.now())); // Redis stays down for 10 s.
        for (const s of cl.nodes) {
          assert.equal(s.exited, null, `node on port ${s.port} is still running`);
          const res = await fetch(`${s.httpBase}/ready`);
          assert.equal(res.status, 503);
        }
        const outageEnd = seq;
        const outageSent = sent.filter((x) => x.seq > outageStart && x.seq <= outageEnd);
        assert.ok(outageSent.length > 0);
        assert.ok(outageSent.every((x) => x.status === 200), `publishes during the outage: ${JSON.stringify(outageSent)}`);
        await waitFor(
          () => outageSent.every((x) => seen[0].got.includes(x.seq)),
          'node 1 to deliver every publish made during the outage to its own subscriber',
          5000,
        );

        // Redis is back, empty: the nodes reconnect and write their state again.
        redis = await startRedisServer(port);
        const backAt = Date.now();
        await Promise.all(cl.nodes.map((s) => waitReady(s, { ms: 20000 })));
        t.diagnostic(`all nodes ready ${Date.now() - backAt} ms after Redis restarted`);
        const mark = seq + 1;
        await waitFor(
          () => seen.every((s) => s.got.some((x) => x >= mark)),
          `cross-node delivery after the outage (last seen: ${seen.map((s) => s.got.at(-1))}, sent: ${seq})`,
          10000,
        );
        for (const sdk of cl.sdk) await usersBecome(sdk, room, ['p1', 'p2', 'p3'], 15000);
        for (const [i, sdk] of cl.sdk.entries()) {
          const res = await sdk.get({ path: `/channels/${room}`, params: { info: 'subscription_count,user_count' } });
          assert.deepEqual(await res.json(), { occupied: true, subscription_count: 3, user_count: 3 }, `node ${i + 1}`);
        }
        stopped = true;
        await pump;
        await sleep(QUIET_MS);
        for (const [i, s] of seen.entries()) {
          const dupes = s.got.filter((x, j) => s.got.indexOf(x) !== j);
          assert.deepEqual(dupes, [], `no event delivered twice on node ${i + 1}`);
        }
        // Every node counted the trouble and the recovery.
        for (const s of cl.nodes) {
          assert.equal(s.exited, null);
          const usage = await (await fetch(`${s.httpBase}/usage`)).json();
          assert.equal(usage.adapter.kind, 'redis');
          assert.equal(usage.adapter.connected, true);
          assert.ok(usage.adapter.errors > 0, JSON.stringify(usage.adapter));
          assert.ok(usage.adapter.reconnects >= 1, JSON.stringify(usage.adapter));
          const metrics = await (await fetch(`${s.metricsBase}/metrics`)).text();
          assert.match(metrics, /^sinew_adapter_connected 1$/m);
          assert.match(metrics, /^sinew_adapter_reconnects_total [1-9]/m);
        }
      } finally {
        stopped = true;
        await pump;
      }
    } finally {
      await redis.kill();
    }
  });
});
