// Sinew's own channel authorization from JSON Web Tokens, driven by unmodified pusher-js with
// channelAuthorization / userAuthentication pointed at Sinew. Tokens come from `jose`, keys from
// node:crypto; nothing here uses Sinew's code to sign.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { SignJWT, exportJWK } from 'jose';
import { useSinew, uniq } from './lib/fixture.mjs';
import { makeClient, connected, subscribe, nextEvent } from './lib/pusher-client.mjs';
import { sdkFor } from './lib/auth-server.mjs';
import { withTimeout } from './lib/util.mjs';

const dir = mkdtempSync(path.join(tmpdir(), 'sinew-jwt-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const HS_SECRET = randomBytes(32).toString('hex');
const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 });
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' });
const ed = generateKeyPairSync('ed25519');
const rsaPem = rsa.publicKey.export({ type: 'spki', format: 'pem' });
writeFileSync(path.join(dir, 'rsa.pem'), rsaPem);
const jwks = { keys: [
  { ...(await exportJWK(ec.publicKey)), kid: 'ec-1', alg: 'ES256', use: 'sig' },
  { ...(await exportJWK(ed.publicKey)), kid: 'ed-1', alg: 'EdDSA', use: 'sig' },
] };
writeFileSync(path.join(dir, 'jwks.json'), JSON.stringify(jwks));
const MASTER = randomBytes(32).toString('base64');

const APP = {
  id: '81',
  key: 'jwt-key',
  secret: 'jwt-app-secret',
  client_events: true,
  jwt_secret: HS_SECRET,
  jwt_public_key: path.join(dir, 'rsa.pem'),
  jwt_jwks_file: path.join(dir, 'jwks.json'),
  jwt_issuer: 'https://id.example.com',
  jwt_audience: 'sinew',
  encryption_master_key_base64: MASTER,
};

const now = () => Math.floor(Date.now() / 1000);
const key = (k) => (k === 'HS256' ? new TextEncoder().encode(HS_SECRET) : k);
async function token(claims, { alg = 'HS256', signWith, kid, iss = APP.jwt_issuer, aud = APP.jwt_audience, exp = now() + 300 } = {}) {
  const k = signWith || { HS256: key('HS256'), RS256: rsa.privateKey, ES256: ec.privateKey, EdDSA: ed.privateKey }[alg];
  let jwt = new SignJWT({ ...claims }).setProtectedHeader({ alg, ...(kid ? { kid } : {}) }).setIssuedAt();
  if (iss) jwt = jwt.setIssuer(iss);
  if (aud) jwt = jwt.setAudience(aud);
  if (exp !== null) jwt = jwt.setExpirationTime(exp);
  return jwt.sign(k);
}

const b64url = (o) => Buffer.from(JSON.stringify(o)).toString('base64url');

describe('JWT channel authorization', () => {
  const ctx = useSinew({ config: { apps: [APP] } }, APP);
  const client = async (jwt) => {
    const c = makeClient(ctx.server, APP.key, {
      pusher: {
        channelAuthorization: { endpoint: `${ctx.server.httpBase}/apps/${APP.id}/auth`, transport: 'ajax', headers: { Authorization: `Bearer ${jwt}` } },
        userAuthentication: { endpoint: `${ctx.server.httpBase}/apps/${APP.id}/user-auth`, transport: 'ajax', headers: { Authorization: `Bearer ${jwt}` } },
      },
    });
    await connected(c);
    return c;
  };
  const refused = async (jwt, channel) => {
    const c = await client(jwt);
    const err = await subscribe(c, channel).then(
      () => assert.fail(`subscription to ${channel} should fail`),
      (e) => e.detail,
    );
    assert.equal(c.connection.state, 'connected', 'a refused subscription leaves the connection up');
    return err;
  };

  test('private channel with an HS256 token; events arrive', { timeout: 15000 }, async () => {
    const ch = uniq('private-user-42-');
    const c = await client(await token({ sub: '42', channels: ['private-user-42-*'] }));
    const [chan] = await subscribe(c, ch);
    const got = nextEvent(chan, 'update');
    await sdkFor(ctx.server, APP).trigger(ch, 'update', { id: 1 });
    assert.deepEqual((await got).data, { id: 1 });
  });

  test('presence with RS256 and EdDSA tokens shows user_info to other members', { timeout: 15000 }, async () => {
    const ch = uniq('presence-room-');
    const alice = await client(await token({ sub: 'alice', channels: ['presence-room-*'], user_info: { name: 'Alice' } }, { alg: 'RS256' }));
    const [aChan] = await subscribe(alice, ch);
    const added = nextEvent(aChan, 'pusher:member_added');
    const bob = await client(await token({ sub: 'bob', channels: [ch], user_info: { name: 'Bob' } }, { alg: 'EdDSA', kid: 'ed-1' }));
    const [, members] = await subscribe(bob, ch);
    assert.equal(members.count, 2);
    assert.deepEqual(members.get('alice').info, { name: 'Alice' });
    const { data } = await added;
    assert.equal(data.id, 'bob');
    assert.deepEqual(data.info, { name: 'Bob' });
  });

  test('encrypted channel with an ES256 token from the JWKS: pusher-js decrypts what the SDK encrypts', { timeout: 15000 }, async () => {
    const ch = uniq('private-encrypted-doc-');
    const c = await client(await token({ sub: 'u', channels: ['private-encrypted-*'] }, { alg: 'ES256', kid: 'ec-1' }));
    const [chan] = await subscribe(c, ch);
    const got = nextEvent(chan, 'secret');
    await sdkFor(ctx.server, APP, { encryptionMasterKeyBase64: MASTER }).trigger(ch, 'secret', { s: 'hidden' });
    assert.deepEqual((await got).data, { s: 'hidden' });
  });

  test('refusals: expired, wrong issuer, wrong audience, tampered, alg none, key confusion, ungranted', { timeout: 30000 }, async () => {
    const ch = uniq('private-x-');
    const grant = { sub: 'u', channels: ['private-x-*'] };
    const cases = [
      ['expired', await token(grant, { exp: now() - 120 }), 401, 'token expired'],
      ['wrong issuer', await token(grant, { iss: 'https://evil.example.com' }), 401, 'token has the wrong issuer'],
      ['wrong audience', await token(grant, { aud: 'other' }), 401, 'token has the wrong audience'],
      ['no exp', await token(grant, { exp: null }), 401, 'invalid token'],
    ];
    const good = await token(grant, { alg: 'RS256' });
    const [h, , s] = good.split('.');
    cases.push(['tampered', `${h}.${b64url({ ...grant, sub: 'admin', channels: ['*'], iss: APP.jwt_issuer, aud: APP.jwt_audience, exp: now() + 300 })}.${s}`, 401, 'invalid token']);
    cases.push(['alg none', `${b64url({ alg: 'none', typ: 'JWT' })}.${b64url({ ...grant, iss: APP.jwt_issuer, aud: APP.jwt_audience, exp: now() + 300 })}.`, 401, 'invalid token']);
    // Key confusion: an HS256 token whose "secret" is the RSA public key the server holds.
    cases.push(['key confusion', await token(grant, { alg: 'HS256', signWith: new TextEncoder().encode(rsaPem) }), 401, 'invalid token']);
    cases.push(['ungranted channel', await token({ sub: 'u', channels: ['private-other'] }), 403, 'channel not granted']);
    for (const [what, jwt, status, message] of cases) {
      const err = await refused(jwt, ch);
      assert.equal(err.status, status, what);
      // The body names the reason (checked directly, as pusher-js only passes the status on).
      const c = await client(jwt);
      const res = await fetch(`${ctx.server.httpBase}/apps/${APP.id}/auth`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Bearer ${jwt}` },
        body: new URLSearchParams({ socket_id: c.connection.socket_id, channel_name: ch }),
      });
      assert.equal(res.status, status, what);
      assert.deepEqual(await res.json(), { error: message }, what);
    }
  });

  test('a new key added to the JWKS file is picked up without a restart', { timeout: 15000 }, async () => {
    const fresh = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const ch = uniq('private-rotated-');
    const jwt = await new SignJWT({ sub: 'r', channels: [ch] })
      .setProtectedHeader({ alg: 'ES256', kid: 'ec-2' })
      .setIssuer(APP.jwt_issuer).setAudience(APP.jwt_audience).setIssuedAt().setExpirationTime(now() + 300)
      .sign(fresh.privateKey);
    assert.equal((await refused(jwt, ch)).status, 401, 'unknown kid before the rotation');
    const rotated = { keys: [...jwks.keys, { ...(await exportJWK(fresh.publicKey)), kid: 'ec-2', alg: 'ES256', use: 'sig' }] };
    // A different size guarantees a visible change even within one mtime tick.
    writeFileSync(path.join(dir, 'jwks.json'), JSON.stringify(rotated, null, 1));
    const deadline = Date.now() + 8000;
    for (;;) {
      const c = await client(jwt);
      const ok = await subscribe(c, ch).then(() => true, () => false);
      if (ok) break;
      assert.ok(Date.now() < deadline, 'the rotated key was not picked up');
      await new Promise((r) => setTimeout(r, 500));
    }
  });

  test('a socket_id that is not a live connection of the app is refused', async () => {
    const jwt = await token({ sub: 'u', channels: ['private-*'] });
    const res = await fetch(`${ctx.server.httpBase}/apps/${APP.id}/auth`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded', authorization: `Bearer ${jwt}` },
      body: new URLSearchParams({ socket_id: '123.456', channel_name: 'private-a' }),
    });
    assert.equal(res.status, 403);
  });

  test('sign-in through userAuthentication, then sendToUser reaches the user', { timeout: 15000 }, async () => {
    const c = await client(await token({ sub: 'user-7', channels: [], user_info: { name: 'Seven' } }));
    c.signin();
    await withTimeout(c.user.signinDonePromise, 5000, 'sign-in');
    assert.equal(c.user.user_data.id, 'user-7');
    assert.deepEqual(c.user.user_data.user_info, { name: 'Seven' });
    // pusher-js subscribes to #server-to-user-user-7 after sign-in; wait until the server has it.
    await new Promise((r) => setTimeout(r, 200));
    const got = nextEvent(c.user, 'note');
    await sdkFor(ctx.server, APP).sendToUser('user-7', 'note', { hi: true });
    assert.deepEqual((await got).data, { hi: true });
  });
});
