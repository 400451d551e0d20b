// Sinew Spine adapter: applies model change messages from a Pusher channel to Spine models.
// This file has no imports so the UMD bundle (scripts/build.mjs) can be generated from it.

const CHANGE_TYPES = ['create', 'update', 'destroy'];
// Events pusher-js and the protocol use for themselves, Sinew's own (sinew:recovery_failed from
// sinew-recover), and client events (peers, not the server).
const NOT_MODEL_EVENTS = /^(pusher:|pusher_internal:|sinew:|client-)/;
const SOCKET_HEADER = 'X-Pusher-Socket-ID';

const hasOwn = (obj, key) => Object.prototype.hasOwnProperty.call(obj, key);
const isPlainObject = (v) => v !== null && typeof v === 'object' && !Array.isArray(v);

/** An Error with a machine-readable `code` and the offending event name and data. */
function syncError(code, message, detail) {
  const err = new Error(message);
  err.name = 'SinewSpineError';
  err.code = code;
  Object.assign(err, detail);
  return err;
}

/**
 * Parses and checks one message. Returns { type, className, id, record } or throws a SinewSpineError.
 * `models` is the registry passed to sync(); nothing else is ever looked up.
 */
export function parseChange(data, models, eventName) {
  const detail = { event: eventName, data };
  let msg = data;
  if (typeof msg === 'string') {
    try {
      msg = JSON.parse(msg);
    } catch (e) {
      throw syncError('malformed', `event "${eventName}" is not JSON`, detail);
    }
  }
  if (!isPlainObject(msg)) throw syncError('malformed', `event "${eventName}" is not a JSON object`, detail);
  const { type, class: className } = msg;
  if (typeof type !== 'string' || !CHANGE_TYPES.includes(type)) {
    throw syncError('unknown_type', `event "${eventName}" has unknown type ${JSON.stringify(type)}`, detail);
  }
  if (typeof className !== 'string' || !hasOwn(models, className) || typeof models[className] !== 'function') {
    throw syncError('unknown_class', `event "${eventName}" names unknown class ${JSON.stringify(className)}`, detail);
  }
  const record = msg.record;
  if (record !== undefined && record !== null && !isPlainObject(record)) {
    throw syncError('malformed', `event "${eventName}": record is not an object`, detail);
  }
  if (type !== 'destroy' && !isPlainObject(record)) {
    throw syncError('malformed', `event "${eventName}": ${type} without a record`, detail);
  }
  let id = msg.id;
  if ((id === undefined || id === null) && isPlainObject(record)) id = record.id;
  if (!(typeof id === 'string' && id !== '') && !(typeof id === 'number' && Number.isFinite(id))) {
    throw syncError('malformed', `event "${eventName}" has no usable id`, detail);
  }
  return { type, className, id: String(id), record: isPlainObject(record) ? record : null };
}

/** The record's declared attributes only (Model.configure('Page', 'title', ...)), plus the id. */
function pickAttributes(Model, record, id) {
  const attrs = {};
  const declared = Array.isArray(Model.attributes) ? Model.attributes : [];
  for (const name of declared) {
    if (name !== '__proto__' && name !== 'constructor' && hasOwn(record, name)) attrs[name] = record[name];
  }
  attrs.id = id;
  return attrs;
}

function saveOrReport(record, options) {
  if (record.save(options) === false) {
    const why = typeof record.validate === 'function' ? record.validate() : undefined;
    throw syncError('invalid_record', `record ${record.id} failed validation: ${why}`, {});
  }
}

/** Applies a parsed change without any Ajax request. Returns what happened. */
export function applyChange(change, models, spine) {
  const Model = models[change.className];
  const run = () => {
    const existing = Model.exists(change.id) ? Model.find(change.id) : null;
    const quiet = { ajax: false };
    switch (change.type) {
      case 'create':
        if (existing) return 'skipped';
        saveOrReport(new Model(pickAttributes(Model, change.record, change.id)), quiet);
        return 'created';
      case 'update':
        if (!existing) {
          saveOrReport(new Model(pickAttributes(Model, change.record, change.id)), quiet);
          return 'created';
        }
        existing.load(pickAttributes(Model, change.record, change.id));
        saveOrReport(existing, quiet);
        return 'updated';
      default:
        if (!existing) return 'ignored';
        existing.destroy(quiet);
        return 'destroyed';
    }
  };
  const ajax = spine && spine.Ajax;
  return ajax && typeof ajax.disable === 'function' ? ajaxDisabled(ajax, run) : run();
}

function ajaxDisabled(ajax, fn) {
  let result;
  ajax.disable(() => {
    result = fn();
  });
  return result;
}

/** The default resync: reload the model from its Ajax endpoint, dropping records deleted meanwhile. */
export function fetchModel(Model) {
  if (typeof Model.fetch === 'function') return Model.fetch({}, { clear: true });
  return undefined;
}

/**
 * Keeps Spine models in step with a Sinew (Pusher) channel. See README.md for the options.
 * Throws only for a wrong setup (missing pusher or models); never while handling messages.
 * `builtins.recover` is sinew-recover's recover(), passed in by the ESM entry and the UMD bundle
 * (this file imports nothing).
 */
export function sync(options, builtins) {
  const opts = options || {};
  const { pusher, models } = opts;
  if (!pusher || typeof pusher.subscribe !== 'function' || !pusher.connection) {
    throw new TypeError('SinewSpine.sync: `pusher` must be a pusher-js instance');
  }
  if (!isPlainObject(models) && typeof models !== 'function') {
    throw new TypeError('SinewSpine.sync: `models` must be an object such as { Page, Comment }');
  }
  if (typeof opts.channel !== 'string' && !(opts.channel && typeof opts.channel.bind_global === 'function')) {
    throw new TypeError('SinewSpine.sync: `channel` must be a channel name or a pusher-js channel');
  }
  const spine = opts.spine || (typeof globalThis !== 'undefined' ? globalThis.Spine : undefined);
  const only = opts.events ? new Set([].concat(opts.events)) : null;
  const resync = opts.resync === false ? null : typeof opts.resync === 'function' ? opts.resync : fetchModel;
  const warn = opts.warn === false ? () => {} : (m) => typeof console !== 'undefined' && console.warn(m);
  const ownsChannel = typeof opts.channel === 'string';
  // With recovery (the default when sinew-recover is at hand), what was missed while away is
  // replayed through the channel and the resync runs only when that fails. Started before the
  // subscription so the channel is watched from its first event.
  const recoverFn = builtins && builtins.recover;
  const ownsRecovery = opts.recover !== false && typeof opts.recover !== 'object' && typeof recoverFn === 'function';
  const recovery = ownsRecovery ? recoverFn(pusher) : opts.recover && typeof opts.recover === 'object' ? opts.recover : null;
  const channel = ownsChannel ? pusher.subscribe(opts.channel) : opts.channel;
  const listeners = { error: [], change: [], resync: [], recovered: [] };

  function emit(name, arg) {
    for (const fn of listeners[name].slice()) {
      try {
        fn(arg);
      } catch (e) {
        warn(`[sinew-spine] a "${name}" listener threw: ${e && e.message}`);
      }
    }
  }

  function report(err) {
    warn(`[sinew-spine] ${err.message}; skipped`);
    emit('error', err);
  }

  function handle(eventName, data) {
    if (NOT_MODEL_EVENTS.test(eventName) || (only && !only.has(eventName))) return;
    try {
      const change = parseChange(data, models, eventName);
      const result = applyChange(change, models, spine);
      emit('change', { ...change, result, event: eventName });
    } catch (e) {
      report(e && e.code ? e : syncError('apply_failed', `applying "${eventName}" failed: ${e && e.message}`, { event: eventName, data, cause: e }));
    }
  }

  // The browser's own Spine Ajax requests carry the socket id, so the server can pass it to
  // trigger(..., { socket_id }) and the change does not come back to the browser that made it.
  function updateSocketHeader() {
    const ajax = spine && spine.Ajax;
    if (opts.ajaxHeader === false || !ajax || !ajax.defaults) return;
    const headers = ajax.defaults.headers || (ajax.defaults.headers = {});
    const id = pusher.connection.socket_id;
    if (id && pusher.connection.state === 'connected') headers[SOCKET_HEADER] = id;
    else delete headers[SOCKET_HEADER];
  }

  // After a reconnect, resync once the channel is subscribed again: whatever is published from then
  // on arrives as events, and whatever was missed before is in the fetched state.
  let wasConnected = pusher.connection.state === 'connected';
  let missedWhileAway = false;
  function onState(change) {
    updateSocketHeader();
    if (change.current === 'connected') {
      if (wasConnected) missedWhileAway = true;
      wasConnected = true;
    }
  }

  function runResync() {
    if (!resync) return;
    for (const name of Object.keys(models)) {
      try {
        const result = resync(models[name], name);
        if (result && typeof result.then === 'function') {
          result.then(undefined, (e) => report(syncError('resync_failed', `resync of ${name} failed: ${e && e.message}`, { model: name, cause: e })));
        }
        emit('resync', { model: name });
      } catch (e) {
        report(syncError('resync_failed', `resync of ${name} failed: ${e && e.message}`, { model: name, cause: e }));
      }
    }
  }

  function onSubscribed() {
    if (!missedWhileAway) return;
    missedWhileAway = false;
    if (!recovery) runResync();
  }

  // sinew-recover's verdicts for this channel: replayed, or reload (no history, a gap longer than
  // the history, nothing received before the drop, ...).
  function onRecoveryFailed(name) {
    if (name === channel.name) runResync();
  }
  function onRecovered(name, info) {
    if (name === channel.name) emit('recovered', info);
  }

  channel.bind_global(handle);
  channel.bind('pusher:subscription_succeeded', onSubscribed);
  if (recovery) recovery.on('recovery_failed', onRecoveryFailed).on('recovered', onRecovered);
  pusher.connection.bind('state_change', onState);
  updateSocketHeader();

  return {
    channel,
    /** The sinew-recover handle in use, or null (recover: false). */
    recovery,
    /** Listens for 'error' (skipped message), 'change' (applied message), 'resync' or 'recovered'. */
    on(name, fn) {
      if (!listeners[name]) throw new TypeError(`SinewSpine: unknown event "${name}"`);
      listeners[name].push(fn);
      return this;
    },
    off(name, fn) {
      if (listeners[name]) listeners[name] = listeners[name].filter((f) => f !== fn);
      return this;
    },
    /** Applies one message as if it had arrived on the channel. */
    apply(data, eventName = 'change') {
      handle(eventName, data);
    },
    /** The header to add to your own (non-Spine) requests: { 'X-Pusher-Socket-ID': id } or {}. */
    headers() {
      const id = pusher.connection.socket_id;
      return id && pusher.connection.state === 'connected' ? { [SOCKET_HEADER]: id } : {};
    },
    /** Runs the resync hook for every model now. */
    resync: runResync,
    /** Stops listening; unsubscribes when sync() subscribed the channel itself. */
    stop() {
      channel.unbind_global(handle);
      channel.unbind('pusher:subscription_succeeded', onSubscribed);
      pusher.connection.unbind('state_change', onState);
      if (recovery) recovery.off('recovery_failed', onRecoveryFailed).off('recovered', onRecovered);
      if (ownsRecovery) recovery.stop();
      const ajax = spine && spine.Ajax;
      if (ajax && ajax.defaults && ajax.defaults.headers) delete ajax.defaults.headers[SOCKET_HEADER];
      if (ownsChannel) pusher.unsubscribe(channel.name);
    },
  };
}
