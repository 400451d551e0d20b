// The real pieces the tests run against: the sinew binary and the sinew-demo backend (built by
// `cargo build --workspace`), plus the official `pusher` server SDK for hand-made messages.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import PusherServer from 'pusher';
import { startSinew, DEFAULT_APP, REPO_ROOT } from '../../../../tests/node/lib/server.mjs';

export { startSinew, DEFAULT_APP, REPO_ROOT };
export const SPINE_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Polls `predicate` until it returns a truthy value (or throws after `ms`). */
export async function waitFor(predicate, what, ms = 10000) {
  const deadline = Date.now() + ms;
  let last;
  for (;;) {
    try {
      const v = await predicate();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await sleep(25);
  }
}

function demoBinary() {
  const bin = process.env.SINEW_DEMO_BIN || path.join(REPO_ROOT, 'target', 'debug', 'sinew-demo');
  if (!existsSync(bin)) throw new Error(`${bin} not found: run cargo build --workspace`);
  return bin;
}

/** Starts the notes backend against `sinew`; resolves once it listens. */
export async function startDemo(sinew, { channel = 'private-notes' } = {}) {
  const dir = mkdtempSync(path.join(tmpdir(), 'sinew-demo-'));
  const proc = spawn(
    demoBinary(),
    ['--listen', '127.0.0.1:0', '--sinew-url', sinew.httpBase, '--channel', channel, '--data', path.join(dir, 'notes.json'), '--spine-dir', SPINE_DIR],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let output = '';
  const exited = new Promise((resolve) => proc.on('exit', resolve));
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`sinew-demo did not start:\n${output}`)), 15000);
    const onData = (d) => {
      output += d;
      const m = output.match(/listening on (http:\/\/\S+)/);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]);
      }
    };
    proc.stdout.on('data', onData);
    proc.stderr.on('data', onData);
    exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`sinew-demo exited (${code}):\n${output}`));
    });
  });
  return {
    url,
    channel,
    get output() {
      return output;
    },
    async notes() {
      const res = await fetch(`${url}/notes`);
      return res.json();
    },
    async stop() {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The official Node server SDK pointed at `sinew`. */
export function officialSdk(sinew, app = DEFAULT_APP) {
  return new PusherServer({ appId: app.id, key: app.key, secret: app.secret, host: '127.0.0.1', port: String(sinew.port), useTLS: false });
}

/** pusher-js options for a client of `sinew` whose app backend is `demo`. */
export function pusherOptions(sinew, demo) {
  return {
    cluster: 'local',
    wsHost: '127.0.0.1',
    wsPort: sinew.port,
    wssPort: sinew.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
    channelAuthorization: { endpoint: demo ? `${demo.url}/pusher/auth` : '/pusher/auth', transport: 'ajax' },
  };
}
