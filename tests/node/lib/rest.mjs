// Hand-signed REST requests, for the cases the official SDK will not produce
// (expired timestamps, over-limit requests it refuses to send, bad signatures).
import crypto from 'node:crypto';

export function md5(text) {
  return crypto.createHash('md5').update(text).digest('hex');
}

/**
 * Builds the signed URL per the Pusher REST auth scheme:
 * string to sign = METHOD \n PATH \n sorted "k=v" query (auth_signature excluded, values unescaped).
 */
export function signedUrl(server, app, { method = 'GET', path, query = {}, body, timestamp, signWith } = {}) {
  const params = {
    auth_key: app.key,
    auth_timestamp: String(timestamp ?? Math.floor(Date.now() / 1000)),
    auth_version: '1.0',
    ...query,
  };
  if (body !== undefined && body !== '' && params.body_md5 === undefined) params.body_md5 = md5(body);
  const sorted = Object.keys(params)
    .map((k) => [k.toLowerCase(), params[k]])
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
    .map(([k, v]) => `${k}=${v}`)
    .join('&');
  const signature = crypto
    .createHmac('sha256', signWith ?? app.secret)
    .update(`${method.toUpperCase()}\n${path}\n${sorted}`)
    .digest('hex');
  // Values go into the URL unescaped, as the SDK does; only escape what a URL cannot carry.
  const qs = Object.entries(params)
    .map(([k, v]) => `${k}=${encodeURI(String(v))}`)
    .join('&');
  return `${server.httpBase}${path}?${qs}&auth_signature=${signature}`;
}

/** Sends a signed request; resolves {status, text, json}. */
export async function signedRequest(server, app, opts) {
  const url = signedUrl(server, app, opts);
  const init = { method: opts.method || 'GET', signal: AbortSignal.timeout(10000) };
  if (opts.body !== undefined) {
    init.body = opts.body;
    init.headers = { 'content-type': 'application/json' };
  }
  const res = await fetch(url, init);
  const text = await res.text();
  let json;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: res.status, text, json };
}

export async function plainRequest(url, init = {}) {
  const res = await fetch(url, { signal: AbortSignal.timeout(10000), ...init });
  const text = await res.text();
  return { status: res.status, text };
}

/** Calls an SDK method and returns {status, json|body} whether it succeeds or not. */
export async function sdkCall(promiseOrFn) {
  try {
    const res = await (typeof promiseOrFn === 'function' ? promiseOrFn() : promiseOrFn);
    const text = await res.text();
    let json;
    try {
      json = JSON.parse(text);
    } catch {
      json = undefined;
    }
    return { status: res.status, json, text };
  } catch (e) {
    if (e && typeof e.status === 'number') return { status: e.status, text: e.body, error: e };
    throw e;
  }
}
