// sinew-recover on a two-node cluster (two real sinew processes on one Redis, history in Redis):
// a pusher-js client whose line to node A is cut, or whose node A is killed with SIGKILL, comes
// back on node B and gets every event published meanwhile on either node, once, in order,
// through its ordinary bind callbacks.
import { describe, test, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { recover } from '../src/index.mjs';
import { startSinew, DEFAULT_APP, officialSdk, recoveringClient, publish, range, channelName, whenState, waitFor } from './lib/stack.mjs';
import { waitReady } from '../../../tests/node/lib/server.mjs';
import { REDIS_URL, deletePrefix } from '../../../tests/node/lib/redis.mjs';

/** Two nodes on one Redis under a fresh prefix, history on `history-` and `private-history-`. */
async function startCluster() {
  const prefix = `sinew-recover-${process.pid}-${Date.now()}`;
  const config = {
    adapter: 'redis',
    redis_url: REDIS_URL,
    redis_prefix: prefix,
    cluster_node_timeout_seconds: 3,
    apps: [{ ...DEFAULT_APP, history_channels: ['history-', 'private-history-'], history_size: 1000 }],
  };
  const nodes = await Promise.all([startSinew({ config }), startSinew({ config })]);
  await Promise.all(nodes.map((n) => waitReady(n, { ms: 15000 })));
  return { prefix, nodes, sdk: nodes.map(officialSdk) };
}

describe('recovery across the nodes of a cluster', () => {
  const running = [];
  afterEach(async () => {
    for (const { cluster, client } of running.splice(0)) {
      await client?.close();
      await Promise.all(cluster.nodes.map((n) => n.stop()));
      await deletePrefix(REDIS_URL, cluster.prefix).catch(() => {});
    }
  });

  /** A cluster and a recovering client on node A (through its proxy), with 3 events seen. */
  async function setUp(name) {
    const cluster = await startCluster();
    const entry = { cluster };
    running.push(entry);
    const [a] = cluster.nodes;
    entry.client = await recoveringClient(a, cluster.sdk[0], name, recover);
    const c = entry.client;
    await publish(cluster.sdk[1], name, [1, 2, 3]);
    await waitFor(() => c.got.length === 3, 'the first three events, published on node B');
    return { cluster, c };
  }

  /** Publishes `numbers` on both nodes in turn. */
  async function publishOnBoth(cluster, name, numbers) {
    for (const n of numbers) await publish(cluster.sdk[n % 2], name, [n]);
  }

  test('a client cut off from node A resumes on node B: 200 events, in order, once', async () => {
    const name = channelName('private-history-');
    const { cluster, c } = await setUp(name);
    c.proxy.cut();
    await waitFor(() => c.pusher.connection.state !== 'connected', 'pusher-js to notice the cut');
    await publishOnBoth(cluster, name, range(4, 203));
    c.proxy.retarget(cluster.nodes[1].port);
    c.proxy.restore();
    await whenState(c.pusher, 'connected');
    await waitFor(() => c.got.length >= 203, 'the 200 missed events', 20000);
    await publish(cluster.sdk[0], name, [204]);
    await waitFor(() => c.got.length >= 204, 'a live event after the recovery');
    assert.deepEqual(c.got, range(1, 204));
    assert.deepEqual(c.failures, []);
    assert.deepEqual(c.recovered.map(([, info]) => [info.replayed, info.offset]), [[200, 203]]);
    assert.deepEqual(c.other, []);
  });

  test('a client of a node killed with SIGKILL resumes on the other node', async () => {
    const name = channelName('history-');
    const { cluster, c } = await setUp(name);
    const [a, b] = cluster.nodes;
    // While node A is gone the client's reconnects wait at the proxy; then they reach node B.
    c.proxy.cut();
    a.proc.kill('SIGKILL');
    await a.exitPromise;
    await waitFor(() => c.pusher.connection.state !== 'connected', 'pusher-js to lose node A');
    await publish(cluster.sdk[1], name, range(4, 203));
    c.proxy.retarget(b.port);
    c.proxy.restore();
    await whenState(c.pusher, 'connected');
    await waitFor(() => c.got.length >= 203, 'the 200 missed events', 20000);
    await publish(cluster.sdk[1], name, [204]);
    await waitFor(() => c.got.length >= 204, 'a live event after the recovery');
    assert.deepEqual(c.got, range(1, 204));
    assert.deepEqual(c.failures, []);
    assert.equal(c.recovered.length, 1);
    assert.equal(c.recovered[0][1].replayed, 200);
  });
});
