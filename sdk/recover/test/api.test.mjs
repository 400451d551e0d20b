// The handle's life cycle on a real client: handles share one recovery, stop() leaves pusher-js as
// it was, unsubscribing drops a channel's state, and the UMD bundle is the same code.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { recover } from '../src/index.mjs';
import { startHistorySinew, officialSdk, pusherClient, publish, channelName, whenState, subscribed, waitFor } from './lib/stack.mjs';

const own = (obj, key) => Object.prototype.hasOwnProperty.call(obj, key);
let sinew;
let sdk;
before(async () => {
  sinew = await startHistorySinew();
  sdk = officialSdk(sinew);
});
after(() => sinew?.stop());

test('two handles share one recovery; the last stop() puts pusher-js back as it was', async () => {
  const pusher = pusherClient(sinew.port, sdk);
  try {
    await whenState(pusher, 'connected');
    const transport = pusher.connection.connection.transport;
    const first = recover(pusher);
    const second = recover(pusher);
    const channel = pusher.subscribe(channelName('history-'));
    await subscribed(channel);
    const got = [];
    channel.bind('tick', (d) => got.push(d.n));
    assert.ok(own(channel, 'emit') && own(pusher, 'subscribe') && own(transport, 'emit'));
    await publish(sdk, channel.name, [1]);
    await waitFor(() => got.length === 1, 'the event');
    assert.deepEqual(first.position(channel.name), second.position(channel.name));
    assert.equal(first.position(channel.name).offset, 1);

    first.stop();
    assert.ok(own(channel, 'emit'), 'still on while a handle is');
    assert.equal(second.position(channel.name).offset, 1);
    second.stop();
    assert.ok(!own(channel, 'emit') && !own(pusher, 'subscribe') && !own(pusher, 'unsubscribe') && !own(transport, 'emit'));
    await publish(sdk, channel.name, [2]);
    await waitFor(() => got.length === 2, 'an event after stop()');
    assert.deepEqual(got, [1, 2]);
    assert.equal(recover(pusher).position(channel.name), null, 'a new recovery starts afresh');
  } finally {
    pusher.disconnect();
  }
});

test('unsubscribe drops the channel\'s position; subscribing again starts afresh', async () => {
  const pusher = pusherClient(sinew.port, sdk);
  const r = recover(pusher);
  try {
    const name = channelName('history-');
    const channel = pusher.subscribe(name);
    await subscribed(channel);
    await publish(sdk, name, [1]);
    await waitFor(() => r.position(name), 'a position');
    pusher.unsubscribe(name);
    assert.equal(r.position(name), null);
    assert.ok(!own(channel, 'emit'));
    const again = pusher.subscribe(name);
    await subscribed(again);
    assert.notEqual(again, channel);
    assert.ok(own(again, 'emit'));
  } finally {
    r.stop();
    pusher.disconnect();
  }
});

test('the UMD bundle (CommonJS) exports the same recover()', async () => {
  const require = createRequire(import.meta.url);
  const umd = require('../dist/sinew-recover.umd.js');
  assert.equal(typeof umd.recover, 'function');
  assert.equal(umd.version, require('../package.json').version);
  const pusher = pusherClient(sinew.port, sdk);
  const r = umd.recover(pusher);
  try {
    const name = channelName('history-');
    const channel = pusher.subscribe(name);
    await subscribed(channel);
    await publish(sdk, name, [1, 2]);
    await waitFor(() => r.position(name)?.offset === 2, 'positions read through the UMD build');
  } finally {
    r.stop();
    pusher.disconnect();
  }
});
