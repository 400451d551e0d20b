// Headless Chromium (Debian's `chromium`, driven by playwright-core) loads the pusher-js web build in
// a page where `window.WebSocket` was removed first. pusher-js must fall back to sinew's HTTP
// transports on its own (cross-origin, so through CORS preflights) and receive live events.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { useSinew, uniq } from './lib/fixture.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const PUSHER_WEB = path.join(here, 'node_modules', 'pusher-js', 'dist', 'web', 'pusher.js');
const ARTIFACTS = path.join(here, 'artifacts');
const CHROMIUM = '/usr/bin/chromium';
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
];

function page(key, port, channel) {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Sinew HTTP fallback</title>
<style>body{font:14px sans-serif;margin:2em} pre{background:#f4f4f4;padding:1em}</style></head>
<body><h1>pusher-js without WebSocket</h1><pre id="log"></pre>
<script>
  // Simulates a network that blocks WebSockets: pusher-js sees no WebSocket API at all.
  delete window.WebSocket;
  window.MozWebSocket = undefined;
</script>
<script src="/pusher.js"></script>
<script>
  const log = (line) => { document.getElementById('log').textContent += line + '\\n'; };
  log('WebSocket available: ' + (typeof window.WebSocket !== 'undefined'));
  window.events = [];
  const pusher = new Pusher(${JSON.stringify(key)}, {
    cluster: 'local',
    wsHost: '127.0.0.1', wsPort: ${port},
    httpHost: '127.0.0.1', httpPort: ${port}, httpPath: '/pusher',
    forceTLS: false,
    disableStats: true,
  });
  window.pusher = pusher;
  pusher.connection.bind('state_change', (s) => log('state: ' + s.current));
  pusher.connection.bind('connected', () => log('transport: ' + pusher.connection.connection.transport.name));
  const channel = pusher.subscribe(${JSON.stringify(channel)});
  channel.bind('pusher:subscription_succeeded', () => { window.subscribed = true; log('subscribed'); });
  channel.bind('live', (data) => { window.events.push(data); log('event: ' + JSON.stringify(data)); });
</script></body></html>`;
}

describe('browser without WebSocket', () => {
  const ctx = useSinew();
  let pageServer;
  let pageBase;
  let browser;
  const channel = uniq('browser-');

  before(async () => {
    const script = readFileSync(PUSHER_WEB);
    pageServer = http.createServer((req, res) => {
      if (req.url === '/pusher.js') {
        res.writeHead(200, { 'content-type': 'application/javascript' });
        res.end(script);
      } else if (req.url === '/') {
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end(page(ctx.app.key, ctx.server.port, channel));
      } else {
        res.writeHead(404);
        res.end();
      }
    });
    await new Promise((resolve) => pageServer.listen(0, '127.0.0.1', resolve));
    pageBase = `http://127.0.0.1:${pageServer.address().port}`;
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  });

  after(async () => {
    if (browser) await browser.close();
    if (pageServer) {
      pageServer.closeAllConnections?.();
      await new Promise((resolve) => pageServer.close(resolve));
    }
  });

  test('pusher-js falls back to HTTP by itself and receives live events', { timeout: 60000 }, async () => {
    const tab = await browser.newPage();
    const consoleErrors = [];
    tab.on('pageerror', (e) => consoleErrors.push(String(e)));
    await tab.goto(pageBase);
    assert.equal(await tab.evaluate(() => typeof window.WebSocket), 'undefined');
    // Without TLS pusher-js starts its HTTP strategies 5 s after the (unsupported) WebSocket ones.
    await tab.waitForFunction(() => window.subscribed === true, null, { timeout: 40000 });
    const transport = await tab.evaluate(() => window.pusher.connection.connection.transport.name);
    assert.ok(['xhr_streaming', 'xhr_polling'].includes(transport), `transport ${transport}`);

    await ctx.sdk.trigger(channel, 'live', { n: 1, text: 'héllo' });
    await ctx.sdk.trigger(channel, 'live', { n: 2 });
    await tab.waitForFunction(() => window.events.length === 2, null, { timeout: 15000 });
    assert.deepEqual(await tab.evaluate(() => window.events), [{ n: 1, text: 'héllo' }, { n: 2 }]);
    assert.equal(await tab.evaluate(() => window.pusher.connection.state), 'connected');

    const usage = await (await fetch(`${ctx.server.httpBase}/usage`)).json();
    assert.equal(usage.http_sessions, 1, JSON.stringify(usage));
    assert.deepEqual(consoleErrors, []);

    mkdirSync(ARTIFACTS, { recursive: true });
    await tab.screenshot({ path: path.join(ARTIFACTS, 'fallback-browser.png'), fullPage: true });
    await tab.close();
  });
});
