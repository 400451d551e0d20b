// Redis for the cluster tests: a shared server at REDIS_URL, or a private `redis-server` process
// the test starts, stops and restarts itself. Commands go over a plain socket in RESP.
import { spawn } from 'node:child_process';
import net from 'node:net';
import { sleep } from './util.mjs';

export const REDIS_URL = process.env.REDIS_URL || 'redis://127.0.0.1:6379';

function hostPort(url) {
  const u = new URL(url);
  return { host: u.hostname || '127.0.0.1', port: Number(u.port || 6379), password: u.password || null };
}

function encode(args) {
  let out = `*${args.length}\r\n`;
  for (const a of args) {
    const s = String(a);
    out += `$${Buffer.byteLength(s)}\r\n${s}\r\n`;
  }
  return out;
}

/** Parses one RESP reply from the start of `buf`; returns [value, rest] or null when incomplete. */
function parse(buf) {
  const nl = buf.indexOf('\r\n');
  if (nl < 0) return null;
  const type = buf[0];
  const line = buf.slice(1, nl);
  const rest = buf.slice(nl + 2);
  switch (type) {
    case '+':
      return [line, rest];
    case '-':
      return [new Error(line), rest];
    case ':':
      return [Number(line), rest];
    case '$': {
      const n = Number(line);
      if (n < 0) return [null, rest];
      if (Buffer.byteLength(rest) < n + 2) return null;
      return [rest.slice(0, n), rest.slice(n + 2)];
    }
    case '*': {
      const n = Number(line);
      if (n < 0) return [null, rest];
      const items = [];
      let r = rest;
      for (let i = 0; i < n; i += 1) {
        const p = parse(r);
        if (!p) return null;
        items.push(p[0]);
        r = p[1];
      }
      return [items, r];
    }
    default:
      throw new Error(`unexpected RESP reply: ${JSON.stringify(buf.slice(0, 40))}`);
  }
}

/** Sends one command to the Redis at `url` and resolves with its reply (rejects on errors). */
export function redisCommand(url, ...args) {
  const { host, port, password } = hostPort(url);
  return new Promise((resolve, reject) => {
    const sock = net.connect({ host, port });
    let buf = '';
    let expected = 1;
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`redis ${args[0]} timed out`));
    }, 3000);
    const done = (fn, v) => {
      clearTimeout(timer);
      sock.destroy();
      fn(v);
    };
    sock.setEncoding('utf8');
    sock.on('connect', () => {
      if (password) {
        expected = 2;
        sock.write(encode(['AUTH', password]));
      }
      sock.write(encode(args));
    });
    sock.on('data', (d) => {
      buf += d;
      for (;;) {
        const p = parse(buf);
        if (!p) return;
        buf = p[1];
        expected -= 1;
        if (expected === 0) {
          if (p[0] instanceof Error) done(reject, p[0]);
          else done(resolve, p[0]);
          return;
        }
      }
    });
    sock.on('error', (e) => done(reject, e));
  });
}

/** Deletes every key under `prefix` (`prefix:*`). */
export async function deletePrefix(url, prefix) {
  const script = "local k = redis.call('KEYS', ARGV[1]) for i = 1, #k do redis.call('DEL', k[i]) end return #k";
  return redisCommand(url, 'EVAL', script, 0, `${prefix}:*`);
}

/** A port nothing listens on right now. */
export function sparePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Starts `redis-server` on `port` without persistence; resolves once it answers PING.
 * Returns {url, port, proc, kill()} where kill() ends it with SIGKILL and waits for the exit.
 */
export async function startRedisServer(port, ms = 10000) {
  const proc = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  proc.stdout.on('data', (d) => (output += d));
  proc.stderr.on('data', (d) => (output += d));
  const exited = new Promise((resolve) => proc.on('exit', (code, signal) => resolve({ code, signal })));
  let spawnError = null;
  proc.on('error', (e) => (spawnError = e));
  const url = `redis://127.0.0.1:${port}`;
  const deadline = Date.now() + ms;
  for (;;) {
    if (spawnError) throw new Error(`cannot start redis-server: ${spawnError.message}`);
    if (proc.exitCode !== null) throw new Error(`redis-server exited at start:\n${output}`);
    try {
      if ((await redisCommand(url, 'PING')) === 'PONG') break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      proc.kill('SIGKILL');
      throw new Error(`redis-server on port ${port} did not answer PING within ${ms} ms:\n${output}`);
    }
    await sleep(50);
  }
  return {
    url,
    port,
    proc,
    get output() {
      return output;
    },
    async kill() {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
      await exited;
    },
  };
}
