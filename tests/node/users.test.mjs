// User sign-in, server-to-user events and terminate_connections (spec 2.6, 5.3, 6.3, Appendix C).
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { useSinew, uniq, appEnv } from './lib/fixture.mjs';
import { makeClient, connected, subscribe, nextEvent, record, reachesState } from './lib/pusher-client.mjs';
import { rawEstablished, rawSubscribe, userAuth } from './lib/raw.mjs';
import { sleep, waitFor, withTimeout } from './lib/util.mjs';

const APP = { id: '808', key: 'users-key', secret: 'users-secret' };

describe('users', () => {
  const ctx = useSinew({ env: appEnv(APP) }, APP);

  const signedIn = async (id, info) => {
    const c = makeClient(ctx.server, APP.key, {
      auth: ctx.auth,
      userParams: { user_id: id, ...(info ? { user_info: JSON.stringify(info) } : {}) },
    });
    c.signin();
    await connected(c);
    await withTimeout(c.user.signinDonePromise, 5000, `sign-in of ${id}`);
    assert.equal(c.user.user_data && c.user.user_data.id, id, 'pusher-js accepted pusher:signin_success');
    await waitFor(
      () => c.user.serverToUserChannel && c.user.serverToUserChannel.subscribed,
      `#server-to-user-${id} subscription`,
    );
    return c;
  };

  test('pusher.signin() succeeds and the user channel is subscribed', { timeout: 15000 }, async () => {
    const id = uniq('u');
    const c = await signedIn(id, { name: 'Una' });
    assert.deepEqual(c.user.user_data, { id, user_info: { name: 'Una' } });
    const success = c.__messages.find((m) => m.event === 'pusher:signin_success');
    assert.ok(success, 'pusher:signin_success received');
  });

  test('raw: signin_success echoes the exact signed user_data string', { timeout: 10000 }, async () => {
    const [conn, socketId] = await rawEstablished(ctx.server, APP.key);
    const userData = '{ "id":"raw-user" , "user_info": {"z":1,"a":2} }';
    conn.send({ event: 'pusher:signin', data: { auth: userAuth(APP, socketId, userData), user_data: userData } });
    const f = await conn.next('pusher:signin_success');
    assert.equal(f.data.user_data, userData);
    // The user's own channel can now be joined with an empty auth.
    const ok = await rawSubscribe(conn, '#server-to-user-raw-user');
    assert.equal(ok.event, 'pusher_internal:subscription_succeeded', ok.raw);
    // ...but not somebody else's.
    const no = await rawSubscribe(conn, '#server-to-user-someone-else');
    assert.notEqual(no.event, 'pusher_internal:subscription_succeeded', no.raw);
    // Client events are refused on the user channel.
    const errP = conn.nextNew('pusher:error', 3000);
    conn.send({ event: 'client-x', channel: '#server-to-user-raw-user', data: {} });
    await errP;
  });

  test('sendToUser reaches pusher.user.bind on every socket of that user only', { timeout: 15000 }, async () => {
    const id = uniq('target');
    const t1 = await signedIn(id);
    const t2 = await signedIn(id);
    const other = await signedIn(uniq('other'));
    const got1 = nextEvent(t1.user, 'notice');
    const got2 = nextEvent(t2.user, 'notice');
    const otherSeen = record(other.user, 'notice');
    const res = await ctx.sdk.sendToUser(id, 'notice', { text: 'for you' });
    assert.equal(res.status, 200);
    assert.deepEqual((await got1).data, { text: 'for you' });
    assert.deepEqual((await got2).data, { text: 'for you' });
    await sleep(200);
    assert.equal(otherSeen.length, 0);
  });

  test('terminateUserConnections closes that user\'s sockets with 4009, others stay', { timeout: 15000 }, async () => {
    const id = uniq('doomed');
    const d1 = await signedIn(id);
    const d2 = await signedIn(id);
    const survivor = await signedIn(uniq('survivor'));
    // A presence member that never signed in as that id is not affected either.
    const anon = makeClient(ctx.server, APP.key, { auth: ctx.auth, channelParams: { user_id: id, user_info: '{}' } });
    await connected(anon);
    await subscribe(anon, uniq('presence-term-'));

    const [raw, rawSocket] = await rawEstablished(ctx.server, APP.key);
    const ud = JSON.stringify({ id });
    raw.send({ event: 'pusher:signin', data: { auth: userAuth(APP, rawSocket, ud), user_data: ud } });
    await raw.next('pusher:signin_success');

    const res = await ctx.sdk.terminateUserConnections(id);
    assert.equal(res.status, 200);

    const close = await withTimeout(raw.closed, 5000, 'raw socket close');
    assert.equal(close.code, 4009);
    const errFrame = raw.frames.find((f) => f.event === 'pusher:error');
    if (errFrame) assert.equal(errFrame.data.code, 4009, errFrame.raw);

    for (const c of [d1, d2]) {
      await reachesState(c, ['disconnected'], 5000);
      const codes = c.__errors.map((e) => e?.data?.code ?? e?.error?.data?.code);
      assert.ok(codes.includes(4009), JSON.stringify(c.__errors));
    }
    await sleep(1500);
    assert.equal(d1.connection.state, 'disconnected', 'pusher-js does not reconnect after 4009');
    assert.equal(survivor.connection.state, 'connected');
    assert.equal(anon.connection.state, 'connected');
  });

  test('terminating a user with no connections is a 200 no-op', { timeout: 10000 }, async () => {
    const res = await ctx.sdk.terminateUserConnections(uniq('nobody'));
    assert.equal(res.status, 200);
  });

  test('bad sign-in signature: pusher:error 4009 and close 4009', { timeout: 10000 }, async () => {
    const [conn, socketId] = await rawEstablished(ctx.server, APP.key);
    const ud = '{"id":"mallory"}';
    conn.send({ event: 'pusher:signin', data: { auth: userAuth({ key: APP.key, secret: 'wrong' }, socketId, ud), user_data: ud } });
    const close = await withTimeout(conn.closed, 5000, 'close after bad sign-in');
    assert.equal(close.code, 4009);
    assert.ok(!conn.frames.some((f) => f.event === 'pusher:signin_success'));
    const err = conn.frames.find((f) => f.event === 'pusher:error');
    if (err) assert.equal(err.data.code, 4009, err.raw);
  });

  test('signing in again as a different user is refused with 4009', { timeout: 10000 }, async () => {
    const [conn, socketId] = await rawEstablished(ctx.server, APP.key);
    const first = '{"id":"first-user"}';
    conn.send({ event: 'pusher:signin', data: { auth: userAuth(APP, socketId, first), user_data: first } });
    await conn.next('pusher:signin_success');
    const second = '{"id":"second-user"}';
    conn.send({ event: 'pusher:signin', data: { auth: userAuth(APP, socketId, second), user_data: second } });
    const close = await withTimeout(conn.closed, 5000, 'close after switching user');
    assert.equal(close.code, 4009);
    assert.equal(conn.frames.filter((f) => f.event === 'pusher:signin_success').length, 1);
  });

  test('sign-in user_data without an id is refused with 4009', { timeout: 10000 }, async () => {
    const [conn, socketId] = await rawEstablished(ctx.server, APP.key);
    const ud = '{"user_info":{"name":"no id"}}';
    conn.send({ event: 'pusher:signin', data: { auth: userAuth(APP, socketId, ud), user_data: ud } });
    const close = await withTimeout(conn.closed, 5000, 'close after sign-in without id');
    assert.equal(close.code, 4009);
  });

  test('pusher-js sign-in with a wrongly signed auth response gets closed with 4009', { timeout: 10000 }, async () => {
    const c = makeClient(ctx.server, APP.key, { auth: ctx.auth, userParams: { user_id: 'eve', mode: 'wrong-secret' } });
    c.signin();
    await reachesState(c, ['disconnected'], 6000);
    const codes = c.__errors.map((e) => e?.data?.code ?? e?.error?.data?.code);
    assert.ok(codes.includes(4009), JSON.stringify(c.__errors));
    assert.equal(c.user.user_data, null);
  });

  test('sendToUser for a user nobody signed in as is accepted and delivered nowhere', { timeout: 10000 }, async () => {
    const c = await signedIn(uniq('bystander'));
    const seen = record(c.user, 'stray');
    const res = await ctx.sdk.sendToUser(uniq('ghost'), 'stray', { x: 1 });
    assert.equal(res.status, 200);
    await sleep(300);
    assert.equal(seen.length, 0);
  });
});
