// Apps in a database, driven by the unmodified clients: a soketi-shaped `apps` table with two apps
// in the machine's PostgreSQL and MariaDB (a database of the test's own, dropped after) serves
// pusher-js and the official `pusher` SDK (public and private channels, each app with its own
// credentials); an app inserted while Sinew runs connects at pusher-js's first try; an app made
// through the admin API serves both clients, its rotated secret signs for the grace period only, and
// disabling it closes pusher-js with 4003 (which pusher-js does not retry).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { startSinew } from './lib/server.mjs';
import { sdkFor } from './lib/auth-server.mjs';
import { makeClient, connected, subscribe, nextEvent, disconnectAll, reachesState } from './lib/pusher-client.mjs';
import { uniq } from './lib/fixture.mjs';

const APPS = [
  { id: 'store-1', key: 'store-key-1', secret: 'store-secret-1' },
  { id: 'store-2', key: 'store-key-2', secret: 'store-secret-2' },
];
const LATE = { id: 'store-late', key: 'store-key-late', secret: 'store-secret-late' };
const ADMIN_TOKEN = 'node-admin-token-0123456789';
const GRACE_SECONDS = 2;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** A call to the admin API: [status, parsed body or null]. */
async function admin(server, method, path, body) {
  const res = await fetch(`${server.httpBase}/admin/apps${path}`, {
    method,
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return [res.status, text ? JSON.parse(text) : null];
}

const DATABASES = {
  postgres: {
    url: (db) => `postgres://postgres@127.0.0.1:5432/${db}`,
    admin: (sql) => execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', 'postgres', '-qAt', '-c', sql]),
    run: (db, sql) => execFileSync('psql', ['-h', '127.0.0.1', '-U', 'postgres', '-d', db, '-qAt', '-v', 'ON_ERROR_STOP=1', '-c', sql]),
    table:
      'CREATE TABLE apps (id varchar(255) PRIMARY KEY, "key" varchar(255) NOT NULL, secret varchar(255) NOT NULL, ' +
      'max_connections integer NOT NULL, enable_client_messages smallint NOT NULL, enabled smallint NOT NULL, ' +
      'max_backend_events_per_sec integer NOT NULL, max_client_events_per_sec integer NOT NULL, ' +
      'max_read_req_per_sec integer NOT NULL, webhooks json)',
    key: '"key"',
    drop: (db) => `DROP DATABASE ${db} WITH (FORCE)`,
  },
  mysql: {
    url: (db) => `mysql://root@127.0.0.1:3306/${db}`,
    admin: (sql) => execFileSync('mariadb', ['-h', '127.0.0.1', '-u', 'root', '-e', sql]),
    run: (db, sql) => execFileSync('mariadb', ['-h', '127.0.0.1', '-u', 'root', db, '-e', sql]),
    table:
      'CREATE TABLE `apps` (`id` varchar(255) NOT NULL, `key` varchar(255) NOT NULL, `secret` varchar(255) NOT NULL, ' +
      '`max_connections` integer(10) NOT NULL, `enabled` tinyint(1) NOT NULL, `enable_client_messages` tinyint(1) NOT NULL, ' +
      '`max_backend_events_per_sec` integer(10) NOT NULL, `max_client_events_per_sec` integer(10) NOT NULL, ' +
      '`max_read_req_per_sec` integer(10) NOT NULL, `webhooks` json, PRIMARY KEY (`id`))',
    key: '`key`',
    drop: (db) => `DROP DATABASE ${db}`,
  },
};

const insert = (d, app) =>
  `INSERT INTO apps (id, ${d.key}, secret, max_connections, enable_client_messages, enabled, max_backend_events_per_sec, ` +
  `max_client_events_per_sec, max_read_req_per_sec, webhooks) VALUES ('${app.id}', '${app.key}', '${app.secret}', -1, 1, 1, -1, -1, -1, '[]')`;

for (const [store, d] of Object.entries(DATABASES)) {
  describe(`app store: ${store}`, () => {
    const db = `sinew_node_${process.pid}_${store}`;
    let server;
    before(async () => {
      d.admin(`CREATE DATABASE ${db}`);
      d.run(db, d.table);
      for (const app of APPS) d.run(db, insert(d, app));
      server = await startSinew({
        env: {
          SINEW_APP_STORE: store,
          SINEW_DATABASE_URL: d.url(db),
          SINEW_ADMIN_TOKEN: ADMIN_TOKEN,
          SINEW_SECRET_GRACE_SECONDS: String(GRACE_SECONDS),
        },
      });
    });
    after(async () => {
      disconnectAll();
      if (server) await server.stop();
      d.admin(d.drop(db));
    });

    test('each app of the table serves pusher-js and the official SDK', { timeout: 20000 }, async () => {
      for (const app of APPS) {
        const sdk = sdkFor(server, app);
        const client = makeClient(server, app.key, {
          pusher: {
            channelAuthorization: {
              customHandler: ({ socketId, channelName }, cb) => cb(null, sdk.authorizeChannel(socketId, channelName)),
            },
          },
        });
        await connected(client);
        const [pub] = await subscribe(client, uniq('store-news-'));
        const [priv] = await subscribe(client, uniq('private-store-'));
        const got = nextEvent(pub, 'hello');
        const gotPrivate = nextEvent(priv, 'secret');
        await sdk.trigger(pub.name, 'hello', { app: app.id });
        await sdk.trigger(priv.name, 'secret', { app: app.id });
        assert.deepEqual((await got).data, { app: app.id });
        assert.deepEqual((await gotPrivate).data, { app: app.id });
      }
      // One app's secret does not sign for the other.
      const wrong = sdkFor(server, { ...APPS[0], secret: APPS[1].secret });
      await assert.rejects(wrong.trigger('x', 'e', {}), (e) => e.status === 401);
    });

    test('an app inserted while Sinew runs connects at the first try', { timeout: 20000 }, async () => {
      d.run(db, insert(d, LATE));
      const client = makeClient(server, LATE.key);
      await connected(client);
      const [ch] = await subscribe(client, uniq('late-'));
      const got = nextEvent(ch, 'hi');
      await sdkFor(server, LATE).trigger(ch.name, 'hi', { late: true });
      assert.deepEqual((await got).data, { late: true });
    });

    test('an app made through the admin API serves both clients; rotated and disabled live', { timeout: 30000 }, async () => {
      const [made, app] = await admin(server, 'POST', '', { id: `admin-${store}`, key: `admin-key-${store}` });
      assert.equal(made, 201);
      const client = makeClient(server, app.key);
      await connected(client);
      const [ch] = await subscribe(client, uniq('admin-made-'));
      const got = nextEvent(ch, 'made');
      await sdkFor(server, app).trigger(ch.name, 'made', { by: 'admin' });
      assert.deepEqual((await got).data, { by: 'admin' });

      // A rotated secret: the old one still signs during the grace period, not after it.
      const [rotated, withNew] = await admin(server, 'POST', `/${app.id}/rotate`);
      assert.equal(rotated, 200);
      assert.notEqual(withNew.secret, app.secret);
      await sdkFor(server, app).trigger(ch.name, 'old', {});
      await sdkFor(server, withNew).trigger(ch.name, 'new', {});
      await sleep(GRACE_SECONDS * 1000 + 500);
      await assert.rejects(sdkFor(server, app).trigger(ch.name, 'old', {}), (e) => e.status === 401);
      await sdkFor(server, withNew).trigger(ch.name, 'new', {});

      // Disabled: pusher-js is told 4003 and stays disconnected (it does not retry 4000-4099).
      const [disabled] = await admin(server, 'POST', `/${app.id}/disable`);
      assert.equal(disabled, 200);
      await reachesState(client, ['disconnected', 'failed']);
      assert.ok(
        client.__errors.some((e) => e?.data?.code === 4003 || e?.error?.data?.code === 4003),
        `4003 among ${JSON.stringify(client.__errors)}`,
      );
      await sleep(1500);
      assert.ok(!['connecting', 'connected'].includes(client.connection.state), client.__states.join(' > '));
    });
  });
}
