// Per-file (or per-describe) fixture: one sinew process, one app back end.
import { before, after, afterEach } from 'node:test';
import { startSinew, DEFAULT_APP } from './server.mjs';
import { startAuthServer } from './auth-server.mjs';
import { disconnectAll } from './pusher-client.mjs';
import { closeAllRaw } from './raw.mjs';
import { sleep } from './util.mjs';

let counter = 0;
/** A channel/user name unique within the run. */
export function uniq(prefix) {
  counter += 1;
  return `${prefix}${process.pid}-${counter}-${Math.random().toString(36).slice(2, 8)}`;
}

export function appEnv(app, extra = {}) {
  return {
    SINEW_APP_ID: String(app.id),
    SINEW_APP_KEY: app.key,
    SINEW_APP_SECRET: app.secret,
    ...extra,
  };
}

/**
 * Registers before/after hooks that start sinew (options as for startSinew) and
 * an auth back end for `app`. Returns a context filled in by the before hook.
 */
export function useSinew(options = {}, app = DEFAULT_APP) {
  const ctx = { app };
  before(async () => {
    ctx.server = await startSinew(options);
    ctx.auth = await startAuthServer(ctx.server, app);
    ctx.sdk = ctx.auth.sdk;
  });
  afterEach(async () => {
    disconnectAll();
    closeAllRaw();
    // Let the server notice the closes before the next test counts anything.
    await sleep(50);
  });
  after(async () => {
    disconnectAll();
    closeAllRaw();
    if (ctx.auth) await ctx.auth.stop();
    if (ctx.server) {
      if (process.env.SINEW_E2E_VERBOSE) {
        process.stderr.write(`--- sinew stdout ---\n${ctx.server.stdout}\n--- sinew stderr ---\n${ctx.server.stderr}\n`);
      }
      await ctx.server.stop();
    }
  });
  return ctx;
}

export { DEFAULT_APP };
