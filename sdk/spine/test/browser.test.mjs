// The demo in headless Chromium: two separate browser contexts on the same notes; an edit in one
// shows up in the other without a reload, and a window whose line was down for 10 s gets the edits
// it missed replayed from the channel's history, without fetching the notes again. Screenshots go
// to target/screenshots/ (git-ignored).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startSinew, startDemo, REPO_ROOT, waitFor, sleep } from './lib/stack.mjs';
import { startProxy } from '../../recover/test/lib/proxy.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SHOTS = path.join(REPO_ROOT, 'target', 'screenshots');
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

let sinew;
let demo;
let browser;
before(async () => {
  // History on the demo's channel (private-notes), as demo/run configures it.
  sinew = await startSinew({ env: { SINEW_APP_HISTORY_CHANNELS: 'private-,presence-' } });
  demo = await startDemo(sinew);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
});
after(async () => {
  await browser?.close();
  await demo?.stop();
  await sinew?.stop();
});

// `wsPort`: the page's WebSocket goes there instead (its config.js rewritten on the way).
async function openPage({ wsPort } = {}) {
  const context = await browser.newContext({ viewport: { width: 640, height: 480 } });
  if (wsPort) {
    await context.route('**/config.js', async (route) => {
      const res = await route.fetch();
      const body = (await res.text()).replace(/"wsPort":\d+/, `"wsPort":${wsPort}`);
      await route.fulfill({ response: res, body });
    });
  }
  const page = await context.newPage();
  const notesFetches = [];
  page.on('request', (r) => {
    if (r.method() === 'GET' && new URL(r.url()).pathname === '/notes') notesFetches.push(r.url());
  });
  const problems = [];
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('console', (m) => m.type() === 'warning' && problems.push(m.text()));
  await page.goto(demo.url);
  await page.waitForSelector('#status[data-state="connected"][data-subscribed="yes"]');
  // Survives only as long as the page is not reloaded.
  await page.evaluate(() => {
    window.__sameDocument = true;
    window.__recovered = [];
    window.demo.live.on('recovered', (info) => window.__recovered.push(info));
  });
  return { page, problems, notesFetches };
}

const titles = (page) => page.$$eval('#notes li input.title', (els) => els.map((e) => e.value));

test('an edit in one window appears in the other without a reload', async () => {
  const a = await openPage();
  const b = await openPage();

  await a.page.fill('#new-note input[name=title]', 'Buy milk');
  await a.page.press('#new-note input[name=title]', 'Enter');
  await b.page.waitForFunction(() => [...document.querySelectorAll('#notes input.title')].some((e) => e.value === 'Buy milk'));

  const input = b.page.locator('#notes li input.title').first();
  await input.fill('Buy oat milk');
  await input.press('Enter');
  await a.page.waitForFunction(() => document.querySelector('#notes li input.title')?.value === 'Buy oat milk');

  await a.page.locator('#notes li input.done').first().check();
  await b.page.waitForFunction(() => document.querySelector('#notes li input.done')?.checked === true);

  await b.page.fill('#new-note input[name=title]', 'Call Ana');
  await b.page.press('#new-note input[name=title]', 'Enter');
  await a.page.waitForFunction(() => document.querySelectorAll('#notes li').length === 2);

  assert.deepEqual(await titles(a.page), ['Buy oat milk', 'Call Ana']);
  assert.deepEqual(await titles(b.page), ['Buy oat milk', 'Call Ana']);
  for (const { page } of [a, b]) assert.equal(await page.evaluate(() => window.__sameDocument), true, 'no reload');
  assert.deepEqual(
    (await demo.notes()).map((n) => [n.title, n.done]),
    [
      ['Buy oat milk', true],
      ['Call Ana', false],
    ],
  );
  assert.deepEqual([...a.problems, ...b.problems], []);

  mkdirSync(SHOTS, { recursive: true });
  await a.page.screenshot({ path: path.join(SHOTS, 'demo-window-a.png') });
  await b.page.screenshot({ path: path.join(SHOTS, 'demo-window-b.png') });
});

const notes = (page) => page.$$eval('#notes li', (els) => els.map((li) => [li.querySelector('input.title').value, li.querySelector('input.done').checked]));

test('a window offline for 10 s gets the 20 edits it missed without fetching the notes again', async () => {
  const proxy = await startProxy(sinew.port);
  try {
    const a = await openPage();
    const b = await openPage({ wsPort: proxy.port });
    // Window a's Spine.Ajax requests all answered (and the list drawn anew from the answers).
    const settled = () => a.page.waitForFunction(() => window.jQuery.active === 0);
    const add = async (title) => {
      await a.page.fill('#new-note input[name=title]', title);
      await a.page.press('#new-note input[name=title]', 'Enter');
      await settled();
    };
    const start = (await demo.notes()).length;
    // One change while both are live: window b now has a position in the channel's history.
    await add('before the cut');
    await b.page.waitForFunction((n) => document.querySelectorAll('#notes li').length === n, start + 1);

    const socketBefore = await b.page.evaluate(() => window.demo.pusher.connection.socket_id);
    proxy.cut();
    const cutAt = Date.now();
    await b.page.waitForSelector('#status:not([data-state="connected"])');
    // 20 edits in window a: 12 notes created, 4 renamed, 2 ticked, 2 deleted.
    for (let i = 1; i <= 12; i++) await add(`offline ${i}`);
    await waitFor(async () => (await demo.notes()).length === start + 13, 'the 12 creates to be stored');
    const rows = a.page.locator('#notes li');
    // The row showing `title` (the list is drawn anew on each change, so look it up each time).
    const rowOf = async (title) => {
      await settled();
      const index = await a.page.$$eval('#notes li input.title', (els, t) => els.findIndex((e) => e.value === t), title);
      assert.ok(index >= 0, `a row "${title}"`);
      return rows.nth(index);
    };
    for (let i = 1; i <= 4; i++) {
      const input = (await rowOf(`offline ${i}`)).locator('input.title');
      await input.fill(`renamed ${i}`);
      await input.press('Enter');
      await waitFor(async () => (await demo.notes()).some((n) => n.title === `renamed ${i}`), `rename ${i} to be stored`);
    }
    for (const i of [5, 6]) {
      await (await rowOf(`offline ${i}`)).locator('input.done').check();
      await waitFor(async () => (await demo.notes()).some((n) => n.title === `offline ${i}` && n.done), `tick ${i} to be stored`);
    }
    for (const i of [7, 8]) {
      await (await rowOf(`offline ${i}`)).locator('button.remove').click();
      await waitFor(async () => !(await demo.notes()).some((n) => n.title === `offline ${i}`), `delete ${i} to be stored`);
    }
    await waitFor(async () => {
      const stored = await demo.notes();
      return stored.length === start + 11 && stored.filter((n) => /^renamed /.test(n.title)).length === 4 && stored.filter((n) => n.done && /^offline /.test(n.title)).length === 2;
    }, 'the 20 edits to be stored');
    assert.equal(await b.page.$$eval('#notes li', (els) => els.length), start + 1, 'window b saw none of them yet');

    await sleep(Math.max(0, 10000 - (Date.now() - cutAt)));
    proxy.restore();
    await b.page.waitForSelector('#status[data-state="connected"]');
    const expected = await notes(a.page);
    await b.page.waitForFunction((n) => document.querySelectorAll('#notes li').length === n, expected.length);
    await waitFor(async () => JSON.stringify(await notes(b.page)) === JSON.stringify(expected), 'window b to show what window a shows');

    assert.equal(expected.length, start + 11);
    assert.deepEqual(b.notesFetches.length, 1, 'window b fetched the notes once, when it loaded');
    assert.deepEqual(await b.page.evaluate(() => window.__recovered.map((r) => r.replayed)), [20]);
    assert.equal(await b.page.evaluate(() => window.__sameDocument), true, 'no reload');
    // (Attempts pusher-js made while the line was down were held by the proxy and went through
    // together, so the proxy's connection count is not asserted.)
    assert.notEqual(await b.page.evaluate(() => window.demo.pusher.connection.socket_id), socketBefore, 'window b is on a new connection');
    // Chromium warns about the connection attempts pusher-js gave up on while the line was down.
    const expectedWarning = /^WebSocket connection to '.*' failed: /;
    assert.deepEqual([...a.problems, ...b.problems.filter((p) => !expectedWarning.test(p))], []);
    mkdirSync(SHOTS, { recursive: true });
    await b.page.screenshot({ path: path.join(SHOTS, 'demo-window-b-recovered.png') });
  } finally {
    await proxy.close();
  }
});
