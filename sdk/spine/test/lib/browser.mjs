// A browser-like client in jsdom: the demo's own scripts (jQuery, Spine, Spine.Ajax, pusher-js's web
// build and the sinew-spine UMD bundle) loaded from the demo backend, with a Spine `Note` model.
import { JSDOM, VirtualConsole } from 'jsdom';
import { pusherOptions, waitFor } from './stack.mjs';

const SCRIPTS = ['jquery.js', 'spine.js', 'spine-ajax.js', 'pusher.js', 'sinew-spine.js'];
const open = new Set();

// `wsPort` connects pusher-js elsewhere than sinew's port (a proxy that can cut the line).
export async function openClient(sinew, demo, { channel = demo.channel, syncOptions = {}, wsPort } = {}) {
  const warnings = [];
  const virtualConsole = new VirtualConsole();
  virtualConsole.on('warn', (...args) => warnings.push(args.join(' ')));
  virtualConsole.on('jsdomError', (e) => warnings.push(`jsdomError: ${e.message}`));
  const html = `<!doctype html><html><head>${SCRIPTS.map((s) => `<script src="/vendor/${s}"></script>`).join('')}</head><body></body></html>`;
  const dom = new JSDOM(html, { url: `${demo.url}/`, runScripts: 'dangerously', resources: 'usable', virtualConsole });
  const w = dom.window;
  await new Promise((resolve) => w.addEventListener('load', resolve));

  const Note = w.Spine.Model.sub();
  Note.configure('Note', 'title', 'done');
  Note.extend(w.Spine.Model.Ajax);
  const ajaxSent = [];
  w.jQuery(w.document).on('ajaxSend', (_e, _xhr, settings) => ajaxSent.push({ type: settings.type, url: settings.url, headers: { ...settings.headers } }));
  let ajaxDone = 0;
  Note.bind('ajaxSuccess', () => (ajaxDone += 1));

  const pusher = new w.Pusher('app-key', { ...pusherOptions(sinew, demo), ...(wsPort ? { wsPort, wssPort: wsPort } : {}) });
  const live = w.SinewSpine.sync({ pusher, channel, models: { Note }, ...syncOptions });
  const errors = [];
  const changes = [];
  const received = [];
  const resyncs = [];
  const recovered = [];
  live.on('error', (e) => errors.push(e));
  live.on('change', (c) => changes.push(c));
  live.on('resync', (r) => resyncs.push(r.model));
  live.on('recovered', (info) => recovered.push(info));
  live.channel.bind_global((event, data) => {
    if (!/^pusher(_internal)?:/.test(event)) received.push({ event, data });
  });
  await waitFor(() => live.channel.subscribed, `subscription to ${channel}`);
  // As the demo page does: load the current notes once subscribed.
  Note.fetch();
  await waitFor(() => ajaxDone === 1, 'the first fetch');

  const client = {
    w,
    Note,
    pusher,
    live,
    errors,
    changes,
    received,
    resyncs,
    recovered,
    warnings,
    ajaxSent,
    /** Spine.Ajax requests that completed so far. */
    get ajaxDone() {
      return ajaxDone;
    },
    /** The model store, sorted by id, as plain objects. */
    store() {
      return [...Note.all()]
        .map((r) => ({ id: String(r.id), title: r.title, done: r.done }))
        .sort((a, b) => a.id.localeCompare(b.id, 'en', { numeric: true }));
    },
    close() {
      open.delete(client);
      live.stop();
      pusher.disconnect();
      w.close();
    },
  };
  open.add(client);
  return client;
}

export function closeAll() {
  for (const c of [...open]) c.close();
}
