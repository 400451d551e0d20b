// Starting and stopping the real `sinew` binary for the end-to-end tests.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
export const REPO_ROOT = path.resolve(here, '..', '..', '..');

export const DEFAULT_APP = Object.freeze({
  id: '1',
  key: 'app-key',
  secret: 'app-secret',
});

const LISTENING_RE = /listening on (\S+):(\d+)/;
const METRICS_RE = /metrics at http:\/\/(\S+)\/metrics/;
const START_TIMEOUT_MS = 15000;
const STOP_TIMEOUT_MS = 3000;

export function sinewBinary() {
  const bin = process.env.SINEW_BIN || path.join(REPO_ROOT, 'target', 'debug', 'sinew');
  if (!existsSync(bin)) {
    throw new Error(
      `sinew binary not found at ${bin}; build it with \`cargo build\` or set SINEW_BIN`,
    );
  }
  return bin;
}

// Serialises a flat JS object (plus an `apps` array of flat objects) as TOML.
export function toToml(config) {
  const lines = [];
  const value = (v) => {
    if (typeof v === 'string') return JSON.stringify(v);
    if (typeof v === 'number' || typeof v === 'boolean') return String(v);
    if (Array.isArray(v)) return `[${v.map(value).join(', ')}]`;
    throw new Error(`cannot write ${typeof v} as TOML`);
  };
  for (const [k, v] of Object.entries(config)) {
    if (k === 'apps') continue;
    lines.push(`${k} = ${value(v)}`);
  }
  for (const app of config.apps || []) {
    lines.push('', '[[apps]]');
    for (const [k, v] of Object.entries(app)) lines.push(`${k} = ${value(v)}`);
  }
  return lines.join('\n') + '\n';
}

function baseEnv(extra) {
  const env = { ...process.env };
  // Never inherit settings from the developer's shell.
  for (const k of Object.keys(env)) if (k.startsWith('SINEW_') && k !== 'SINEW_BIN') delete env[k];
  return { ...env, SINEW_HOST: '127.0.0.1', SINEW_PORT: '0', SINEW_METRICS_PORT: '0', SINEW_LOG: 'warn', ...extra };
}

function writeConfig(config) {
  const dir = mkdtempSync(path.join(tmpdir(), 'sinew-e2e-'));
  const file = path.join(dir, 'sinew.toml');
  writeFileSync(file, typeof config === 'string' ? config : toToml(config));
  return { dir, file };
}

/**
 * Starts sinew and resolves once it printed its listening line.
 * options.env: extra SINEW_* variables; options.config: object or TOML text for --config.
 */
export async function startSinew(options = {}) {
  const bin = sinewBinary();
  const args = [...(options.args || [])];
  let cfg = null;
  if (options.config) {
    const config =
      typeof options.config === 'string'
        ? options.config
        : { host: '127.0.0.1', port: 0, log: 'warn', ...options.config };
    cfg = writeConfig(config);
    args.push('--config', cfg.file);
  }
  const env = baseEnv(options.env || {});
  if (options.config) {
    // The config file decides host and port when given; keep them ephemeral anyway.
    delete env.SINEW_PORT;
    delete env.SINEW_HOST;
  }
  const proc = spawn(bin, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      exited = { code, signal };
      resolve(exited);
    });
  });

  const ready = new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`sinew did not print its listening line within ${START_TIMEOUT_MS} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    }, START_TIMEOUT_MS);
    const check = (stream) => {
      const m = (stream === 'stdout' ? stdout : stderr).match(LISTENING_RE);
      if (m) {
        clearTimeout(timer);
        resolve({ host: m[1], port: Number(m[2]), stream });
      }
    };
    proc.stdout.on('data', (d) => {
      stdout += d;
      check('stdout');
    });
    proc.stderr.on('data', (d) => {
      stderr += d;
      check('stderr');
    });
    proc.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    exitPromise.then((e) => {
      clearTimeout(timer);
      reject(new Error(`sinew exited early (${JSON.stringify(e)})\nstdout:\n${stdout}\nstderr:\n${stderr}`));
    });
  });

  let info;
  try {
    info = await ready;
  } catch (e) {
    proc.kill('SIGKILL');
    if (cfg) rmSync(cfg.dir, { recursive: true, force: true });
    throw e;
  }

  const server = {
    proc,
    host: '127.0.0.1',
    port: info.port,
    announcedHost: info.host,
    announcedOn: info.stream,
    get stdout() {
      return stdout;
    },
    get stderr() {
      return stderr;
    },
    get exited() {
      return exited;
    },
    /** Resolves with {code, signal} once the process ended. */
    exitPromise,
    /** The metrics listener's base URL, once sinew printed it (null before, or when disabled). */
    get metricsBase() {
      const m = stdout.match(METRICS_RE);
      return m ? `http://${m[1]}` : null;
    },
    httpBase: `http://127.0.0.1:${info.port}`,
    wsBase: `ws://127.0.0.1:${info.port}`,
    async stop() {
      if (!exited) {
        proc.kill('SIGTERM');
        const t = setTimeout(() => proc.kill('SIGKILL'), STOP_TIMEOUT_MS);
        await exitPromise;
        clearTimeout(t);
      }
      if (cfg) rmSync(cfg.dir, { recursive: true, force: true });
    },
  };
  return server;
}

/** Polls `GET /ready` until it answers `status` (200 by default); resolves with the parsed body. */
export async function waitReady(server, { status = 200, ms = 10000 } = {}) {
  const deadline = Date.now() + ms;
  let last = 'no answer';
  for (;;) {
    try {
      const res = await fetch(`${server.httpBase}/ready`, { signal: AbortSignal.timeout(2000) });
      const text = await res.text();
      if (res.status === status) return JSON.parse(text);
      last = `${res.status} ${text}`;
    } catch (e) {
      last = String(e);
    }
    if (Date.now() > deadline) {
      throw new Error(`/ready on port ${server.port} did not answer ${status} within ${ms} ms (last: ${last})`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Runs sinew expecting it to exit on its own (e.g. a bad config). */
export async function runSinewToExit(options = {}, timeoutMs = 10000) {
  const bin = sinewBinary();
  const args = [...(options.args || [])];
  let cfg = null;
  if (options.config) {
    cfg = writeConfig(options.config);
    args.push('--config', cfg.file);
  }
  const proc = spawn(bin, args, { env: baseEnv(options.env || {}), stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  proc.stdout.on('data', (d) => (stdout += d));
  proc.stderr.on('data', (d) => (stderr += d));
  try {
    return await new Promise((resolve) => {
      const t = setTimeout(() => {
        proc.kill('SIGKILL');
        resolve({ code: null, timedOut: true, stdout, stderr });
      }, timeoutMs);
      proc.on('exit', (code, signal) => {
        clearTimeout(t);
        resolve({ code, signal, timedOut: false, stdout, stderr });
      });
    });
  } finally {
    if (cfg) rmSync(cfg.dir, { recursive: true, force: true });
  }
}
