// One event in detail: facts, query, headers, and the body rendered by its
// kind (JSON tree, form table, text, hex). Only text nodes carry payload.
import { el, copyText, formatBytes, shellQuote, toast } from './dom.js';

const TEXT_LIMIT = 1024 * 1024;   // characters of text shown
const HEX_LIMIT = 16 * 1024;      // bytes of a binary body shown as hex
const JSON_NODES = 5000;          // tree nodes before "use Raw"

export function decodePath(s) {
  try { return decodeURIComponent(s.replace(/\+/g, ' ')); } catch { return s; }
}

const header = (ev, name) => (ev.headers.find(([n]) => n === name) || [])[1];

/** Size, media type and (for UTF-8 bodies) text of an event's body. */
export function bodyInfo(ev) {
  const type = (header(ev, 'content-type') || '').split(';')[0].trim().toLowerCase();
  if (ev.body_encoding === 'base64') {
    const pad = ev.body.endsWith('==') ? 2 : ev.body.endsWith('=') ? 1 : 0;
    return { type, size: (ev.body.length / 4) * 3 - pad, text: null };
  }
  return { type, size: new TextEncoder().encode(ev.body).length, text: ev.body };
}

export function deliveryText(d) {
  if (!d) return 'not acked by a subscriber yet';
  return `${d.status == null ? 'acked' : `answered ${d.status}`} at ${new Date(d.acked_at).toLocaleString()}`;
}

const bytesOf = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));

function toBase64(bytes) {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(bin);
}

/** A curl command that replays `ev` against `target` exactly: same method,
 *  sub-path, query, headers and body bytes. */
export function curlCommand(ev, target) {
  const url = target.replace(/\/+$/, '') + ev.path + (ev.query ? `?${ev.query}` : '');
  const args = ['curl', '-g', ev.method === 'HEAD' ? '--head' : `-X ${shellQuote(ev.method)}`, shellQuote(url)];
  // Connection-level headers describe the original hop; curl sets its own.
  const hop = ['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'expect', 'te',
    'upgrade', 'proxy-connection', 'trailer'];
  const sent = new Set();
  for (const [n, v] of ev.headers) {
    sent.add(n);
    if (!hop.includes(n)) args.push(`-H ${shellQuote(v === '' ? `${n};` : `${n}: ${v}`)}`);
  }
  // Take away the headers curl adds when the original had none.
  for (const n of ['user-agent', 'accept']) if (!sent.has(n)) args.push(`-H ${shellQuote(`${n}:`)}`);
  if (ev.body === '') return args.join(' ');
  if (!sent.has('content-type')) args.push(`-H ${shellQuote('content-type:')}`);
  // Bodies a terminal could mangle (NUL, CR, escapes) travel as base64.
  if (ev.body_encoding === 'utf8' && !/[\u0000-\u0008\u000b-\u001f\u007f]/.test(ev.body)) {
    return `${args.join(' ')} --data-raw ${shellQuote(ev.body)}`;
  }
  const b64 = ev.body_encoding === 'base64' ? ev.body : toBase64(new TextEncoder().encode(ev.body));
  return `printf %s ${shellQuote(b64)} | base64 -d | ${args.join(' ')} --data-binary @-`;
}

function table(rows, caption) {
  return el('table', { class: 'kv' }, el('caption', { class: 'sr' }, caption),
    el('tbody', {}, rows.map(([k, v]) => el('tr', {}, el('th', { scope: 'row' }, k), el('td', {}, v)))));
}

// ---- body views -----------------------------------------------------------------

class RawNumber { constructor(source) { this.source = source; } }

/** Parses JSON keeping each number's exact text where the browser allows it
 *  (ids beyond 2^53 would otherwise show rounded). */
function parseJson(text) {
  return JSON.parse(text, (k, v, ctx) =>
    (typeof v === 'number' && ctx && typeof ctx.source === 'string' ? new RawNumber(ctx.source) : v));
}

/** One JSON value as a row; objects and arrays fold (`<details>`), `key` in front. */
function jsonNode(v, depth, st, key) {
  st.n += 1;
  const label = key === undefined ? [] : [el('span', { class: 'j-key' }, JSON.stringify(key)), ': '];
  const leaf = (cls, text) => el('div', { class: 'j-row' }, label, el('span', { class: cls }, text));
  if (v instanceof RawNumber) return leaf('j-num', v.source);
  if (v === null) return leaf('j-lit', 'null');
  if (typeof v === 'number') return leaf('j-num', String(v));
  if (typeof v === 'boolean') return leaf('j-lit', String(v));
  if (typeof v === 'string') return leaf('j-str', JSON.stringify(v));
  const arr = Array.isArray(v);
  const keys = arr ? v.map((_, i) => i) : Object.keys(v);
  const n = keys.length;
  if (n === 0) return leaf('j-punct', arr ? '[]' : '{}');
  const kids = el('div', { class: 'j-kids' });
  for (const k of keys) {
    if (st.n > JSON_NODES) { kids.append(el('div', { class: 'note' }, '… too large to show here; see Raw')); break; }
    kids.append(jsonNode(v[k], depth + 1, st, arr ? undefined : k));
  }
  return el('details', { class: 'j-node', open: depth < 3 },
    el('summary', {}, label, el('span', { class: 'j-punct' },
      arr ? `[ ${n} item${n === 1 ? '' : 's'} ]` : `{ ${n} key${n === 1 ? '' : 's'} }`)), kids);
}

function rawText(text) {
  const cut = text.length > TEXT_LIMIT;
  return [cut ? el('p', { class: 'note' }, `Showing the first ${formatBytes(TEXT_LIMIT)} of the text.`) : null,
    el('pre', { class: 'raw' }, cut ? text.slice(0, TEXT_LIMIT) : text)];
}

function hexDump(bytes) {
  const shown = bytes.subarray(0, HEX_LIMIT);
  const lines = [];
  for (let i = 0; i < shown.length; i += 16) {
    const chunk = [...shown.subarray(i, i + 16)];
    const hex = chunk.map((b) => b.toString(16).padStart(2, '0')).join(' ').padEnd(47);
    const ascii = chunk.map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    lines.push(`${i.toString(16).padStart(8, '0')}  ${hex}  ${ascii}`);
  }
  const note = `Binary body (not UTF-8), ${bytes.length.toLocaleString()} bytes` +
    (bytes.length > HEX_LIMIT ? `; the first ${formatBytes(HEX_LIMIT)} as hex.` : ', as hex.');
  return [el('p', { class: 'note' }, note), el('pre', { class: 'hex' }, lines.join('\n'))];
}

/** The views a body offers, best first: [[label, () => nodes], ...]. */
function bodyViews(ev, info) {
  if (ev.body_encoding === 'base64') return [['Hex', () => hexDump(bytesOf(ev.body))]];
  const text = ev.body;
  const raw = ['Raw', () => rawText(text)];
  const looksJson = /json/.test(info.type) || /^\s*[[{]/.test(text);
  if (looksJson && text.length <= 4 * TEXT_LIMIT) {
    try {
      const value = parseJson(text);
      return [['Pretty', () => [jsonNode(value, 0, { n: 0 })]], raw];
    } catch { /* not JSON after all */ }
  }
  if (info.type === 'application/x-www-form-urlencoded') {
    const fields = [...new URLSearchParams(text)];
    return [['Fields', () => [fields.length ? table(fields, 'Form fields') : el('p', { class: 'note' }, 'No fields')]], raw];
  }
  return [raw];
}

function bodySection(ev, info) {
  const title = el('h3', {}, `Body · ${formatBytes(info.size)}${info.type ? ` · ${info.type}` : ''}`);
  if (ev.body === '') return el('section', { class: 'block' }, title, el('p', { class: 'note' }, 'No body.'));
  const views = bodyViews(ev, info);
  const out = el('div', { class: 'body-view' });
  const show = (i) => {
    out.replaceChildren(...views[i][1]().filter(Boolean));
    tabs.forEach((t, j) => t.setAttribute('aria-pressed', String(i === j)));
  };
  const tabs = views.length > 1
    ? views.map(([label], i) => el('button', { type: 'button', class: 'button small', onclick: () => show(i) }, label))
    : [];
  const section = el('section', { class: 'block' }, el('div', { class: 'block-head' }, title,
    tabs.length ? el('div', { class: 'seg', role: 'group', 'aria-label': 'Body view' }, tabs) : null), out);
  show(0);
  return section;
}

// ---- the pane ---------------------------------------------------------------------

/** Fills `pane` with `entry`'s event. `ctx`: target(), redeliver(seq), back(), open(seq). */
export function renderDetail(pane, entry, ctx) {
  const { ev, info } = entry;
  const query = ev.query ? [...new URLSearchParams(ev.query)] : [];
  const of = header(ev, 'x-hookpipe-redelivery-of');
  const facts = [
    ['Received', `${new Date(ev.received_at).toLocaleString()} (${ev.received_at})`],
    ['Request', el('code', {}, `${ev.method} ${ev.path || '/'}${ev.query ? `?${ev.query}` : ''}`)],
    ['Event id', el('code', {}, ev.id)],
    ['Delivery', el('span', { class: 'detail-delivery' }, deliveryText(entry.delivery))],
    of ? ['Redelivery of', el('button', { type: 'button', class: 'linklike', onclick: () => ctx.open(Number(of)) }, `#${of}`)] : null,
  ].filter(Boolean);
  const copyCurl = async () => {
    const target = ctx.target();
    const ok = await copyText(curlCommand(ev, target));
    toast(ok ? `Copied a curl command that replays #${ev.seq} against ${target}` : 'Could not copy', ok ? 'ok' : 'error');
  };
  pane.replaceChildren(...[
    el('div', { class: 'detail-head' },
      el('button', { type: 'button', class: 'button small back', onclick: ctx.back }, '← Events'),
      el('h2', {}, el('span', { class: `method m-${ev.method}` }, ev.method), ' ',
        el('span', { class: 'path' }, decodePath(ev.path) || '/'), ' ', el('span', { class: 'seq' }, `#${ev.seq}`))),
    el('div', { class: 'actions' },
      el('button', { type: 'button', class: 'button', onclick: copyCurl }, 'Copy as curl'),
      el('button', { type: 'button', class: 'button', onclick: () => ctx.redeliver(ev.seq) }, 'Redeliver')),
    el('dl', { class: 'facts' }, facts.map(([k, v]) => [el('dt', {}, k), el('dd', {}, v)])),
    query.length ? el('section', { class: 'block' }, el('h3', {}, `Query · ${query.length}`), table(query, 'Query parameters')) : null,
    el('section', { class: 'block' }, el('h3', {}, `Headers · ${ev.headers.length}`), table(ev.headers, 'Headers')),
    bodySection(ev, info),
  ].filter(Boolean));
}

/** Updates the delivery line of the event shown in `pane`. */
export function paintDetailDelivery(pane, entry) {
  const slot = pane.querySelector('.detail-delivery');
  if (slot) slot.textContent = deliveryText(entry.delivery);
}
