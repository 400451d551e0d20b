// Fan-out measured with the real clients: pusher-js subscribers and the official `pusher` Node SDK
// publishing, against any Pusher-protocol server (run on demand, never in CI; not a *.test.mjs).
// A cross-check of `sinew-bench fanout` with a load generator whose per-message cost is the one
// browsers and Node apps pay, so that the server's figures do not depend on one generator.
//
//   taskset -c 1 node tests/node/bench-fanout.mjs --port 6001 --server-pid PID \
//     [--subscribers 1000] [--messages 200] [--rate 20] [--payload 64] [--label sinew/js-fanout-1k] [--json FILE]
//
// Every subscriber must receive every event once and in order; the process exits with status 2
// when one does not. The server's CPU time comes from /proc/PID/stat over the publishing window
// (subscriptions made first, their cost left out).
import { execSync } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import Pusher from 'pusher';
import PusherClient from 'pusher-js';

const opts = {
  host: '127.0.0.1',
  port: 6001,
  'server-pid': 0,
  'app-id': 'bench-app',
  key: 'bench-key',
  secret: 'bench-secret',
  subscribers: 1000,
  messages: 200,
  rate: 20,
  payload: 64,
  'connect-batch': 200,
  label: '',
  json: '',
};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const name = argv[i].replace(/^--/, '');
  if (!(name in opts) || argv[i + 1] === undefined) {
    console.error(`unknown or incomplete option ${argv[i]}`);
    process.exit(64);
  }
  opts[name] = typeof opts[name] === 'number' ? Number(argv[i + 1]) : argv[i + 1];
}

const CHANNEL = 'js-fanout';
const EVENT = 'tick';
const TICKS = Number(execSync('getconf CLK_TCK').toString().trim()) || 100;
const now = () => performance.timeOrigin + performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The server's user + system CPU seconds. */
function serverCpu() {
  if (!opts['server-pid']) return null;
  const stat = readFileSync(`/proc/${opts['server-pid']}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 of the whole line, 12 and 13 after the name.
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

const failures = [];
const latencies = [];
let delivered = 0;
let subscribed = 0;
/** Set when the run ends: the subscribers' own disconnects are not failures. */
let closing = false;

/** One pusher-js subscriber that checks it sees events 0, 1, 2, ... once each. */
function subscriber(n) {
  const client = new PusherClient(opts.key, {
    cluster: 'local',
    wsHost: opts.host,
    wsPort: opts.port,
    forceTLS: false,
    enabledTransports: ['ws'],
    disableStats: true,
  });
  let next = 0;
  const channel = client.subscribe(CHANNEL);
  channel.bind('pusher:subscription_succeeded', () => subscribed++);
  channel.bind(EVENT, (data) => {
    latencies.push(now() - data.t);
    if (data.i !== next && failures.length < 20) failures.push(`subscriber ${n}: event ${data.i} where ${next} was due`);
    next = data.i + 1;
    delivered++;
  });
  client.connection.bind('state_change', ({ current }) => {
    if (!closing && current !== 'connected' && current !== 'connecting' && failures.length < 20) {
      failures.push(`subscriber ${n}: connection ${current}`);
    }
  });
  return client;
}

async function until(cond, ms, what) {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

function percentile(sorted, p) {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

const round = (x, d = 3) => Math.round(x * 10 ** d) / 10 ** d;

async function main() {
  const clients = [];
  // In batches: a burst of thousands of handshakes at once would measure the accept backlog.
  for (let n = 0; n < opts.subscribers; n += opts['connect-batch']) {
    for (let k = n; k < Math.min(opts.subscribers, n + opts['connect-batch']); k++) clients.push(subscriber(k));
    await until(() => subscribed >= clients.length, 30000, `${clients.length} subscriptions`);
  }
  const publisher = new Pusher({
    appId: opts['app-id'],
    key: opts.key,
    secret: opts.secret,
    host: opts.host,
    port: String(opts.port),
    useTLS: false,
  });
  const pad = 'x'.repeat(opts.payload);
  await sleep(500);
  const cpu0 = serverCpu();
  const gen0 = process.cpuUsage();
  const t0 = now();
  const pending = [];
  for (let i = 0; i < opts.messages; i++) {
    const due = t0 + (i * 1000) / opts.rate;
    const wait = due - now();
    if (wait > 0) await sleep(wait);
    pending.push(
      publisher.trigger(CHANNEL, EVENT, { i, t: now(), pad }).then(
        (res) => {
          if (res.status !== 200) failures.push(`publish ${i}: HTTP ${res.status}`);
        },
        (e) => failures.push(`publish ${i}: ${e.message || e}`),
      ),
    );
  }
  await Promise.all(pending);
  const expected = opts.messages * opts.subscribers;
  try {
    await until(() => delivered >= expected, 10000 + (expected / 1000) * 50, 'the deliveries');
  } catch (e) {
    failures.push(`${expected - delivered} of ${expected} events did not arrive`);
  }
  const wall = (now() - t0) / 1000;
  const cpu1 = serverCpu();
  const gen = process.cpuUsage(gen0);
  closing = true;
  for (const c of clients) c.disconnect();
  if (delivered > expected) failures.push(`${delivered - expected} events arrived twice`);

  latencies.sort((a, b) => a - b);
  const generatorCpu = (gen.user + gen.system) / 1e6;
  const figures = {
    delivered,
    expected,
    deliveries_per_s: round(delivered / wall, 0),
    generator_cpu_s: round(generatorCpu, 2),
    generator_busy: round(generatorCpu / wall, 2),
    latency: {
      p50_ms: round(percentile(latencies, 50)),
      p90_ms: round(percentile(latencies, 90)),
      p99_ms: round(percentile(latencies, 99)),
      max_ms: round(latencies[latencies.length - 1] || 0),
      samples: latencies.length,
    },
  };
  if (cpu0 !== null && cpu1 !== null) {
    figures.server_cpu_s = round(cpu1 - cpu0, 2);
    figures.server_cpu_us_per_delivery = delivered ? round(((cpu1 - cpu0) * 1e6) / delivered) : null;
  }
  const report = {
    scenario: 'js-fanout',
    ok: failures.length === 0,
    failures,
    notes: ['pusher-js subscribers, official pusher SDK publisher'],
    params: { subscribers: opts.subscribers, messages: opts.messages, rate: opts.rate, payload: opts.payload, label: opts.label },
    figures,
  };
  if (opts.json) appendFileSync(opts.json, JSON.stringify(report) + '\n');
  console.log(`== js-fanout (${report.ok ? 'ok' : 'FAILED'}) ${opts.label}`);
  const flat = { ...figures, ...Object.fromEntries(Object.entries(figures.latency).map(([k, v]) => [`latency.${k}`, v])) };
  delete flat.latency;
  for (const [k, v] of Object.entries(flat).sort()) console.log(`   ${k.padEnd(36)} ${v}`);
  for (const f of failures) console.log(`   FAILED: ${f}`);
  process.exit(report.ok ? 0 : 2);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
