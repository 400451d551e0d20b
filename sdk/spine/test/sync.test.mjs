// sinew-spine in jsdom "browsers" against the real sinew binary and the Rust demo backend.
import { describe, test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import { startSinew, startDemo, officialSdk, waitFor } from './lib/stack.mjs';
import { openClient, closeAll } from './lib/browser.mjs';

describe('live Spine models on a private channel', () => {
  let sinew;
  let demo;
  let sdk;
  before(async () => {
    sinew = await startSinew();
    demo = await startDemo(sinew, { channel: 'private-notes' });
    sdk = officialSdk(sinew);
  });
  afterEach(() => closeAll());
  after(async () => {
    await demo?.stop();
    await sinew?.stop();
  });

  // Waits until a Spine.Ajax request made by `client` has completed.
  async function ajax(client, action) {
    const before = client.ajaxDone;
    action();
    await waitFor(() => client.ajaxDone > before, 'the Ajax request to finish');
  }

  test('create, two updates and a destroy reach two other clients; the originator gets no echo', async () => {
    const origin = await openClient(sinew, demo);
    const b = await openClient(sinew, demo);
    const c = await openClient(sinew, demo);
    const same = (client, expected) => JSON.stringify(client.store()) === JSON.stringify(expected);
    const everywhere = async (expected, what) => {
      for (const client of [origin, b, c]) await waitFor(() => same(client, expected), `${what} in every store`);
    };

    await ajax(origin, () => origin.Note.create({ title: 'first', done: false }));
    const id = String(origin.Note.all()[0].id);
    assert.match(id, /^\d+$/, 'the server assigned the id');
    await everywhere([{ id, title: 'first', done: false }], 'the create');

    await ajax(origin, () => origin.Note.find(id).updateAttributes({ title: 'second' }));
    await everywhere([{ id, title: 'second', done: false }], 'the first update');
    await ajax(origin, () => origin.Note.find(id).updateAttributes({ done: true }));
    await everywhere([{ id, title: 'second', done: true }], 'the second update');

    await ajax(origin, () => origin.Note.create({ title: 'keeper', done: false }));
    const keeper = String(origin.Note.all().find((n) => n.title === 'keeper').id);
    await ajax(origin, () => origin.Note.find(id).destroy());
    const expected = [{ id: keeper, title: 'keeper', done: false }];
    await everywhere(expected, 'the destroy');
    assert.deepEqual(await demo.notes(), expected, 'the backend persisted the same');

    // A marker sent to everyone after the last change: anything echoed to the originator would
    // have reached it before the marker.
    await sdk.trigger(demo.channel, 'marker', { type: 'update', class: 'Note', id: keeper, record: { title: 'keeper', done: false } });
    await waitFor(() => origin.received.some((e) => e.event === 'marker'), 'the marker at the originator');
    assert.deepEqual(origin.received.map((e) => e.event), ['marker'], 'the originator got none of its own changes back');
    for (const client of [b, c]) {
      await waitFor(() => client.received.some((e) => e.event === 'marker'), 'the marker');
      assert.deepEqual(
        client.changes.map((ch) => `${ch.type}:${ch.result}`),
        ['create:created', 'update:updated', 'update:updated', 'create:created', 'destroy:destroyed', 'update:updated'],
      );
      assert.equal(client.ajaxSent.length, 1, 'only the initial fetch: applying changes sent nothing to the server');
      assert.deepEqual(client.errors, []);
    }
    // The originator's own requests carried its socket id.
    const writes = origin.ajaxSent.filter((r) => r.type !== 'GET');
    assert.equal(writes.length, 5);
    for (const r of writes) assert.equal(r.headers['X-Pusher-Socket-ID'], origin.pusher.connection.socket_id);
  });

  test('a malformed or unknown message is reported and skipped, the next valid one applied', async () => {
    const client = await openClient(sinew, demo);
    const base = client.store();
    const bad = [
      ['create', 'this is not JSON {'],
      ['create', ['an', 'array']],
      ['create', { type: 'create', class: 'Window', id: '1', record: { title: 'x' } }],
      ['create', { type: 'create', class: 'constructor', id: '1', record: {} }],
      ['create', { type: 'explode', class: 'Note', id: '1', record: { title: 'x' } }],
      ['create', { type: 'create', class: 'Note', id: '1' }],
      ['update', { type: 'update', class: 'Note', record: { title: 'no id' } }],
    ];
    for (const [event, data] of bad) await sdk.trigger(demo.channel, event, data);
    await sdk.trigger(demo.channel, 'create', { type: 'create', class: 'Note', id: '900', record: { title: 'valid', done: false, destroy: 'not an attribute' } });
    await waitFor(() => client.store().length === base.length + 1, 'the valid message');
    assert.deepEqual(client.store(), [...base, { id: '900', title: 'valid', done: false }]);
    assert.equal(typeof client.Note.find('900').destroy, 'function', 'undeclared keys are not copied');
    assert.deepEqual(
      client.errors.map((e) => e.code),
      ['malformed', 'malformed', 'unknown_class', 'unknown_class', 'unknown_type', 'malformed', 'malformed'],
    );
    assert.equal(client.warnings.filter((w) => w.includes('[sinew-spine]')).length, bad.length, 'each one warned on the console');
    assert.equal(client.pusher.connection.state, 'connected', 'nothing was thrown into pusher-js');
  });

  test('create of an existing record is skipped, update of a missing one creates, destroy of a missing one is ignored', async () => {
    const client = await openClient(sinew, demo);
    const base = client.store();
    const send = (type, id, record) => sdk.trigger(demo.channel, type, { type, class: 'Note', id, record });
    await send('create', 700, { title: 'seven', done: false });
    await send('create', '700', { title: 'not applied', done: true });
    await send('update', '800', { title: 'eight', done: true });
    await send('destroy', '900');
    await send('update', '700', { title: 'seven again' });
    await waitFor(() => client.changes.length === 5, 'five applied messages');
    assert.deepEqual(client.changes.map((c) => c.result), ['created', 'skipped', 'created', 'ignored', 'updated']);
    assert.deepEqual(client.store(), [
      ...base,
      { id: '700', title: 'seven again', done: false },
      { id: '800', title: 'eight', done: true },
    ]);
    assert.equal(client.ajaxSent.length, 1, 'only the fetch');
  });

  test('after a reconnect the model is fetched again, so changes made while offline appear', async () => {
    const client = await openClient(sinew, demo);
    const resyncs = [];
    client.live.on('resync', (r) => resyncs.push(r.model));
    await waitFor(() => client.ajaxDone >= 1, 'the first fetch');
    client.pusher.disconnect();
    await waitFor(() => client.pusher.connection.state === 'disconnected', 'disconnect');
    const res = await fetch(`${demo.url}/notes`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ title: 'written while you were away' }),
    });
    assert.equal(res.status, 201);
    client.pusher.connect();
    const expected = (await demo.notes()).map((n) => ({ id: n.id, title: n.title, done: n.done }));
    await waitFor(() => JSON.stringify(client.store()) === JSON.stringify(expected), 'the resynced store');
    assert.deepEqual(resyncs, ['Note']);
  });
});

describe('presence channel', () => {
  let sinew;
  let demo;
  before(async () => {
    sinew = await startSinew();
    demo = await startDemo(sinew, { channel: 'presence-notes' });
  });
  afterEach(() => closeAll());
  after(async () => {
    await demo?.stop();
    await sinew?.stop();
  });

  test('members subscribe through channelAuthorization and share changes without echo', async () => {
    const a = await openClient(sinew, demo);
    const b = await openClient(sinew, demo);
    await waitFor(() => a.live.channel.members.count === 2, 'two members');
    a.Note.create({ title: 'from a presence member', done: false });
    await waitFor(() => b.store().length === 1, 'the note at b');
    assert.equal(b.store()[0].title, 'from a presence member');
    await waitFor(() => a.ajaxDone === 2, 'a create to finish');
    b.Note.find(b.store()[0].id).updateAttributes({ done: true });
    await waitFor(() => a.store()[0]?.done === true, 'the update at a');
    assert.deepEqual(a.received.map((e) => e.event), ['update']);
    assert.deepEqual(b.received.map((e) => e.event), ['create']);
  });
});
