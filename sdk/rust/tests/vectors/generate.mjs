// Produces signature vectors with the official `pusher` Node SDK (from tests/node's lockfile).
//   node generate.mjs          rewrite node-sdk.json
//   node generate.mjs --check  exit 1 if node-sdk.json differs from what the SDK produces now
import { createRequire } from 'node:module';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.resolve(here, '../../../../tests/node/package.json'));
const Pusher = require('pusher');
const sdkVersion = require('pusher/package.json').version;

const APP = { appId: '3', key: '278d425bdf160c739803', secret: '7ad3773142a6692b25b8' };
const MASTER_KEY = Buffer.from(Array.from({ length: 32 }, (_, i) => i)).toString('base64');
const pusher = new Pusher({ ...APP, host: '127.0.0.1', port: '6001', encryptionMasterKeyBase64: MASTER_KEY });

// Inputs are written with object keys in sorted order, so any JSON library that sorts keys
// and any that keeps insertion order produce the same text.
const channelCases = [
  { socket_id: '1234.1234', channel: 'private-foobar' },
  { socket_id: '1234.1234', channel: 'presence-foobar', presence: { user_id: '10', user_info: { name: 'Mr. Channels' } } },
  { socket_id: '98765.4321', channel: 'presence-room', presence: { user_id: 10 } },
  {
    socket_id: '1.2',
    channel: 'presence-unicode_=@,.;',
    presence: {
      user_id: 'zoë-🚀',
      user_info: { bio: 'line\nbreak\ttab "quoted" back\\slash \u0001 </script> \u2028', emoji: '😀', n: 1.5, ok: true, x: null },
    },
  },
  { socket_id: '1234.1234', channel: 'private-encrypted-foo' },
];

const userCases = [
  { socket_id: '1234.1234', user_data: { id: '12345' } },
  { socket_id: '55.66', user_data: { id: 'ann', user_info: { name: 'Ann Ö' }, watchlist: ['bob', 'carol'] } },
];

const webhookBodies = [
  '{"time_ms":1327078148132,"events":[{"name":"channel_occupied","channel":"test-channel"}]}',
  '{"time_ms":1700000000000,"events":[{"name":"member_added","channel":"presence-x","user_id":"ü"}]}',
];

const restCases = [
  {
    method: 'POST',
    path: '/apps/3/events',
    body: '{"name":"foo","channels":["project-3"],"data":"{\\"some\\":\\"data\\"}"}',
    params: {},
  },
  { method: 'GET', path: '/apps/3/channels', body: '', params: { filter_by_prefix: 'presence-', info: 'user_count' } },
  { method: 'GET', path: '/apps/3/channels/presence-room/users', body: '', params: {} },
  { method: 'POST', path: '/apps/3/users/ann/terminate_connections', body: '{}', params: {} },
];
const TIMESTAMP = 1353088179;

function signedQuery(c) {
  const realNow = Date.now;
  Date.now = () => TIMESTAMP * 1000;
  try {
    return pusher.createSignedQueryString({
      method: c.method,
      path: c.path,
      params: c.params,
      body: c.body || undefined,
    });
  } finally {
    Date.now = realNow;
  }
}

const vectors = {
  generated_by: `pusher ${sdkVersion} (npm)`,
  app: APP,
  master_key_base64: MASTER_KEY,
  authorize_channel: channelCases.map((c) => ({
    ...c,
    expected: pusher.authorizeChannel(c.socket_id, c.channel, c.presence),
  })),
  authenticate_user: userCases.map((c) => ({ ...c, expected: pusher.authenticateUser(c.socket_id, c.user_data) })),
  webhook: webhookBodies.map((body) => ({ body, signature: new Pusher.Token(APP.key, APP.secret).sign(body) })),
  signed_query: restCases.map((c) => ({ ...c, timestamp: TIMESTAMP, expected: signedQuery(c) })),
};

// The webhook signatures must also be what the SDK's own verifier accepts.
for (const w of vectors.webhook) {
  const hook = pusher.webhook({
    headers: { 'x-pusher-key': APP.key, 'x-pusher-signature': w.signature, 'content-type': 'application/json' },
    rawBody: w.body,
  });
  if (!hook.isValid()) throw new Error('the SDK rejects its own webhook signature');
}

const out = path.join(here, 'node-sdk.json');
const text = JSON.stringify(vectors, null, 2) + '\n';
if (process.argv.includes('--check')) {
  if (readFileSync(out, 'utf8') !== text) {
    console.error(`${out} is out of date: run node ${path.relative(process.cwd(), fileURLToPath(import.meta.url))}`);
    process.exit(1);
  }
  console.log('signature vectors match the official Node SDK');
} else {
  writeFileSync(out, text);
  console.log(`wrote ${out}`);
}
