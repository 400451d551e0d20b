/*! sinew-spine 0.2.0 | MIT | generated from src/core.mjs and sinew-recover 0.1.0 by scripts/build.mjs */
(function (root, factory) {
  if (typeof define === 'function' && define.amd) {
    define(['spine'], factory);
  } else if (typeof module === 'object' && module.exports) {
    var spine;
    try {
      spine = require('spine');
    } catch (e) {
      spine = undefined;
    }
    module.exports = factory(spine);
  } else {
    root.SinewSpine = factory(root.Spine);
  }
})(typeof self !== 'undefined' ? self : this, function (Spine) {
  'use strict';
  // sinew-recover 0.1.0, in its own scope.
  var SinewRecover = (function () {
    // How the pieces fit (pusher-js 8, checked against its source):
    // - A transport (pusher.connection.connection.transport, a new one per connection) emits
    //   'message' with the raw frame text in `m.data`. pusher-js's own listener on that event decodes
    //   the frame and, synchronously, calls channel.handleEvent, which calls channel.emit.
    // - We replace `emit` on each transport object: it notes the frame's `sinew_position`, calls the
    //   original emit (so pusher-js delivers the event) and forgets the position afterwards. Our
    //   replacement of `emit` on each channel object therefore sees the position of the very frame
    //   being delivered, and decides: hand it to the app's callbacks, drop it (seen already) or hold it
    //   (the channel is resuming).

    const KEY = typeof Symbol === 'function' ? Symbol.for('sinew-recover') : '__sinewRecover';
    const MARK = '"sinew_position"';
    // Events that are pusher-js's own bookkeeping: always passed straight through.
    const PASS_THROUGH = /^pusher:/;
    const DEFAULT_TIMEOUT_MS = 10000;

    const isPosition = (p) => p !== null && typeof p === 'object' && typeof p.epoch === 'string' && typeof p.offset === 'number' && isFinite(p.offset);

    /** The channel, event and position of one raw frame, or null when it carries no position. */
    function positionOf(raw) {
      if (!raw || typeof raw.data !== 'string' || raw.data.indexOf(MARK) === -1) return null;
      let frame;
      try {
        frame = JSON.parse(raw.data);
      } catch (e) {
        return null;
      }
      if (!frame || typeof frame.channel !== 'string' || typeof frame.event !== 'string') return null;
      const pos = frame.sinew_position;
      return isPosition(pos) ? { channel: frame.channel, event: frame.event, epoch: pos.epoch, offset: pos.offset, used: false } : null;
    }

    function parseData(data) {
      if (typeof data !== 'string') return data || {};
      try {
        return JSON.parse(data);
      } catch (e) {
        return {};
      }
    }

    // An exception thrown by an application callback must not stop the delivery of the events after
    // it; it is rethrown on its own so it still shows up as uncaught.
    function rethrowLater(e) {
      setTimeout(() => {
        throw e;
      }, 0);
    }

    /** The shared state for one pusher-js instance; recover() hands out handles to it. */
    function createCore(pusher, options) {
      const timeoutMs = typeof options.timeoutMs === 'number' ? options.timeoutMs : DEFAULT_TIMEOUT_MS;
      const handles = new Set();
      const states = new Map(); // channel name -> per-channel state
      let watched = null; // { transport, original, ownEmit }: the current connection's transport
      let current = null; // the positioned frame pusher-js is delivering right now
      const own = (obj, key) => Object.prototype.hasOwnProperty.call(obj, key);
      const originals = { subscribe: own(pusher, 'subscribe') ? pusher.subscribe : null, unsubscribe: own(pusher, 'unsubscribe') ? pusher.unsubscribe : null };

      function notify(name, channelName, info) {
        for (const h of handles) h.dispatch(name, channelName, info);
      }

      // ---- transports ----------------------------------------------------------------------------
      function watchTransport() {
        const conn = pusher.connection && pusher.connection.connection;
        const transport = conn && conn.transport;
        if (!transport || typeof transport.emit !== 'function' || transport[KEY]) return;
        const original = transport.emit;
        const ownEmit = own(transport, 'emit');
        transport[KEY] = true;
        transport.emit = function (name, payload) {
          if (name !== 'message') return original.apply(this, arguments);
          const pos = positionOf(payload);
          if (pos) adopt(pusher.channel(pos.channel));
          const outer = current;
          current = pos;
          try {
            return original.apply(this, arguments);
          } finally {
            current = outer;
          }
        };
        // The previous transport (if any) belongs to a closed connection: left as it is.
        watched = { transport, original, ownEmit };
      }

      function onState() {
        if (pusher.connection.state === 'connected') watchTransport();
      }

      // ---- channels ------------------------------------------------------------------------------
      function adopt(channel) {
        if (!channel || typeof channel.emit !== 'function') return null;
        let st = states.get(channel.name);
        if (st && st.channel === channel) return st;
        if (st) release(st); // an unsubscribe and a new subscribe: a new channel object, a fresh start
        st = {
          channel,
          name: channel.name,
          original: channel.emit,
          ownEmit: own(channel, 'emit'),
          last: null, // { epoch, offset } of the last positioned event handed to the app
          subscribedBefore: !!channel.subscribed,
          resuming: false,
          held: [],
          timer: null,
        };
        states.set(channel.name, st);
        channel.emit = function (eventName, data, metadata) {
          let pos = null;
          if (current && !current.used && current.channel === st.name && current.event === eventName) {
            pos = current;
            pos.used = true;
          }
          intercept(st, eventName, data, metadata, pos);
          return this;
        };
        return st;
      }

      /** Hands one event to the channel's ordinary callbacks (bind, bind_global). */
      function deliver(st, eventName, data, metadata) {
        try {
          if (metadata === undefined) st.original.call(st.channel, eventName, data);
          else st.original.call(st.channel, eventName, data, metadata);
        } catch (e) {
          rethrowLater(e);
        }
      }

      function fail(st, reason) {
        notify('recovery_failed', st.name, { reason });
        deliver(st, 'sinew:recovery_failed', { reason });
      }

      /** A live (not held) event: delivered unless already seen; a new epoch means we cannot know. */
      function deliverLive(st, ev) {
        const pos = ev.pos;
        if (pos && st.last) {
          if (pos.epoch === st.last.epoch && pos.offset <= st.last.offset) return false;
          if (pos.epoch !== st.last.epoch) fail(st, 'epoch_changed');
        }
        if (pos) st.last = { epoch: pos.epoch, offset: pos.offset };
        deliver(st, ev.event, ev.data, ev.metadata);
        return true;
      }

      function intercept(st, eventName, data, metadata, pos) {
        if (eventName === 'pusher:subscription_succeeded') return onSubscribed(st, data, metadata);
        if (PASS_THROUGH.test(eventName)) return deliver(st, eventName, data, metadata);
        if (st.resuming && eventName === 'sinew:resumed') return finish(st, true, parseData(data));
        if (st.resuming && eventName === 'sinew:resume_failed') return finish(st, false, parseData(data));
        const ev = { event: eventName, data, metadata, pos };
        if (st.resuming) st.held.push(ev);
        else deliverLive(st, ev);
      }

      function onSubscribed(st, data, metadata) {
        const again = st.subscribedBefore;
        st.subscribedBefore = true;
        if (again && st.last) {
          // Send first: everything arriving from now on is held until the answer.
          st.resuming = true;
          clearTimeout(st.timer);
          st.timer = setTimeout(() => finish(st, false, { reason: 'timeout' }), timeoutMs);
          pusher.send_event('sinew:resume', { epoch: st.last.epoch, offset: st.last.offset }, st.name);
        }
        deliver(st, 'pusher:subscription_succeeded', data, metadata);
        // Nothing positioned was ever seen on this channel (no history, or no event yet): whatever
        // was published while away cannot be asked for.
        if (again && !st.last) fail(st, 'no_position');
      }

      /** The answer to our resume (or a timeout): deliver what was replayed and held, in order. */
      function finish(st, ok, answer) {
        if (!st.resuming) return;
        st.resuming = false;
        clearTimeout(st.timer);
        st.timer = null;
        const held = st.held;
        st.held = [];
        if (ok) {
          // The replay and any live events that came meanwhile, by offset; duplicates drop out in
          // deliverLive. Events of another epoch or without a position follow in arrival order.
          const inEpoch = held.filter((ev) => ev.pos && ev.pos.epoch === answer.epoch);
          const rest = held.filter((ev) => !(ev.pos && ev.pos.epoch === answer.epoch));
          inEpoch.sort((a, b) => a.pos.offset - b.pos.offset);
          let replayed = 0;
          for (const ev of inEpoch) if (deliverLive(st, ev)) replayed += 1;
          notify('recovered', st.name, { epoch: answer.epoch, offset: st.last.offset, replayed });
          for (const ev of rest) deliverLive(st, ev);
          return;
        }
        const reason = typeof answer.reason === 'string' ? answer.reason : 'unknown';
        // The app reloads from its backend now. Positions count on from the channel's current one
        // when the answer has it, else from the next event (which is then no epoch change), so a
        // later reconnect can resume again.
        fail(st, reason);
        st.last = typeof answer.epoch === 'string' && typeof answer.offset === 'number' ? { epoch: answer.epoch, offset: answer.offset } : null;
        // Live events that came while we waited were published before the app's reload; they are
        // delivered anyway, in arrival order, rather than lost (a change applied twice is the lesser harm).
        for (const ev of held) {
          const pos = ev.pos;
          if (pos && (!st.last || (pos.epoch === st.last.epoch && pos.offset > st.last.offset))) st.last = { epoch: pos.epoch, offset: pos.offset };
          deliver(st, ev.event, ev.data, ev.metadata);
        }
      }

      /** Puts the channel's emit back and hands over anything still held (unless `discard`). */
      function release(st, discard) {
        clearTimeout(st.timer);
        if (st.ownEmit) st.channel.emit = st.original;
        else delete st.channel.emit;
        const held = st.held;
        st.held = [];
        st.resuming = false;
        if (!discard) for (const ev of held) deliver(st, ev.event, ev.data, ev.metadata);
      }

      // ---- setup and teardown --------------------------------------------------------------------
      const call = (method, args) => (originals[method] || Object.getPrototypeOf(pusher)[method]).apply(pusher, args);
      pusher.subscribe = function () {
        const channel = call('subscribe', arguments);
        adopt(channel);
        return channel;
      };
      // Unsubscribed (not merely a pending subscription cancelled): the app wants nothing more from
      // the channel, held events included.
      pusher.unsubscribe = function (name) {
        const result = call('unsubscribe', arguments);
        const st = states.get(name);
        if (st && pusher.channel(name) !== st.channel) {
          release(st, true);
          states.delete(name);
        }
        return result;
      };
      const all = pusher.allChannels ? pusher.allChannels() : [];
      for (const ch of all) adopt(ch);
      pusher.connection.bind('state_change', onState);
      watchTransport();

      return {
        handles,
        position(name) {
          const st = states.get(name);
          return st && st.last ? { epoch: st.last.epoch, offset: st.last.offset } : null;
        },
        destroy() {
          pusher.connection.unbind('state_change', onState);
          if (watched) {
            if (watched.ownEmit) watched.transport.emit = watched.original;
            else delete watched.transport.emit;
            delete watched.transport[KEY];
            watched = null;
          }
          for (const st of states.values()) release(st);
          states.clear();
          for (const method of ['subscribe', 'unsubscribe']) {
            if (originals[method]) pusher[method] = originals[method];
            else delete pusher[method];
          }
          delete pusher[KEY];
        },
      };
    }

    /**
     * Starts recovering missed events on `pusher` (a pusher-js 8 client). Calling it again for the
     * same client returns another handle to the same recovery (each with its own listeners).
     * options.timeoutMs: how long to wait for the server's answer to a resume (default 10000).
     */
    function recover(pusher, options) {
      if (!pusher || typeof pusher.subscribe !== 'function' || !pusher.connection || typeof pusher.send_event !== 'function') {
        throw new TypeError('sinew-recover: `pusher` must be a pusher-js instance');
      }
      const core = pusher[KEY] || (pusher[KEY] = createCore(pusher, options || {}));
      const listeners = { recovery_failed: [], recovered: [] };
      let stopped = false;
      const handle = {
        dispatch(name, channelName, info) {
          for (const fn of listeners[name].slice()) {
            try {
              if (name === 'recovery_failed') fn(channelName, info.reason);
              else fn(channelName, info);
            } catch (e) {
              rethrowLater(e);
            }
          }
        },
      };
      core.handles.add(handle);
      return {
        /** 'recovery_failed' (channelName, reason) or 'recovered' (channelName, { epoch, offset, replayed }). */
        on(name, fn) {
          if (!listeners[name]) throw new TypeError(`sinew-recover: unknown event "${name}"`);
          listeners[name].push(fn);
          return this;
        },
        off(name, fn) {
          if (listeners[name]) listeners[name] = listeners[name].filter((f) => f !== fn);
          return this;
        },
        /** The position of the last event handed to the app on that channel, or null. */
        position(channelName) {
          return core.position(channelName);
        },
        /** Stops this handle; the last one to stop puts pusher-js back as it was. */
        stop() {
          if (stopped) return;
          stopped = true;
          core.handles.delete(handle);
          if (core.handles.size === 0 && pusher[KEY] === core) core.destroy();
        },
      };
    }

    return { recover: recover };
  })();

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
  function parseChange(data, models, eventName) {
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
  function applyChange(change, models, spine) {
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
  function fetchModel(Model) {
    if (typeof Model.fetch === 'function') return Model.fetch({}, { clear: true });
    return undefined;
  }

  /**
   * Keeps Spine models in step with a Sinew (Pusher) channel. See README.md for the options.
   * Throws only for a wrong setup (missing pusher or models); never while handling messages.
   * `builtins.recover` is sinew-recover's recover(), passed in by the ESM entry and the UMD bundle
   * (this file imports nothing).
   */
  function sync(options, builtins) {
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

  function syncWithSpine(options) {
    var spine = (options && options.spine) || Spine || (typeof globalThis !== 'undefined' ? globalThis.Spine : undefined);
    return sync(Object.assign({}, options, { spine: spine }), { recover: SinewRecover.recover });
  }

  return {
    sync: syncWithSpine,
    parseChange: parseChange,
    applyChange: applyChange,
    fetchModel: fetchModel,
    recover: SinewRecover.recover,
    version: "0.2.0",
  };
});
