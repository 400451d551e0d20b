// TLS on the main port: pusher-js with forceTLS: true and the official SDK with useTLS: true,
// trusting a test CA made with openssl for this run.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { useSinew, appEnv } from './lib/fixture.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const dir = mkdtempSync(path.join(tmpdir(), 'sinew-tls-'));
after(() => rmSync(dir, { recursive: true, force: true }));
const f = (name) => path.join(dir, name);
const openssl = (...args) => execFileSync('openssl', args, { stdio: 'pipe' });
openssl('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2', '-subj', '/CN=Sinew Test CA',
  '-keyout', f('ca.key'), '-out', f('ca.pem'));
openssl('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', f('server.key'), '-out', f('server.csr'));
writeFileSync(f('san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
openssl('x509', '-req', '-in', f('server.csr'), '-CA', f('ca.pem'), '-CAkey', f('ca.key'), '-CAcreateserial',
  '-days', '2', '-out', f('server.pem'), '-extfile', f('san.ext'));

const APP = { id: '91', key: 'tls-key', secret: 'tls-secret' };

function runClient(port, extraEnv = {}) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(here, 'lib', 'tls-client.mjs'), String(port), APP.id, APP.key, APP.secret], {
      env: { ...process.env, ...extraEnv },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('exit', (code) => {
      let parsed = null;
      try {
        parsed = JSON.parse(out.trim().split('\n').pop());
      } catch {
        parsed = { ok: false, error: `no JSON output: ${out} ${err}` };
      }
      resolve({ code, ...parsed });
    });
  });
}

describe('TLS', () => {
  const ctx = useSinew({ env: appEnv(APP, { SINEW_TLS_CERT: f('server.pem'), SINEW_TLS_KEY: f('server.key') }) }, APP);

  test('pusher-js forceTLS and the SDK useTLS work against the test CA', { timeout: 20000 }, async () => {
    const r = await runClient(ctx.server.port, { NODE_EXTRA_CA_CERTS: f('ca.pem') });
    assert.equal(r.ok, true, r.error);
    assert.deepEqual(r.data, { over: 'tls' });
    assert.match(r.socket_id, /^\d+\.\d+$/);
    assert.deepEqual(r.channels, { channels: { 'tls-news': {} } });
  });

  test('without the CA the certificate is refused', { timeout: 20000 }, async () => {
    const r = await runClient(ctx.server.port, { NODE_EXTRA_CA_CERTS: '' });
    assert.equal(r.ok, false);
  });

  test('the port speaks TLS only: a plain ws:// connection gets nothing', { timeout: 10000 }, async () => {
    const result = await new Promise((resolve) => {
      const ws = new WebSocket(`ws://127.0.0.1:${ctx.server.port}/app/${APP.key}?protocol=7`);
      ws.on('message', () => resolve('message'));
      ws.on('error', () => resolve('error'));
      ws.on('close', () => resolve('closed'));
      setTimeout(() => resolve('timeout'), 5000);
    });
    assert.notEqual(result, 'message');
  });
});
