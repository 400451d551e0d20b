// The demo in headless Chromium: two separate browser contexts on the same notes; an edit in one
// shows up in the other without a reload. Screenshots go to target/screenshots/ (git-ignored).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { startSinew, startDemo, REPO_ROOT } from './lib/stack.mjs';

const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
const SHOTS = path.join(REPO_ROOT, 'target', 'screenshots');
const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'];

let sinew;
let demo;
let browser;
before(async () => {
  sinew = await startSinew();
  demo = await startDemo(sinew);
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
});
after(async () => {
  await browser?.close();
  await demo?.stop();
  await sinew?.stop();
});

async function openPage() {
  const context = await browser.newContext({ viewport: { width: 640, height: 480 } });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('console', (m) => m.type() === 'warning' && problems.push(m.text()));
  await page.goto(demo.url);
  await page.waitForSelector('#status[data-state="connected"][data-subscribed="yes"]');
  // Survives only as long as the page is not reloaded.
  await page.evaluate(() => {
    window.__sameDocument = true;
  });
  return { page, problems };
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
