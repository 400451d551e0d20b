// sinew-recover with unmodified pusher-js 8.6 against the real sinew binary: a client whose line
// is cut (no close frame) gets every event published while it was away, once, in order, through
// its ordinary bind callbacks.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { recover } from '../src/index.mjs';
import { startHistorySinew, startProxy, officialSdk, pusherClient, whenState, subscribed, waitFor, sleep } from './lib/stack.mjs';

const range = (from, to) => Array.from({ length: to - from + 1 }, (_, i) => from + i);
let uniq = 0;
const channelName = (prefix) => `${prefix}${process.pid}-${++uniq}`;

describe('recovery after a cut line', () => {
  let sinew;
  let sdk;
  const open = [];
  before(async () => {
    sinew = await startHistorySinew();
    sdk = officialSdk(sinew);
  });
  after(async () => {
    for (const { pusher, proxy } of open) {
      pusher.disconnect();
      await proxy.close();
    }
    await sinew?.stop();
  });

  async function client(name) {
    const proxy = await startProxy(sinew.port);
    const pusher = pusherClient(proxy.port, sdk);
    open.push({ pusher, proxy });
    const r = recover(pusher);
    const failures = [];
    const recovered = [];
    r.on('recovery_failed', (ch, reason) => failures.push([ch, reason]));
    r.on('recovered', (ch, info) => recovered.push([ch, info]));
    const channel = pusher.subscribe(name);
    const got = [];
    const other = [];
    channel.bind('tick', (data) => got.push(data.n));
    channel.bind_global((event) => {
      if (event !== 'tick' && !event.startsWith('pusher:')) other.push(event);
    });
    await subscribed(channel);
    return { proxy, pusher, r, channel, got, other, failures, recovered };
  }

  const publish = async (name, numbers) => {
    for (const n of numbers) await sdk.trigger(name, 'tick', { n });
  };

  test('200 events published while cut off arrive after the reconnect, in order, once', async () => {
    const name = channelName('private-history-');
    const c = await client(name);
    await publish(name, [1, 2, 3]);
    await waitFor(() => c.got.length === 3, 'the first three events');
    assert.deepEqual(c.r.position(name).offset, 3);

    c.proxy.cut();
    await waitFor(() => c.pusher.connection.state !== 'connected', 'pusher-js to notice the cut');
    await publish(name, range(4, 203));
    assert.deepEqual(c.got, [1, 2, 3], 'nothing arrived while cut off');
    c.proxy.restore();
    await whenState(c.pusher, 'connected');
    await waitFor(() => c.got.length >= 203, 'the 200 missed events', 20000);
    await publish(name, [204]);
    await waitFor(() => c.got.length >= 204, 'a live event after the recovery');
    assert.deepEqual(c.got, range(1, 204));
    assert.equal(c.proxy.connections, 2, 'one reconnect');
    assert.deepEqual(c.failures, []);
    assert.deepEqual(c.recovered.map(([ch, info]) => [ch, info.replayed, info.offset]), [[name, 200, 203]]);
    assert.deepEqual(c.other, [], 'the protocol answer is not handed to the callbacks');
    assert.deepEqual(c.r.position(name).offset, 204);
  });
});
