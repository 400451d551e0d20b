// The console's script (served inside console.html's <script> element). Keeps the last MAX events,
// shows those matching the filters, one row per webhook batch (updated by each attempt).
(function () {
  'use strict';
  var MAX = 2000;
  var TYPES = ['connection_opened', 'connection_closed', 'subscribed', 'subscription_refused', 'unsubscribed',
    'channel_occupied', 'channel_vacated', 'member_added', 'member_removed', 'rest_publish', 'rest_refused',
    'client_event', 'webhook', 'debug_publish', 'skipped'];
  var COMMON = ['type', 'app_id', 'time_ms'];
  var token = new URLSearchParams(location.search).get('token') || '';
  var q = '?token=' + encodeURIComponent(token);
  var log = byId('log');
  var records = [];
  var batches = {};
  var held = [];
  var paused = false;
  var live = false;

  function byId(id) { return document.getElementById(id); }
  function cell(cls, value) {
    var td = document.createElement('td');
    if (cls) td.className = cls;
    td.textContent = value == null ? '' : String(value);
    return td;
  }
  function pad(n, w) { return String(n).padStart(w, '0'); }
  function clock(ms) {
    var d = new Date(ms);
    return pad(d.getHours(), 2) + ':' + pad(d.getMinutes(), 2) + ':' + pad(d.getSeconds(), 2) + '.' + pad(d.getMilliseconds(), 3);
  }
  function channelOf(ev) { return ev.channel || (ev.channels || []).join(', '); }
  function eventOf(ev) { return ev.event || (ev.names || []).join(', '); }
  function failed(ev) {
    return ev.type === 'subscription_refused' || ev.type === 'rest_refused' || ev.type === 'skipped' ||
      (ev.type === 'webhook' && ev.outcome !== 'delivered') ||
      (ev.type === 'connection_closed' && (ev.code == null || ev.code >= 4000));
  }
  function rest(ev) {
    var o = {};
    Object.keys(ev).forEach(function (k) { if (COMMON.indexOf(k) < 0) o[k] = ev[k]; });
    return o;
  }
  function cut(s, n) { return s.length > n ? s.slice(0, n) + '…' : s; }
  function attemptsText(rec) {
    return rec.attempts.map(function (a) { return a.status != null ? a.status : a.error; }).join(' → ');
  }
  function summary(rec) {
    var ev = rec.ev;
    switch (ev.type) {
      case 'subscription_refused': return ev.status + ' ' + ev.reason;
      case 'rest_refused': return ev.method + ' ' + ev.path + ' → ' + ev.status + ' ' + ev.reason;
      case 'connection_closed':
        if (ev.code == null) return ev.reason;
        return 'code ' + ev.code + ' ' + (ev.reason || '(no reason: the client closed)');
      case 'webhook':
        return ev.outcome + ' · attempt ' + ev.attempt + ' · ' + attemptsText(rec) +
          (ev.next_retry_in_ms != null ? ' · next retry in ' + ev.next_retry_in_ms + ' ms' : '') +
          (ev.dead_lettered ? ' · dead-lettered' : '') + ' · ' + ev.events + ' event(s) to ' + ev.url;
      case 'member_added':
        return 'user ' + ev.user_id + (ev.user_info != null ? ' ' + cut(JSON.stringify(ev.user_info), 200) : '');
      case 'skipped': return ev.count + ' events skipped (the console fell behind)';
      default:
        var o = rest(ev);
        Object.keys(o).forEach(function (k) {
          if (o[k] == null || ['channel', 'channels', 'event', 'socket_id'].indexOf(k) >= 0) delete o[k];
        });
        return Object.keys(o).length ? cut(JSON.stringify(o), 300) : '';
    }
  }
  function full(rec) {
    var o = Object.assign({}, rec.ev);
    if (rec.attempts) {
      o.attempts = rec.attempts.map(function (a) {
        return { attempt: a.attempt, time_ms: a.time_ms, status: a.status, error: a.error, outcome: a.outcome,
          next_retry_in_ms: a.next_retry_in_ms };
      });
    }
    return JSON.stringify(o, null, 2);
  }

  // Filters.
  var f = {};
  ['search', 'app', 'type', 'channel', 'event', 'socket'].forEach(function (k) {
    var input = byId('f-' + k);
    f[k] = input;
    input.addEventListener('input', refilter);
    input.addEventListener('change', refilter);
  });
  function val(k) { return f[k].value.trim().toLowerCase(); }
  function has(text, want) { return !want || String(text == null ? '' : text).toLowerCase().indexOf(want) >= 0; }
  function matches(rec) {
    var ev = rec.ev;
    return (!val('app') || String(ev.app_id) === f.app.value) && (!val('type') || ev.type === f.type.value) &&
      has(channelOf(ev), val('channel')) && has(eventOf(ev), val('event')) && has(ev.socket_id, val('socket')) &&
      has(full(rec), val('search'));
  }
  function show(rec) {
    var hidden = !matches(rec);
    rec.tr.hidden = hidden;
    if (rec.detail) rec.detail.hidden = hidden;
  }
  function counts() {
    var shown = records.filter(function (r) { return !r.tr.hidden; }).length;
    byId('shown').textContent = shown + ' of ' + records.length + ' shown' + (held.length ? ', ' + held.length + ' held' : '');
  }
  function refilter() { records.forEach(show); counts(); }
  function option(select, value, label) {
    for (var i = 0; i < select.options.length; i++) if (select.options[i].value === value) return;
    var o = document.createElement('option');
    o.value = value;
    o.textContent = label || value;
    select.appendChild(o);
  }
  TYPES.forEach(function (t) { option(f.type, t); });

  // Rows.
  function render(rec) {
    var ev = rec.ev;
    var tr = rec.tr || document.createElement('tr');
    tr.className = 'event event-' + ev.type + (failed(ev) ? ' failure' : '');
    tr.textContent = '';
    [cell('time', clock(rec.time)), cell('app', ev.app_id), cell('type', ev.type),
      cell('channel', channelOf(ev)), cell('name', eventOf(ev)), cell('socket', ev.socket_id), cell('summary', summary(rec))]
      .forEach(function (td) { tr.appendChild(td); });
    rec.tr = tr;
    if (rec.detail) rec.detail.querySelector('pre').textContent = full(rec);
    show(rec);
  }
  function toggle(rec) {
    if (rec.detail) {
      rec.detail.remove();
      rec.detail = null;
      return;
    }
    var tr = document.createElement('tr');
    tr.className = 'detail';
    var td = document.createElement('td');
    td.colSpan = 7;
    var copy = document.createElement('button');
    copy.type = 'button';
    copy.className = 'copy';
    copy.textContent = 'Copy JSON';
    var pre = document.createElement('pre');
    pre.textContent = full(rec);
    copy.addEventListener('click', function (e) {
      e.stopPropagation();
      copyText(pre.textContent).then(function () { copy.textContent = 'Copied'; }, function () { copy.textContent = 'Copy failed'; });
    });
    td.appendChild(copy);
    td.appendChild(pre);
    tr.appendChild(td);
    rec.tr.after(tr);
    rec.detail = tr;
  }
  function copyText(text) {
    if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
    var area = document.createElement('textarea');
    area.value = text;
    document.body.appendChild(area);
    area.select();
    var ok = document.execCommand('copy');
    area.remove();
    return ok ? Promise.resolve() : Promise.reject(new Error('copy refused'));
  }
  function drop(rec) {
    rec.tr.remove();
    if (rec.detail) rec.detail.remove();
    if (rec.batchKey) delete batches[rec.batchKey];
  }
  function add(ev) {
    if (ev.app_id != null && ev.app_id !== '') option(f.app, String(ev.app_id));
    option(f.type, ev.type);
    if (ev.type === 'webhook') {
      var key = ev.app_id + '/' + ev.batch;
      var known = batches[key];
      if (known) {
        known.ev = ev;
        known.attempts.push(ev);
        render(known);
        return;
      }
      var rec = { ev: ev, attempts: [ev], batchKey: key };
      batches[key] = rec;
      return insert(rec);
    }
    insert({ ev: ev });
  }
  function insert(rec) {
    rec.time = rec.ev.time_ms || Date.now();
    render(rec);
    rec.tr.addEventListener('click', function () { toggle(rec); });
    log.insertBefore(rec.tr, log.firstChild);
    records.push(rec);
    while (records.length > MAX) drop(records.shift());
  }
  function receive(ev) {
    if (paused) {
      held.push(ev);
      if (held.length > MAX) held.shift();
    } else {
      add(ev);
    }
    counts();
  }

  byId('pause').addEventListener('click', function () {
    paused = !paused;
    this.textContent = paused ? 'Resume' : 'Pause';
    status();
    if (!paused) held.splice(0).forEach(add);
    counts();
  });
  byId('clear').addEventListener('click', function () {
    records.splice(0).forEach(drop);
    held = [];
    batches = {};
    counts();
  });
  function status() { byId('status').textContent = !live ? 'reconnecting…' : paused ? 'paused' : 'live'; }

  var source = new EventSource('/debug/events' + q);
  source.onopen = function () { live = true; status(); };
  source.onerror = function () { live = false; status(); };
  source.onmessage = function (m) {
    var ev;
    try { ev = JSON.parse(m.data); } catch (e) { return; }
    receive(ev);
  };

  // Apps and webhook counters, every two seconds.
  function text(s) { return document.createTextNode(String(s)); }
  function refresh() {
    fetch('/debug/state' + q).then(function (r) { return r.json(); }).then(function (s) {
      var apps = byId('apps');
      var select = byId('app');
      apps.textContent = '';
      s.apps.forEach(function (a) {
        option(select, a.id, a.id + ' (' + a.key + ')');
        option(f.app, a.id);
        var div = document.createElement('div');
        div.className = 'app';
        div.appendChild(text('App ' + a.id + ': ' + a.connections + ' connections, ' + a.stats.events_published + ' published, ' + a.stats.deliveries + ' deliveries'));
        var ul = document.createElement('ul');
        a.channels.forEach(function (c) {
          var li = document.createElement('li');
          li.appendChild(text(c.name + ' (' + c.subscription_count + ')' + (c.members.length ? ' members: ' + c.members.join(', ') : '')));
          ul.appendChild(li);
        });
        div.appendChild(ul);
        apps.appendChild(div);
      });
      var w = s.webhooks;
      byId('webhooks').textContent = 'sent ' + w.sent + ', retried ' + w.retried + ', failed ' + w.failed + ', dead-lettered ' + w.dead_lettered + ', lost ' + w.lost;
    }).catch(function () {});
  }
  refresh();
  setInterval(refresh, 2000);

  byId('publish').addEventListener('submit', function (e) {
    e.preventDefault();
    var body = { app_id: byId('app').value, channel: byId('channel').value, event: byId('event').value, data: byId('data').value };
    fetch('/debug/publish' + q, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })
      .then(function (r) { return r.json(); })
      .then(function (r) { byId('published').textContent = r.error ? r.error : 'delivered to ' + r.delivered; });
  });
})();
