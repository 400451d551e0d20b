// The README's snippets, run as a reader pastes them. Every fenced block of code in README.md is
// preceded by a marker: `<!-- run: KIND -->` (run here) or `<!-- not run: why -->`. A block without
// one fails this test, so a new snippet is either run or says why not.
//
// KIND is `node` (an ES module), `node-client` (pusher-js, which must print what it receives),
// `python` (the official SDK, from the test venv), `config-check` (`sinew --config <block> config
// check`) or `shell` (bash with the built `sinew` first on PATH). `; context: CODE` gives a fragment
// what the prose around it assumes (a `pusher` client, a request): it is prepended, never edited.
// The one substitution: the snippets' ports (6001-6003, 9601-9603) become free ones, so a Sinew
// already running on them does not matter.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import PusherServer from 'pusher';
import { REPO_ROOT, sinewBinary, startSinew } from './lib/server.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const FENCE = /^```(\w*)\s*$/;
const MARKER = /^<!-- (run|not run): ?(.*?) -->$/;

/** Every fenced block with a language: { lang, code, marker: { run, kind, context } | null, line }. */
function snippets() {
  const lines = readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8').split('\n');
  const out = [];
  for (let i = 0; i < lines.length; i++) {
    const open = lines[i].match(FENCE);
    if (!open || !open[1]) continue;
    let end = i + 1;
    while (end < lines.length && lines[end].trim() !== '```') end++;
    const m = i > 0 ? lines[i - 1].match(MARKER) : null;
    let marker = null;
    if (m) {
      const [kind, context] = m[2].split(/; context: /);
      marker = { run: m[1] === 'run', kind: kind.trim(), context: context || '' };
    }
    out.push({ lang: open[1], code: lines.slice(i + 1, end).join('\n') + '\n', marker, line: i + 1 });
    i = end;
  }
  return out;
}

async function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

/** The snippet's ports replaced by `ports` ({ '6001': 41234, ... }). */
function withPorts(code, ports) {
  return code.replace(/\b(600[1-3]|960[1-3]|700[0-2]|638[01]|2637[89]|4222)\b/g, (p) => String(ports[p] ?? p));
}

/** Runs `cmd args` to its end (at most `ms`); resolves { code, stdout, stderr }. */
function run(cmd, args, { input, env, ms = 20000, cwd = here } = {}) {
  const r = spawnSync(cmd, args, { input, env: env || process.env, cwd, timeout: ms, encoding: 'utf8' });
  return { code: r.status, stdout: r.stdout || '', stderr: r.stderr || '' };
}

const all = snippets();

test('every README code block is run here or says why not', () => {
  const unmarked = all.filter((s) => !s.marker).map((s) => `README.md:${s.line} (${s.lang})`);
  assert.deepEqual(unmarked, [], 'blocks without a <!-- run: --> or <!-- not run: --> marker');
  for (const s of all.filter((s) => s.marker.run)) {
    assert.ok(['node', 'node-client', 'python', 'config-check', 'shell'].includes(s.marker.kind), `README.md:${s.line}`);
  }
  for (const s of all.filter((s) => !s.marker.run)) assert.ok(s.marker.kind.length > 0, `README.md:${s.line}: say why`);
});

test('config blocks pass `sinew config check`', () => {
  const dir = mkdtempSync(path.join(here, '.snippet-'));
  try {
    for (const s of all.filter((s) => s.marker?.kind === 'config-check')) {
      const file = path.join(dir, 'sinew.toml');
      writeFileSync(file, s.code);
      const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SINEW_')));
      const r = run(sinewBinary(), ['--config', file, 'config', 'check'], { env });
      assert.equal(r.code, 0, `README.md:${s.line}\n${r.stdout}${r.stderr}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Node and Python snippets publish to a real Sinew, and the pusher-js one receives', async () => {
  const server = await startSinew();
  const dir = mkdtempSync(path.join(here, '.snippet-'));
  const ports = { 6001: server.port };
  const sdk = new PusherServer({ appId: '1', key: 'app-key', secret: 'app-secret', host: '127.0.0.1', port: String(server.port) });
  const clients = [];
  try {
    // The pusher-js snippet: started first, it must print the update the others publish.
    const received = [];
    for (const s of all.filter((s) => s.marker?.kind === 'node-client')) {
      const file = path.join(dir, `client-${s.line}.mjs`);
      writeFileSync(file, withPorts(s.marker.context + '\n' + s.code, ports));
      const child = spawn(process.execPath, [file], { cwd: here, stdio: ['ignore', 'pipe', 'pipe'] });
      const out = { text: '', err: '' };
      child.stdout.on('data', (d) => (out.text += d));
      child.stderr.on('data', (d) => (out.err += d));
      clients.push(child);
      received.push({ line: s.line, out });
    }
    // Wait until the clients subscribed to `pages`.
    const deadline = Date.now() + 10000;
    for (;;) {
      const res = await sdk.get({ path: '/channels/pages', params: { info: 'subscription_count' } });
      const body = await res.json();
      if ((body.subscription_count || 0) >= received.length) break;
      assert.ok(Date.now() < deadline, `pusher-js snippets did not subscribe: ${JSON.stringify(received)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    for (const s of all.filter((s) => s.marker?.kind === 'node')) {
      const file = path.join(dir, `snippet-${s.line}.mjs`);
      writeFileSync(file, withPorts(s.marker.context + '\n' + s.code, ports));
      const r = run(process.execPath, [file]);
      assert.equal(r.code, 0, `README.md:${s.line}\n${r.stdout}${r.stderr}`);
    }
    const python = path.join(REPO_ROOT, 'target', 'pyenv', 'bin', 'python');
    assert.ok(existsSync(python), `${python} (made by ./scripts/test) runs the Python snippets`);
    for (const s of all.filter((s) => s.marker?.kind === 'python')) {
      const context = s.marker.context.split('; ').join('\n');
      const r = run(python, ['-c', withPorts(context + '\n' + s.code, ports)]);
      assert.equal(r.code, 0, `README.md:${s.line}\n${r.stdout}${r.stderr}`);
    }
    // Each publish to `pages` reached every pusher-js snippet, which printed it.
    const until = Date.now() + 5000;
    while (received.some((r) => !r.out.text.includes("title: 'Hi'")) && Date.now() < until) {
      await new Promise((r) => setTimeout(r, 50));
    }
    for (const r of received) assert.match(r.out.text, /title: 'Hi'/, `README.md:${r.line}\n${r.out.text}${r.out.err}`);
  } finally {
    for (const c of clients) c.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    await server.stop();
  }
});

test('shell snippets run with the built sinew on PATH', async () => {
  const ports = {};
  const names = ['6001', '6002', '6003', '9601', '9602', '9603', '6380', '6381', '26378', '26379', '4222'];
  for (const p of names) ports[p] = await freePort();
  // A Redis Cluster node also listens on its port + 10000 (the cluster bus).
  for (const p of ['7000', '7001', '7002']) {
    do ports[p] = await freePort();
    while (ports[p] > 55000 || Object.entries(ports).some(([k, v]) => k !== p && (v === ports[p] + 10000 || v + 10000 === ports[p])));
  }
  const bin = path.dirname(sinewBinary());
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('SINEW_')));
  env.PATH = `${bin}:${env.PATH}`;
  for (const s of all.filter((s) => s.marker?.kind === 'shell')) {
    // Its own process group, so every background process it starts is stopped with it.
    const child = spawn('bash', ['-c', withPorts(s.code, ports) + '\nwait'], { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    try {
      const deadline = Date.now() + 15000;
      while (!out.includes('"ready":true') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
      assert.match(out, /"ready":true/, `README.md:${s.line}\n${out}`);
    } finally {
      try {
        process.kill(-child.pid, 'SIGTERM');
      } catch {}
    }
  }
});
