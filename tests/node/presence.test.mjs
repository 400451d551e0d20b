// Presence channels (spec 2.5, 2.4 step 5, 10.8, 10.9, Appendix C).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { useSinew, uniq, appEnv } from './lib/fixture.mjs';
import { makeClient, connected, subscribe, nextEvent, record } from './lib/pusher-client.mjs';
import { rawEstablished, rawSubscribe, presenceAuth } from './lib/raw.mjs';
import { sleep, waitFor } from './lib/util.mjs';

const APP = { id: '31', key: 'presence-key', secret: 'presence-secret' };

function membersOf(channel) {
  const out = {};
  channel.members.each((m) => (out[String(m.id)] = m.info));
  return out;
}

describe('presence channels', () => {
  const ctx = useSinew({ env: appEnv(APP) }, APP);
  const user = async (id, info, extra = {}) => {
    const c = makeClient(ctx.server, APP.key, {
      auth: ctx.auth,
      channelParams: { user_id: id, user_info: JSON.stringify(info), ...extra },
    });
    await connected(c);
    return c;
  };

  test('member list, me, and member_added to the others', { timeout: 15000 }, async () => {
    const name = uniq('presence-room-');
    const alice = await user('alice', { name: 'Alice' });
    const [aChan, aMembers] = await subscribe(alice, name);
    assert.equal(aMembers.count, 1);
    assert.equal(aMembers.me.id, 'alice');
    assert.deepEqual(aMembers.me.info, { name: 'Alice' });

    const added = nextEvent(aChan, 'pusher:member_added');
    const bob = await user('bob', { name: 'Bob' });
    const [bChan, bMembers] = await subscribe(bob, name);
    assert.equal(bMembers.count, 2);
    assert.equal(bMembers.me.id, 'bob');
    assert.deepEqual(membersOf(bChan), { alice: { name: 'Alice' }, bob: { name: 'Bob' } });

    const { data: member } = await added;
    assert.equal(member.id, 'bob');
    assert.deepEqual(member.info, { name: 'Bob' });
    assert.equal(aChan.members.count, 2);

    // Closing the connection (not unsubscribing) also removes the member.
    const removed = nextEvent(aChan, 'pusher:member_removed');
    bob.disconnect();
    const { data: gone } = await removed;
    assert.equal(gone.id, 'bob');
    assert.equal(aChan.members.count, 1);
  });

  test('member_added / member_removed once per user, not per socket', { timeout: 15000 }, async () => {
    const name = uniq('presence-multi-');
    const watcher = await user('watcher', {});
    const [wChan] = await subscribe(watcher, name);
    const added = record(wChan, 'pusher:member_added');
    const removed = record(wChan, 'pusher:member_removed');

    const bob1 = await user('bob', { tab: 1 });
    const bob2 = await user('bob', { tab: 2 });
    await subscribe(bob1, name);
    const [, b2Members] = await subscribe(bob2, name);
    assert.equal(b2Members.count, 2, 'count is distinct users');
    await sleep(300);
    assert.equal(added.length, 1, `member_added events: ${JSON.stringify(added)}`);
    assert.equal(added[0].data.id, 'bob');
    assert.equal(wChan.members.count, 2);

    bob1.disconnect();
    await sleep(400);
    assert.equal(removed.length, 0, 'bob still has a socket in the channel');

    bob2.unsubscribe(name);
    await waitFor(() => removed.length === 1, 'member_removed after the last socket left');
    assert.equal(removed[0].data.id, 'bob');
    await sleep(200);
    assert.equal(removed.length, 1);
    assert.equal(wChan.members.count, 1);
  });

  test('the user_info of the first socket wins', { timeout: 15000 }, async () => {
    const name = uniq('presence-first-');
    const b1 = await user('bob', { v: 1 });
    await subscribe(b1, name);
    const b2 = await user('bob', { v: 2 });
    await subscribe(b2, name);
    const other = await user('eve', {});
    const [oChan] = await subscribe(other, name);
    assert.deepEqual(membersOf(oChan).bob, { v: 1 });
  });

  test('numeric user_id works with pusher-js and keeps its JSON type', { timeout: 15000 }, async () => {
    const name = uniq('presence-num-');
    const watcher = await user('w', {});
    const [wChan] = await subscribe(watcher, name);
    const added = nextEvent(wChan, 'pusher:member_added');
    const num = await user('42', { n: true }, { numeric_id: '1' });
    const [nChan, members] = await subscribe(num, name);
    assert.ok(members.me, 'members.me is set for a numeric id');
    assert.equal(String(members.me.id), '42');
    assert.deepEqual(members.me.info, { n: true });
    assert.equal(members.count, 2);
    const { data: m } = await added;
    assert.equal(String(m.id), '42');

    const removed = nextEvent(wChan, 'pusher:member_removed');
    num.unsubscribe(name);
    const { data: r } = await removed;
    assert.equal(String(r.id), '42');
    assert.ok(nChan);
  });

  test('raw: subscription_succeeded payload shape with a numeric id', { timeout: 10000 }, async () => {
    const [conn, socketId] = await rawEstablished(ctx.server, APP.key);
    const name = uniq('presence-raw-');
    const channelData = '{"user_id":10,"user_info":{"name":"Mr. Channels"}}';
    const res = await rawSubscribe(conn, name, {
      auth: presenceAuth(APP, socketId, name, channelData),
      channel_data: channelData,
    });
    assert.equal(res.event, 'pusher_internal:subscription_succeeded', res.raw);
    assert.equal(typeof res.msg.data, 'string', 'presence data is double encoded');
    const p = res.data.presence;
    assert.equal(p.count, 1);
    assert.deepEqual(p.hash, { 10: { name: 'Mr. Channels' } });
    assert.deepEqual(p.ids, [10], 'ids keep the JSON value given in channel_data');
  });

  test('raw: member events are not sent to the socket that caused them', { timeout: 10000 }, async () => {
    const name = uniq('presence-self-');
    const [a, aId] = await rawEstablished(ctx.server, APP.key);
    const [b, bId] = await rawEstablished(ctx.server, APP.key);
    const cd = (id) => JSON.stringify({ user_id: id });
    await rawSubscribe(a, name, { auth: presenceAuth(APP, aId, name, cd('a')), channel_data: cd('a') });
    const addedOnA = a.nextNew('pusher_internal:member_added');
    await rawSubscribe(b, name, { auth: presenceAuth(APP, bId, name, cd('b')), channel_data: cd('b') });
    const f = await addedOnA;
    assert.equal(f.channel, name);
    assert.deepEqual(f.data, { user_id: 'b' });
    const removedOnA = a.nextNew('pusher_internal:member_removed');
    b.send({ event: 'pusher:unsubscribe', data: { channel: name } });
    const r = await removedOnA;
    assert.deepEqual(r.data, { user_id: 'b' });
    await sleep(200);
    assert.ok(!b.frames.some((x) => x.event === 'pusher_internal:member_added' || x.event === 'pusher_internal:member_removed'), b.frames.map((x) => x.raw).join(' | '));
  });

  test('raw: channel_data signature is checked over the exact bytes', { timeout: 10000 }, async () => {
    const [conn, socketId] = await rawEstablished(ctx.server, APP.key);
    const name = uniq('presence-bytes-');
    const signed = '{"user_id":"u1"}';
    const sent = '{"user_id": "u1"}';
    const res = await rawSubscribe(conn, name, { auth: presenceAuth(APP, socketId, name, signed), channel_data: sent });
    assert.notEqual(res.event, 'pusher_internal:subscription_succeeded', res.raw);
    const spaced = '{ "user_id" : "u1" ,"user_info":{"b":1,"a":2}}';
    const ok = await rawSubscribe(conn, name, { auth: presenceAuth(APP, socketId, name, spaced), channel_data: spaced });
    assert.equal(ok.event, 'pusher_internal:subscription_succeeded', ok.raw);
  });

  test('raw: a user_id longer than 128 characters is refused; 128 is fine', { timeout: 10000 }, async () => {
    const [conn, socketId] = await rawEstablished(ctx.server, APP.key);
    const name = uniq('presence-longid-');
    const long = JSON.stringify({ user_id: 'u'.repeat(129) });
    const res = await rawSubscribe(conn, name, { auth: presenceAuth(APP, socketId, name, long), channel_data: long });
    assert.notEqual(res.event, 'pusher_internal:subscription_succeeded', res.raw);
    const ok = JSON.stringify({ user_id: 'u'.repeat(128) });
    const res2 = await rawSubscribe(conn, name, { auth: presenceAuth(APP, socketId, name, ok), channel_data: ok });
    assert.equal(res2.event, 'pusher_internal:subscription_succeeded', res2.raw);
  });

  test('raw: subscribing twice does not add the member twice', { timeout: 10000 }, async () => {
    const name = uniq('presence-twice-');
    const [a, aId] = await rawEstablished(ctx.server, APP.key);
    const [w, wId] = await rawEstablished(ctx.server, APP.key);
    const cd = (id) => JSON.stringify({ user_id: id });
    await rawSubscribe(w, name, { auth: presenceAuth(APP, wId, name, cd('w')), channel_data: cd('w') });
    await rawSubscribe(a, name, { auth: presenceAuth(APP, aId, name, cd('a')), channel_data: cd('a') });
    a.send({ event: 'pusher:subscribe', data: { auth: presenceAuth(APP, aId, name, cd('a')), channel: name, channel_data: cd('a') } });
    await sleep(300);
    assert.equal(w.frames.filter((f) => f.event === 'pusher_internal:member_added').length, 1);
    const users = await (await ctx.sdk.get({ path: `/channels/${name}/users` })).json();
    assert.deepEqual(users.users.map((u) => u.id).sort(), ['a', 'w']);
    const info = await (await ctx.sdk.get({ path: `/channels/${name}`, params: { info: 'user_count,subscription_count' } })).json();
    assert.equal(info.user_count, 2);
    assert.equal(info.subscription_count, 2, JSON.stringify(info));
  });

  test('channel_data without user_id: subscription_error with status 403, socket stays open', { timeout: 10000 }, async () => {
    const [conn, socketId] = await rawEstablished(ctx.server, APP.key);
    const name = uniq('presence-noid-');
    const cd = '{"user_info":{"name":"nobody"}}';
    const res = await rawSubscribe(conn, name, { auth: presenceAuth(APP, socketId, name, cd), channel_data: cd });
    const errFrame = conn.frames.find((f) => f.event === 'pusher:subscription_error');
    assert.ok(errFrame, `expected pusher:subscription_error, got ${res.raw}`);
    assert.equal(errFrame.channel, name);
    assert.equal(errFrame.data.status, 403, errFrame.raw);
    await conn.ping();

    // pusher-js surfaces it on the channel.
    const c = makeClient(ctx.server, APP.key, { auth: ctx.auth, channelParams: { omit_user_id: '1' } });
    await connected(c);
    const ch = c.subscribe(name);
    const { data } = await nextEvent(ch, 'pusher:subscription_error');
    assert.equal(data.status, 403, JSON.stringify(data));
    assert.equal(c.connection.state, 'connected');
  });

  test('presence without channel_data uses the signed-in user', { timeout: 15000 }, async () => {
    const name = uniq('presence-signedin-');
    const c = makeClient(ctx.server, APP.key, {
      auth: ctx.auth,
      channelParams: { no_channel_data: '1' },
      userParams: { user_id: 'carol', user_info: JSON.stringify({ name: 'Carol' }) },
    });
    c.signin();
    await connected(c);
    const [, members] = await subscribe(c, name, 8000);
    assert.equal(members.count, 1);
    assert.equal(members.me.id, 'carol');
    assert.deepEqual(members.me.info, { name: 'Carol' });
  });

  test('fifteen pusher-js clients join and leave one presence channel', { timeout: 20000 }, async () => {
    const name = uniq('presence-crowd-');
    const clients = [];
    for (let i = 0; i < 15; i++) {
      clients.push(makeClient(ctx.server, APP.key, { auth: ctx.auth, channelParams: { user_id: `p${i}`, user_info: JSON.stringify({ i }) } }));
    }
    await Promise.all(clients.map((c) => connected(c, 8000)));
    const chans = (await Promise.all(clients.map((c) => subscribe(c, name, 8000)))).map(([ch]) => ch);
    await waitFor(() => chans.every((ch) => ch.members.count === 15), 'every client to see 15 members', 5000);
    for (const ch of chans) assert.equal(Object.keys(membersOf(ch)).length, 15);
    const users = await (await ctx.sdk.get({ path: `/channels/${name}/users` })).json();
    assert.equal(users.users.length, 15);

    for (const c of clients.slice(5)) c.disconnect();
    await waitFor(() => chans.slice(0, 5).every((ch) => ch.members.count === 5), 'the remaining five to see 5 members', 5000);
    for (const c of clients.slice(0, 5)) c.disconnect();
    await waitFor(async () => {
      const info = await (await ctx.sdk.get({ path: `/channels/${name}` })).json();
      return info.occupied === false;
    }, 'the channel to be vacated', 5000, 100);
  });

  test('REST: users list and counts for a presence channel', { timeout: 15000 }, async () => {
    const name = uniq('presence-rest-');
    const a1 = await user('ann', {});
    const a2 = await user('ann', {});
    const b = await user('ben', {});
    for (const c of [a1, a2, b]) await subscribe(c, name);

    const users = await (await ctx.sdk.get({ path: `/channels/${name}/users` })).json();
    assert.deepEqual(users.users.map((u) => u.id).sort(), ['ann', 'ben']);

    const info = await (await ctx.sdk.get({ path: `/channels/${name}`, params: { info: 'user_count,subscription_count' } })).json();
    assert.equal(info.occupied, true);
    assert.equal(info.user_count, 2);
    assert.equal(info.subscription_count, 3);

    const list = await (await ctx.sdk.get({ path: '/channels', params: { filter_by_prefix: 'presence-rest-', info: 'user_count' } })).json();
    assert.deepEqual(list.channels[name], { user_count: 2 });
  });
});

describe('presence limits', () => {
  const LIM = { id: '32', key: 'plimit-key', secret: 'plimit-secret', max_presence_members: 2, max_presence_user_info_bytes: 64 };
  const ctx = useSinew({ config: { apps: [LIM] } }, LIM);
  const user = async (id, info) => {
    const c = makeClient(ctx.server, LIM.key, {
      auth: ctx.auth,
      channelParams: { user_id: id, user_info: JSON.stringify(info) },
    });
    await connected(c);
    return c;
  };

  test('over max_presence_members: subscription_error 403, connection stays up', { timeout: 15000 }, async () => {
    const name = uniq('presence-full-');
    await subscribe(await user('u1', {}), name);
    await subscribe(await user('u2', {}), name);
    // Another socket of an existing member is not a new member.
    await subscribe(await user('u2', {}), name);
    const third = await user('u3', {});
    const ch = third.subscribe(name);
    const { data } = await nextEvent(ch, 'pusher:subscription_error');
    assert.equal(data.status, 403, JSON.stringify(data));
    assert.equal(ch.subscribed, false);
    assert.equal(third.connection.state, 'connected');
  });

  test('user_info over max_presence_user_info_bytes: subscription_error 403', { timeout: 15000 }, async () => {
    const name = uniq('presence-big-');
    const c = await user('big', { blob: 'x'.repeat(200) });
    const ch = c.subscribe(name);
    const { data } = await nextEvent(ch, 'pusher:subscription_error');
    assert.equal(data.status, 403, JSON.stringify(data));
    const small = await user('small', { blob: 'x' });
    await subscribe(small, name);
  });
});
