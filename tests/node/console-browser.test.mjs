// The debug console in headless Chromium: open it with the admin token, publish through the
// official SDK and watch a pusher-js client join, then see both appear live; save a screenshot.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { useSinew, uniq, appEnv } from './lib/fixture.mjs';
import { makeClient, connected, subscribe } from './lib/pusher-client.mjs';
import { sdkFor } from './lib/auth-server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const ARTIFACTS = path.join(here, 'artifacts');
const APP = { id: '95', key: 'console-key', secret: 'console-secret' };
const TOKEN = 'console-admin-token';

describe('debug console', () => {
  const ctx = useSinew({ env: appEnv(APP, { SINEW_DEBUG_CONSOLE_TOKEN: TOKEN }) }, APP);
  let browser;
  after(async () => browser && (await browser.close()));

  test('refuses a wrong token', async () => {
    const res = await fetch(`${ctx.server.httpBase}/debug?token=nope`);
    assert.equal(res.status, 401);
  });

  test('shows connections, subscriptions and REST publishes live', { timeout: 45000 }, async () => {
    browser = await chromium.launch({
      executablePath: '/usr/bin/chromium',
      args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
    });
    const page = await browser.newPage();
    await page.goto(`${ctx.server.httpBase}/debug?token=${TOKEN}`);
    await page.waitForFunction(() => document.getElementById('status').textContent === 'live', null, { timeout: 10000 });

    const channel = uniq('console-');
    const client = makeClient(ctx.server, APP.key);
    await connected(client);
    await subscribe(client, channel);
    await sdkFor(ctx.server, APP).trigger(channel, 'price-changed', { amount: 42 });

    await page.waitForSelector('tr.event-rest_publish', { timeout: 10000 });
    const publish = await page.textContent('tr.event-rest_publish');
    assert.ok(publish.includes('price-changed') && publish.includes(channel), publish);
    await page.waitForSelector('tr.event-subscribed', { timeout: 10000 });
    await page.waitForFunction((ch) => document.getElementById('apps').textContent.includes(ch), channel, { timeout: 10000 });

    // The publish form reaches the subscriber.
    const got = new Promise((resolve) => client.channel(channel).bind('from-console', resolve));
    await page.fill('#channel', channel);
    await page.fill('#event', 'from-console');
    await page.fill('#data', '{"via":"console"}');
    await page.click('button[type=submit]');
    assert.deepEqual(await got, { via: 'console' });
    await page.waitForFunction(() => document.getElementById('published').textContent === 'delivered to 1', null, { timeout: 5000 });

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: path.join(ARTIFACTS, 'debug-console.png'), fullPage: true });
    client.disconnect();
  });
});
