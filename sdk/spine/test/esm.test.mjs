// The ESM entry in plain Node: the real `spine` package and pusher-js's Node build on a public
// channel, messages published with the official server SDK.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Spine from 'spine';
import Pusher from 'pusher-js';
import { sync, parseChange } from 'sinew-spine';
import { startSinew, officialSdk, pusherOptions, waitFor } from './lib/stack.mjs';

let sinew;
before(async () => {
  sinew = await startSinew();
});
after(async () => {
  await sinew?.stop();
});

test('a public channel keeps a Spine model in step', async () => {
  const Page = Spine.Model.sub();
  Page.configure('Page', 'title');
  const pusher = new Pusher('app-key', pusherOptions(sinew));
  const live = sync({ pusher, channel: 'pages', models: { Page }, events: 'page-change', resync: false });
  const errors = [];
  live.on('error', (e) => errors.push(e.code));
  await waitFor(() => live.channel.subscribed, 'subscription');
  const sdk = officialSdk(sinew);
  await sdk.trigger('pages', 'page-change', { type: 'create', class: 'Page', id: '1', record: { title: 'One' } });
  await sdk.trigger('pages', 'other-event', { type: 'create', class: 'Page', id: '2', record: { title: 'Ignored' } });
  await sdk.trigger('pages', 'page-change', { type: 'update', class: 'Page', id: 1, record: { title: 'Uno' } });
  await waitFor(() => Page.exists('1') && Page.find('1').title === 'Uno', 'the update');
  await sdk.trigger('pages', 'page-change', { type: 'destroy', class: 'Page', id: '1' });
  await waitFor(() => Page.count() === 0, 'the destroy');
  assert.deepEqual(errors, []);
  assert.equal(Page.exists('2'), false, 'events other than `events` are not model changes');
  live.stop();
  pusher.disconnect();
});

test('parseChange rejects what sync() would skip', () => {
  const models = { Page: function Page() {} };
  assert.throws(() => parseChange('{', models, 'e'), { code: 'malformed' });
  assert.throws(() => parseChange({ type: 'create', class: 'toString', id: 1, record: {} }, models, 'e'), { code: 'unknown_class' });
  assert.throws(() => parseChange({ type: 'create', class: 'Page', id: {}, record: {} }, models, 'e'), { code: 'malformed' });
  assert.deepEqual(parseChange('{"type":"destroy","class":"Page","id":3}', models, 'e'), {
    type: 'destroy',
    className: 'Page',
    id: '3',
    record: null,
  });
});

test('a wrong setup throws at once', () => {
  assert.throws(() => sync({ channel: 'x', models: {} }), TypeError);
  assert.throws(() => sync({ pusher: new Pusher('app-key', { ...pusherOptions(sinew), autoConnect: false }), channel: 'x' }), TypeError);
});
