/*! sinew-recover 0.1.0 | MIT | generated from src/core.mjs by scripts/build.mjs */
(function (root, factory) {
  if (typeof define === 'function' && define.amd) {
    define([], factory);
  } else if (typeof module === 'object' && module.exports) {
    module.exports = factory();
  } else {
    root.SinewRecover = factory();
  }
})(typeof self !== 'undefined' ? self : this, function () {
  'use strict';
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

  return { recover: recover, version: "0.1.0" };
});
