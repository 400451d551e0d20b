// Channel history with unmodified pusher-js 8.6: the extra `sinew_position` member changes nothing
// its callbacks see (same data, same metadata as on a channel without history); the position is
// read from the raw frames (pusher-js 8.6 passes no raw message to `connection.bind('message')`,
// so it is read from the transport's own 'message' event); and a client subscribed again resumes
// with `pusher.send_event('sinew:resume', {epoch, offset}, channel)`, getting the missed events
// through its ordinary `bind` callbacks, then `sinew:resumed`.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { startSinew, DEFAULT_APP } from './lib/server.mjs';
import { sdkFor } from './lib/auth-server.mjs';
import { makeClient, connected, subscribe, nextEvent, disconnectAll } from './lib/pusher-client.mjs';
import { uniq } from './lib/fixture.mjs';

const CONFIG = `host = "127.0.0.1"
port = 0
log = "warn"
[[apps]]
id = "${DEFAULT_APP.id}"
key = "${DEFAULT_APP.key}"
secret = "${DEFAULT_APP.secret}"
client_events = true
history_channels = ["history-"]
`;

/** Every raw frame the client's current transport receives, parsed. */
function rawFrames(client) {
  const frames = [];
  client.connection.connection.transport.bind('message', (m) => frames.push(JSON.parse(m.data)));
  return frames;
}

describe('channel history with pusher-js', () => {
  let server;
  before(async () => {
    server = await startSinew({ config: CONFIG });
  });
  after(async () => {
    disconnectAll();
    if (server) await server.stop();
  });

  test('callbacks see the same data and metadata with and without history', { timeout: 20000 }, async () => {
    const sdk = sdkFor(server, DEFAULT_APP);
    const client = makeClient(server, DEFAULT_APP.key);
    await connected(client);
    const raw = rawFrames(client);
    const [withHistory] = await subscribe(client, uniq('history-'));
    const [without] = await subscribe(client, uniq('plain-'));
    const seen = { [withHistory.name]: [], [without.name]: [] };
    for (const ch of [withHistory, without]) ch.bind('note', (data, metadata) => seen[ch.name].push([data, metadata]));
    const got = Promise.all([nextEvent(withHistory, 'note'), nextEvent(without, 'note')]);
    await sdk.trigger([withHistory.name, without.name], 'note', { id: 7, text: 'hi' });
    await got;
    assert.deepEqual(seen[withHistory.name], seen[without.name]);
    assert.deepEqual(seen[withHistory.name][0][0], { id: 7, text: 'hi' });
    const positioned = raw.find((f) => f.channel === withHistory.name && f.event === 'note');
    const plain = raw.find((f) => f.channel === without.name && f.event === 'note');
    assert.equal(positioned.sinew_position.offset, 1);
    assert.match(positioned.sinew_position.epoch, /^[0-9a-z]{8}$/);
    assert.equal(plain.sinew_position, undefined);
  });

  test('a client subscribed again resumes through its ordinary bind callbacks', { timeout: 20000 }, async () => {
    const sdk = sdkFor(server, DEFAULT_APP);
    const name = uniq('history-feed-');
    const first = makeClient(server, DEFAULT_APP.key);
    await connected(first);
    const raw = rawFrames(first);
    const [ch] = await subscribe(first, name);
    const one = nextEvent(ch, 'update');
    await sdk.trigger(name, 'update', { n: 0 });
    await one;
    const last = raw.filter((f) => f.channel === name && f.sinew_position).at(-1).sinew_position;
    first.disconnect();
    for (let n = 1; n <= 20; n++) await sdk.trigger(name, 'update', { n });

    const again = makeClient(server, DEFAULT_APP.key);
    await connected(again);
    const [ch2] = await subscribe(again, name);
    const delivered = [];
    ch2.bind('update', (data) => delivered.push(data.n));
    const resumed = nextEvent(ch2, 'sinew:resumed');
    again.send_event('sinew:resume', last, name);
    const answer = await resumed;
    assert.deepEqual(delivered, Array.from({ length: 20 }, (_, i) => i + 1));
    assert.deepEqual(answer.data, { epoch: last.epoch, offset: 21, replayed: 20 });

    const failed = nextEvent(ch2, 'sinew:resume_failed');
    again.send_event('sinew:resume', { epoch: 'gone', offset: 3 }, name);
    assert.equal((await failed).data.reason, 'epoch_changed');
  });
});
