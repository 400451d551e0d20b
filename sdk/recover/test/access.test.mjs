// History stays behind a private channel's authorization: a socket that is not subscribed to the
// channel gets pusher:error for a resume, and none of the channel's events.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { recover } from '../src/index.mjs';
import { startHistorySinew, officialSdk, recoveringClient, publish, channelName, pusherClient, whenState, waitFor } from './lib/stack.mjs';

let sinew;
let sdk;
before(async () => {
  sinew = await startHistorySinew();
  sdk = officialSdk(sinew);
});
after(() => sinew?.stop());

test('an unsubscribed socket cannot read a private channel\'s history with sinew:resume', async () => {
  const name = channelName('private-history-');
  const member = await recoveringClient(sinew, sdk, name, recover);
  const outsider = pusherClient(sinew.port, sdk);
  try {
    await publish(sdk, name, [1, 2, 3]);
    await waitFor(() => member.got.length === 3, 'the events at the subscribed client');
    // A real position of the channel, so only the missing subscription can be the refusal's cause.
    const position = member.r.position(name);
    assert.equal(position.offset, 3);

    await whenState(outsider, 'connected');
    const frames = [];
    outsider.connection.connection.transport.bind('message', (m) => frames.push(JSON.parse(m.data)));
    outsider.send_event('sinew:resume', { epoch: position.epoch, offset: 0 }, name);
    // The server answers in order: once the pong to a later ping is in, the resume was answered.
    outsider.send_event('pusher:ping', {});
    await waitFor(() => frames.some((f) => f.event === 'pusher:pong'), 'the pong');

    const errors = frames.filter((f) => f.event === 'pusher:error');
    assert.equal(errors.length, 1, JSON.stringify(frames));
    assert.equal(typeof errors[0].data.message, 'string');
    assert.deepEqual(frames.filter((f) => f.channel === name), [], 'no event of the channel');
    assert.equal(frames.filter((f) => f.event !== 'pusher:pong' && f.event !== 'pusher:error').length, 0);
    assert.equal(outsider.connection.state, 'connected', 'the socket stays open');
  } finally {
    outsider.disconnect();
    await member.close();
  }
});
