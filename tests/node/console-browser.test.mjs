// The debug console in headless Chromium, against real pusher-js clients and the official `pusher`
// SDK: live traffic, the failures an operator debugs (a refused private subscription, refused REST
// calls, close codes, a webhook batch retried after a 500), filters, pause, clear and the JSON of a
// row. Screenshots go to target/test-artifacts/console/.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { useSinew, uniq, appEnv } from './lib/fixture.mjs';
import { REPO_ROOT } from './lib/server.mjs';
import { makeClient, connected, subscribe } from './lib/pusher-client.mjs';
import { sdkFor } from './lib/auth-server.mjs';
import { signedRequest } from './lib/rest.mjs';
import { sleep } from './lib/util.mjs';

const ARTIFACTS = path.join(REPO_ROOT, 'target', 'test-artifacts', 'console');
const APP = { id: '95', key: 'console-key', secret: 'console-secret' };
const TOKEN = 'console-admin-token';

// A webhook receiver that answers 500 to the first delivery mentioning `failOnce`, then 200.
const hooks = { failOnce: null, statuses: [] };
const receiver = http.createServer((req, res) => {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (c) => (body += c));
  req.on('end', () => {
    const fail = hooks.failOnce !== null && body.includes(hooks.failOnce);
    if (fail) hooks.failOnce = null;
    hooks.statuses.push(fail ? 500 : 200);
    res.writeHead(fail ? 500 : 200).end(fail ? 'try again' : '{}');
  });
});
await new Promise((r) => receiver.listen(0, '127.0.0.1', r));
after(() => receiver.close());

/** The text of the first `tr.event-<type>` row containing every string of `parts` (waits). */
async function row(page, type, parts, timeout = 5000) {
  const handle = await page.waitForFunction(
    ([type, parts]) =>
      [...document.querySelectorAll(`tr.event-${type}`)].find((tr) => parts.every((p) => tr.textContent.includes(p))),
    [type, parts],
    { timeout },
  );
  return handle.evaluate((tr) => tr.textContent);
}

/** Opens the detail of that row and returns its JSON text. */
async function detail(page, type, parts) {
  await row(page, type, parts);
  return page.evaluate(
    ([type, parts]) => {
      const tr = [...document.querySelectorAll(`tr.event-${type}`)].find((t) => parts.every((p) => t.textContent.includes(p)));
      if (!tr.nextElementSibling || !tr.nextElementSibling.classList.contains('detail')) tr.click();
      return tr.nextElementSibling.querySelector('pre').textContent;
    },
    [type, parts],
  );
}

const visibleRows = (page) =>
  page.evaluate(() => [...document.querySelectorAll('tr.event')].filter((tr) => !tr.hidden).map((tr) => tr.textContent));

describe('debug console', () => {
  const ctx = useSinew(
    {
      env: appEnv(APP, {
        SINEW_DEBUG_CONSOLE_TOKEN: TOKEN,
        SINEW_WEBHOOK_URL: `http://127.0.0.1:${receiver.address().port}/hooks`,
        SINEW_WEBHOOKS_INITIAL_BACKOFF_MS: '300',
        SINEW_WEBHOOKS_LEAVE_DELAY_MS: '0',
        SINEW_WEBHOOKS_DEAD_LETTER_FILE: path.join(tmpdir(), `sinew-console-dl-${process.pid}.jsonl`),
      }),
    },
    APP,
  );
  let browser;
  let page;
  before(async () => {
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    const context = await browser.newContext({ viewport: { width: 1600, height: 1000 } });
    await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: ctx.server.httpBase });
    page = await context.newPage();
    await page.goto(`${ctx.server.httpBase}/debug?token=${TOKEN}`);
    await page.waitForFunction(() => document.getElementById('status').textContent === 'live', null, { timeout: 10000 });
    mkdirSync(ARTIFACTS, { recursive: true });
  });
  after(async () => browser && (await browser.close()));
  const shot = (name) => page.screenshot({ path: path.join(ARTIFACTS, `${name}.png`), fullPage: true });

  test('refuses a wrong token', async () => {
    const res = await fetch(`${ctx.server.httpBase}/debug?token=nope`);
    assert.equal(res.status, 401);
  });

  test('shows connections, subscriptions and REST publishes live, with millisecond times', { timeout: 45000 }, async () => {
    const channel = uniq('console-');
    const client = makeClient(ctx.server, APP.key);
    const socketId = await connected(client);
    await subscribe(client, channel);
    await sdkFor(ctx.server, APP).trigger(channel, 'price-changed', { amount: 42 });

    await row(page, 'rest_publish', ['price-changed', channel]);
    await row(page, 'subscribed', [channel, socketId]);
    await row(page, 'channel_occupied', [channel]);
    const time = await page.textContent('tr.event td.time');
    assert.match(time, /^\d\d:\d\d:\d\d\.\d{3}$/);
    await page.waitForFunction((ch) => document.getElementById('apps').textContent.includes(ch), channel, { timeout: 10000 });

    // The publish form reaches the subscriber.
    const got = new Promise((resolve) => client.channel(channel).bind('from-console', resolve));
    await page.fill('#channel', channel);
    await page.fill('#event', 'from-console');
    await page.fill('#data', '{"via":"console"}');
    await page.click('button[type=submit]');
    assert.deepEqual(await got, { via: 'console' });
    await page.waitForFunction(() => document.getElementById('published').textContent === 'delivered to 1', null, { timeout: 5000 });
    await shot('live-traffic');
  });

  test('a refused private subscription appears within a second, with its status and reason', async () => {
    const channel = uniq('private-console-');
    const client = makeClient(ctx.server, APP.key, { auth: ctx.auth, channelParams: { mode: 'wrong-secret' } });
    const socketId = await connected(client);
    const started = Date.now();
    client.subscribe(channel);
    const text = await row(page, 'subscription_refused', [channel, socketId, '401'], 1000);
    assert.ok(Date.now() - started < 1000, `shown after ${Date.now() - started} ms`);
    assert.ok(text.includes(`Invalid signature for channel ${channel}`), text);
    assert.ok(await page.$eval('tr.event-subscription_refused', (tr) => tr.classList.contains('failure')));
  });

  test('refused REST calls appear within a second, never with the secret or the signature', async () => {
    const wrong = 'not-the-console-secret';
    const started = Date.now();
    await assert.rejects(sdkFor(ctx.server, { ...APP, secret: wrong }).trigger('rest-refused', 'x', {}), (e) => e.status === 401);
    await row(page, 'rest_refused', ['401', 'Invalid signature', `/apps/${APP.id}/events`], 1000);
    assert.ok(Date.now() - started < 1000, `shown after ${Date.now() - started} ms`);
    const json = await detail(page, 'rest_refused', ['Invalid signature']);
    assert.equal(JSON.parse(json).status, 401);
    for (const secret of [wrong, APP.secret, 'auth_signature', 'auth_key']) assert.ok(!json.includes(secret), json);

    const stale = await signedRequest(ctx.server, APP, { path: `/apps/${APP.id}/channels`, timestamp: 1000 });
    assert.equal(stale.status, 401);
    await row(page, 'rest_refused', ['401', 'Timestamp expired']);
    const big = JSON.stringify({ name: 'big', channels: ['c'], data: 'x'.repeat(20000) });
    const over = await signedRequest(ctx.server, APP, { method: 'POST', path: `/apps/${APP.id}/events`, body: big });
    assert.equal(over.status, 413);
    await row(page, 'rest_refused', ['413', `/apps/${APP.id}/events`]);
    await shot('refusals');
  });

  test('presence members with user_info, unsubscribes, vacated channels and close codes', async () => {
    const channel = uniq('presence-console-');
    const client = makeClient(ctx.server, APP.key, {
      auth: ctx.auth,
      channelParams: { user_id: 'ada', user_info: JSON.stringify({ name: 'Ada Lovelace' }) },
    });
    const socketId = await connected(client);
    await subscribe(client, channel);
    await row(page, 'member_added', [channel, 'ada', 'Ada Lovelace']);
    assert.deepEqual(JSON.parse(await detail(page, 'member_added', [channel])).user_info, { name: 'Ada Lovelace' });
    client.unsubscribe(channel);
    await row(page, 'unsubscribed', [channel, socketId]);
    await row(page, 'member_removed', [channel, 'ada']);
    await row(page, 'channel_vacated', [channel]);
    client.disconnect();
    const closed = JSON.parse(await detail(page, 'connection_closed', [socketId]));
    assert.equal(typeof closed.code, 'number', JSON.stringify(closed));
  });

  test('filters narrow to one channel; pause, clear and copy', async () => {
    const [a, b] = [uniq('console-a-'), uniq('console-b-')];
    const client = makeClient(ctx.server, APP.key);
    await connected(client);
    await subscribe(client, a);
    await subscribe(client, b);
    const sdk = sdkFor(ctx.server, APP);
    await sdk.trigger(a, 'on-a', {});
    await sdk.trigger(b, 'on-b', {});
    await row(page, 'rest_publish', [b, 'on-b']);

    await page.fill('#f-channel', a);
    let rows = await visibleRows(page);
    assert.ok(rows.length >= 3, rows.join('\n'));
    // (A webhook batch may carry both channels' channel_occupied.)
    const others = await page.evaluate(() =>
      [...document.querySelectorAll('tr.event:not(.event-webhook)')].filter((tr) => !tr.hidden).map((tr) => tr.textContent),
    );
    assert.ok(rows.every((r) => r.includes(a)), rows.join('\n'));
    assert.ok(others.every((r) => !r.includes(b)), others.join('\n'));
    await page.selectOption('#f-type', 'rest_publish');
    rows = await visibleRows(page);
    assert.equal(rows.length, 1, rows.join('\n'));
    assert.ok(rows[0].includes('on-a'));
    await page.fill('#f-search', 'no-such-text-anywhere');
    assert.equal((await visibleRows(page)).length, 0);
    await page.fill('#f-search', '');
    await shot('filtered');

    // Paused: new events wait; resumed: they show.
    await page.click('#pause');
    await sdk.trigger(a, 'while-paused', {});
    await sleep(300);
    assert.equal((await visibleRows(page)).filter((r) => r.includes('while-paused')).length, 0);
    assert.match(await page.textContent('#shown'), /held/);
    await page.click('#pause');
    await row(page, 'rest_publish', [a, 'while-paused']);

    // The JSON of a row, pretty and copyable.
    const json = await detail(page, 'rest_publish', ['while-paused']);
    assert.ok(json.includes('\n  "type": "rest_publish"'), json);
    await page.click('tr.detail:not([hidden]) button.copy');
    await page.waitForFunction(() => document.querySelector('tr.detail:not([hidden]) button.copy').textContent === 'Copied');
    assert.equal(await page.evaluate(() => navigator.clipboard.readText()), json);

    await page.click('#clear');
    assert.equal(await page.$$eval('tr.event', (trs) => trs.length), 0);
    await page.fill('#f-channel', '');
    await page.selectOption('#f-type', '');
  });

  test('a webhook batch retried after a 500 shows its attempts in one row', { timeout: 30000 }, async () => {
    const channel = uniq('console-hook-');
    hooks.failOnce = channel;
    const client = makeClient(ctx.server, APP.key);
    await connected(client);
    await subscribe(client, channel);
    const text = await row(page, 'webhook', [channel, 'delivered'], 15000);
    assert.ok(text.includes('attempt 2') && text.includes('500 → 200'), text);
    assert.equal(await page.$$eval('tr.event-webhook', (trs, ch) => trs.filter((t) => t.textContent.includes(ch)).length, channel), 1);
    const batch = JSON.parse(await detail(page, 'webhook', [channel]));
    assert.deepEqual(batch.attempts.map((a) => [a.attempt, a.status, a.outcome]), [[1, 500, 'retrying'], [2, 200, 'delivered']]);
    assert.ok(batch.attempts[0].next_retry_in_ms > 0, JSON.stringify(batch));
    assert.equal(batch.dead_lettered, false);
    assert.ok(batch.names.includes('channel_occupied') && batch.url.endsWith('/hooks'), JSON.stringify(batch));
    await shot('webhook-retry');
  });
});
