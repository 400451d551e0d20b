// sinew-recover with unmodified pusher-js 8.6 against the real sinew binary: a client whose line
// is cut (no close frame) gets every event published while it was away, once, in order, through
// its ordinary bind callbacks; when the gap is longer than the history, it is told so.
import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { recover } from '../src/index.mjs';
import { startHistorySinew, officialSdk, recoveringClient, publish, range, channelName, whenState, waitFor, sleep } from './lib/stack.mjs';

/** Cuts the client's line, runs `whileAway`, restores the line and waits for the reconnect. */
async function away(c, whileAway) {
  c.proxy.cut();
  await waitFor(() => c.pusher.connection.state !== 'connected', 'pusher-js to notice the cut');
  await whileAway();
  c.proxy.restore();
  await whenState(c.pusher, 'connected');
}

describe('recovery after a cut line', () => {
  let sinew;
  let sdk;
  let clients = [];
  before(async () => {
    sinew = await startHistorySinew();
    sdk = officialSdk(sinew);
  });
  afterEach(async () => {
    for (const c of clients) await c.close();
    clients = [];
  });
  after(() => sinew?.stop());
  const client = async (name) => {
    const c = await recoveringClient(sinew, sdk, name, recover);
    clients.push(c);
    return c;
  };

  test('200 events published while cut off arrive after the reconnect, in order, once', async () => {
    const name = channelName('private-history-');
    const c = await client(name);
    await publish(sdk, name, [1, 2, 3]);
    await waitFor(() => c.got.length === 3, 'the first three events');
    assert.deepEqual(c.r.position(name).offset, 3);

    await away(c, async () => {
      await publish(sdk, name, range(4, 203));
      assert.deepEqual(c.got, [1, 2, 3], 'nothing arrived while cut off');
    });
    await waitFor(() => c.got.length >= 203, 'the 200 missed events', 20000);
    await publish(sdk, name, [204]);
    await waitFor(() => c.got.length >= 204, 'a live event after the recovery');
    assert.deepEqual(c.got, range(1, 204));
    assert.equal(c.proxy.connections, 2, 'one reconnect');
    assert.deepEqual(c.failures, []);
    assert.deepEqual(c.recovered.map(([ch, info]) => [ch, info.replayed, info.offset]), [[name, 200, 203]]);
    assert.deepEqual(c.other, [], 'the protocol answer is not handed to the callbacks');
    assert.deepEqual(c.r.position(name), { epoch: c.recovered[0][1].epoch, offset: 204 });
  });

  test('over the xhr_streaming fallback too: 50 missed events arrive once, in order', async () => {
    const name = channelName('private-history-');
    const c = await recoveringClient(sinew, sdk, name, recover, { transport: 'xhr_streaming' });
    clients.push(c);
    assert.equal(c.pusher.connection.connection.transport.name, 'xhr_streaming');
    await publish(sdk, name, [1]);
    await waitFor(() => c.got.length === 1, 'the first event');
    await away(c, () => publish(sdk, name, range(2, 51)));
    await waitFor(() => c.got.length >= 51, 'the 50 missed events', 20000);
    await publish(sdk, name, [52]);
    await waitFor(() => c.got.length >= 52, 'a live event after the recovery');
    assert.deepEqual(c.got, range(1, 52));
    assert.deepEqual(c.recovered.map(([, info]) => info.replayed), [50]);
    assert.deepEqual(c.failures, []);
  });

  test('events published during the reconnect and resume are neither lost nor doubled', async () => {
    const name = channelName('history-');
    const c = await client(name);
    await publish(sdk, name, [1]);
    await waitFor(() => c.got.length === 1, 'the first event');
    // A slow uplink: the resume leaves 150 ms after the resubscription, so events published in
    // between come live first and again in the replay.
    const send = c.pusher.send_event.bind(c.pusher);
    c.pusher.send_event = (event, data, channel) => {
      if (event !== 'sinew:resume') return send(event, data, channel);
      setTimeout(() => send(event, data, channel), 150);
      return true;
    };
    // Every tick frame that reaches the client, counted from the transports' raw frames.
    let frames = 0;
    c.pusher.connection.bind('connected', () => {
      c.pusher.connection.connection.transport.bind('message', (m) => (frames += JSON.parse(m.data).event === 'tick' ? 1 : 0));
    });
    // A publisher that keeps going (an event every ~10 ms) across the cut, the reconnect, the
    // resubscription and the resume.
    let n = 1;
    let running = true;
    const publisher = (async () => {
      while (running) {
        await publish(sdk, name, [++n]);
        await sleep(10);
      }
    })();
    let before = 0;
    try {
      await away(c, () => {
        before = c.got.length;
        return waitFor(() => n >= 40, '40 events published while away');
      });
      const atReconnect = n;
      await waitFor(() => c.recovered.length === 1 || c.failures.length > 0, 'the answer to the resume');
      await waitFor(() => n >= atReconnect + 50, 'more events after the reconnect');
    } finally {
      running = false;
      await publisher;
    }
    await waitFor(() => c.got.length >= n, `all ${n} events`);
    await sleep(100);
    assert.deepEqual(c.failures, []);
    assert.deepEqual(c.got, range(1, n));
    const twice = frames - (n - before);
    assert.ok(twice >= 5, `some events came twice on the wire (${twice})`);
  });

  test('two reconnects in a row resume twice', async () => {
    const name = channelName('history-');
    const c = await client(name);
    await publish(sdk, name, [1]);
    await waitFor(() => c.got.length === 1, 'the first event');
    await away(c, () => publish(sdk, name, range(2, 6)));
    await waitFor(() => c.got.length === 6, 'the first gap');
    await away(c, () => publish(sdk, name, range(7, 9)));
    await waitFor(() => c.got.length === 9, 'the second gap');
    assert.deepEqual(c.got, range(1, 9));
    assert.deepEqual(c.recovered.map(([, info]) => info.replayed), [5, 3]);
  });

  test('a channel without history reports no_position after a reconnect and keeps delivering', async () => {
    const name = channelName('plain-');
    const c = await client(name);
    const seen = [];
    c.channel.bind('sinew:recovery_failed', (data) => seen.push(data));
    await publish(sdk, name, [1]);
    await waitFor(() => c.got.length === 1, 'the first event');
    await away(c, () => publish(sdk, name, [2]));
    await waitFor(() => c.failures.length === 1, 'recovery_failed');
    await publish(sdk, name, [3]);
    await waitFor(() => c.got.length === 2, 'a live event');
    assert.deepEqual(c.got, [1, 3], 'the event published while away is lost, as without sinew-recover');
    assert.deepEqual(c.failures, [[name, 'no_position']]);
    assert.deepEqual(seen, [{ reason: 'no_position' }], 'the channel\'s own callbacks are told too');
    assert.equal(c.r.position(name), null);
  });
});

describe('a gap longer than the history', () => {
  let sinew;
  let sdk;
  before(async () => {
    sinew = await startHistorySinew({ size: 10 });
    sdk = officialSdk(sinew);
  });
  after(() => sinew?.stop());

  test('50 missed events with 10 kept: recovery_failed (too_old), later events delivered', async () => {
    const name = channelName('history-');
    const c = await recoveringClient(sinew, sdk, name, recover);
    try {
      const seen = [];
      c.channel.bind('sinew:recovery_failed', (data) => seen.push([data, [...c.got]]));
      await publish(sdk, name, [1, 2]);
      await waitFor(() => c.got.length === 2, 'the first events');
      await away(c, () => publish(sdk, name, range(3, 52)));
      await waitFor(() => c.failures.length === 1, 'recovery_failed');
      await publish(sdk, name, [53, 54]);
      await waitFor(() => c.got.length === 4, 'live events after the failure');
      assert.deepEqual(c.failures, [[name, 'too_old']]);
      assert.deepEqual(seen, [[{ reason: 'too_old' }, [1, 2]]], 'sinew:recovery_failed on the channel, before any later event');
      assert.deepEqual(c.got, [1, 2, 53, 54]);
      assert.deepEqual(c.recovered, []);
      assert.equal(c.r.position(name).offset, 54, 'counting on from the channel\'s current position');
      assert.deepEqual(c.other.map(([e]) => e), ['sinew:recovery_failed']);
    } finally {
      await c.close();
    }
  });
});

describe('a server started again', () => {
  test('the lost history is reported once (epoch_changed); the new epoch\'s events are delivered', async () => {
    let sinew = await startHistorySinew();
    const name = channelName('history-');
    const c = await recoveringClient(sinew, officialSdk(sinew), name, recover);
    try {
      await publish(officialSdk(sinew), name, [1, 2]);
      await waitFor(() => c.got.length === 2, 'the first events');
      const before = c.r.position(name);
      await away(c, async () => {
        await sinew.stop();
        sinew = await startHistorySinew();
        c.proxy.retarget(sinew.port);
      });
      await waitFor(() => c.failures.length === 1, 'recovery_failed');
      await publish(officialSdk(sinew), name, [3, 4]);
      await waitFor(() => c.got.length === 4, 'the events after the restart');
      assert.deepEqual(c.got, [1, 2, 3, 4]);
      assert.deepEqual(c.failures, [[name, 'epoch_changed']], 'one failure: the new epoch in live events is no second one');
      const after = c.r.position(name);
      assert.notEqual(after.epoch, before.epoch);
      assert.equal(after.offset, 2);
    } finally {
      await c.close();
      await sinew.stop();
    }
  });
});
