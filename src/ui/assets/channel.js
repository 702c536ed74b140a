// The channel page: history on open, then live over the WebSocket, with
// reconnects that resume from the last seen seq. Payloads are rendered as
// text only (see dom.js and detail.js).
import {
  $, el, relayBase, loadToken, saveToken, forgetToken, shellQuote, formatBytes, toast,
  wireCopyButtons,
} from './dom.js';
import {
  renderDetail, paintDetailDelivery, decodePath, bodyInfo, deliveryText,
} from './detail.js';

const HISTORY = 200;        // events loaded on open
const KEEP = 1000;          // events kept in the page
const ACK_POLL_MS = 3000;   // how often delivery results are refreshed
const BACKOFF_MS = [1000, 2000, 4000, 8000, 10000];

const channel = decodeURIComponent(location.pathname.split('/')[1] || '');
const api = `/api/channels/${encodeURIComponent(channel)}`;
const S = {
  token: null,
  entries: new Map(),   // seq -> { ev, row, delivery }
  cursor: 0,            // the WebSocket resumes after this seq
  selected: null,
  ws: null,
  attempt: 0,
  retryTimer: null,
  countdown: null,
  started: false,
};

// ---- token -------------------------------------------------------------

function takeTokenFromUrl() {
  const url = new URL(location.href);
  const t = url.searchParams.get('token');
  if (t === null) return;
  if (t) saveToken(channel, t);
  url.searchParams.delete('token');
  history.replaceState(null, '', url.pathname + url.search + url.hash);
}

function showGate(message) {
  stopLive();
  $('#app').hidden = true;
  $('#gate').hidden = false;
  $('#gate-error').textContent = message || '';
  setConn('offline', 'Not connected');
  $('#gate-token').focus();
}

$('#gate-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const t = $('#gate-token').value.trim();
  if (!t) return;
  saveToken(channel, t);
  $('#gate-token').value = '';
  start();
});

$('#forget').addEventListener('click', () => {
  forgetToken(channel);
  showGate('The token was removed from this browser.');
});

// ---- HTTP --------------------------------------------------------------

class HttpError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

async function call(path, init = {}) {
  const res = await fetch(api + path, {
    ...init,
    headers: { authorization: `Bearer ${S.token}`, ...(init.headers || {}) },
    cache: 'no-store',
  });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new HttpError(res.status, body.error || `HTTP ${res.status}`);
  return body;
}

/** 401 and 404 end the session; anything else is worth retrying. */
function fatal(err) {
  if (err.status === 401) { forgetToken(channel); showGate('The relay rejected this token.'); return true; }
  if (err.status === 404) { stopLive(); setConn('offline', 'No such channel'); return true; }
  return false;
}

// ---- connection ----------------------------------------------------------

const SPOKEN = { live: 'Live', connecting: 'Connecting', reconnecting: 'Connection lost, reconnecting', offline: 'Not connected' };

function setConn(state, text) {
  // The visible text counts down; screen readers hear only the changes of state.
  if ($('#conn').dataset.state !== state) $('#conn-sr').textContent = SPOKEN[state];
  $('#conn').dataset.state = state;
  $('#conn-text').textContent = text;
  $('#retry').hidden = state !== 'reconnecting';
}

function stopLive() {
  S.started = false;
  clearTimeout(S.retryTimer);
  clearInterval(S.countdown);
  if (S.ws) { S.ws.onclose = null; S.ws.close(); S.ws = null; }
}

async function start() {
  stopLive();
  S.token = loadToken(channel);
  if (!S.token) { showGate(''); return; }
  $('#gate').hidden = true;
  $('#app').hidden = false;
  S.started = true;
  renderSetup();
  setConn('connecting', 'Loading history…');
  try {
    if (S.entries.size === 0) await loadHistory();
  } catch (err) {
    if (!fatal(err)) scheduleReconnect();
    return;
  }
  connect();
}

async function loadHistory() {
  const probe = await call('/events?since=0&limit=1');
  const since = Math.max(0, probe.head - HISTORY);
  const page = await call(`/events?since=${since}&limit=${HISTORY}`);
  for (const ev of page.events) add(ev, ev.delivery);
  S.cursor = Math.max(S.cursor, page.next_since);
  $('#setup').open = S.entries.size === 0;
  refreshCount();
}

function connect() {
  if (!S.started) return;
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  const url = `${proto}//${location.host}/${encodeURIComponent(channel)}` +
    `?token=${encodeURIComponent(S.token)}&since=${S.cursor}`;
  setConn(S.attempt ? 'reconnecting' : 'connecting', S.attempt ? 'Reconnecting…' : 'Connecting…');
  const ws = new WebSocket(url);
  let opened = false;
  S.ws = ws;
  ws.onopen = () => {
    opened = true;
    S.attempt = 0;
    setConn('live', 'Live');
  };
  ws.onmessage = (m) => {
    let frame;
    try { frame = JSON.parse(m.data); } catch { return; }
    onFrame(frame);
  };
  ws.onclose = async () => {
    S.ws = null;
    if (!S.started) return;
    if (!opened) {
      // The browser hides why an upgrade failed: ask the history API.
      try { await call(`/events?since=${S.cursor}&limit=1`); } catch (err) { if (fatal(err)) return; }
    }
    scheduleReconnect();
  };
}

function scheduleReconnect() {
  if (!S.started) return;
  const base = BACKOFF_MS[Math.min(S.attempt, BACKOFF_MS.length - 1)];
  const delay = Math.round(base * (0.85 + Math.random() * 0.3));
  S.attempt += 1;
  const due = Date.now() + delay;
  const tick = () => {
    const s = Math.max(1, Math.ceil((due - Date.now()) / 1000));
    setConn('reconnecting', `Reconnecting in ${s} s (after #${S.cursor})`);
  };
  tick();
  clearInterval(S.countdown);
  S.countdown = setInterval(tick, 500);
  clearTimeout(S.retryTimer);
  S.retryTimer = setTimeout(retryNow, delay);
}

function retryNow() {
  clearTimeout(S.retryTimer);
  clearInterval(S.countdown);
  if (!S.started || S.ws) return;
  if (S.entries.size === 0 && S.cursor === 0) start(); else connect();
}

$('#retry').addEventListener('click', retryNow);
window.addEventListener('online', () => { if ($('#conn').dataset.state === 'reconnecting') retryNow(); });

function onFrame(f) {
  if (f.type === 'event') {
    add(f);
    S.cursor = Math.max(S.cursor, f.seq);
    refreshCount();
  } else if (f.type === 'gap') {
    notice(`Events #${f.from}–#${f.to} were dropped by retention before this page could load them.`);
    S.cursor = Math.max(S.cursor, f.to);
  } else if (f.type === 'reset') {
    notice(`The relay's data was reset; showing events after #${f.head}.`);
    S.cursor = f.head;
  }
}

// ---- the list -------------------------------------------------------------

const list = $('#event-list');

function add(ev, delivery) {
  if (S.entries.has(ev.seq)) return;
  const entry = { ev, delivery: delivery || null, info: bodyInfo(ev) };
  entry.row = row(entry);
  S.entries.set(ev.seq, entry);
  // Newest first; events almost always arrive in order, so this is the top.
  let before = list.firstElementChild;
  while (before && Number(before.dataset.seq || Infinity) > ev.seq) before = before.nextElementSibling;
  list.insertBefore(entry.row, before);
  entry.row.hidden = !matches(entry);
  trim();
}

function trim() {
  if (S.entries.size <= KEEP) return;
  const seqs = [...S.entries.keys()].sort((a, b) => a - b);
  for (const seq of seqs.slice(0, S.entries.size - KEEP)) {
    S.entries.get(seq).row.remove();
    S.entries.delete(seq);
  }
}

function notice(text) {
  list.prepend(el('li', { class: 'notice' }, text));
}

function row(entry) {
  const { ev, info } = entry;
  const when = new Date(ev.received_at);
  const btn = el('button', { type: 'button', class: 'event', 'data-seq': ev.seq },
    el('span', { class: `method m-${ev.method}` }, ev.method),
    el('span', { class: 'path' }, decodePath(ev.path) || '/',
      ev.query ? el('span', { class: 'query' }, `?${ev.query}`) : null),
    el('time', { class: 'time', datetime: ev.received_at, title: ev.received_at },
      when.toLocaleTimeString()),
    el('span', { class: 'meta' },
      `#${ev.seq} · ${formatBytes(info.size)}${info.type ? ` · ${info.type}` : ''}`),
    el('span', { class: 'delivery' }));
  btn.addEventListener('click', () => select(ev.seq, true));
  const li = el('li', { 'data-seq': ev.seq }, btn);
  paintDelivery(entry, btn);
  return li;
}

function paintDelivery(entry, btn = entry.row.firstElementChild) {
  const slot = btn.querySelector('.delivery');
  const d = entry.delivery;
  slot.textContent = !d ? '' : d.status == null ? 'acked' : `→ ${d.status}`;
  slot.dataset.kind = !d ? '' : d.status == null ? 'acked' : d.status < 400 ? 'ok' : 'failed';
  slot.title = d ? `Delivery: ${deliveryText(d)}` : '';
}

function select(seq, focusDetail) {
  const entry = S.entries.get(seq);
  if (!entry) return;
  S.selected = seq;
  for (const b of list.querySelectorAll('button[aria-current]')) b.removeAttribute('aria-current');
  entry.row.firstElementChild.setAttribute('aria-current', 'true');
  document.body.classList.add('detail-open');
  renderDetail($('#detail'), entry, {
    target: () => $('#target').value.trim() || 'http://localhost:3000',
    redeliver,
    back: closeDetail,
    open: (s) => select(s, true),
  });
  if (focusDetail) $('#detail').focus({ preventScroll: true });
}

function closeDetail() {
  document.body.classList.remove('detail-open');
  const entry = S.entries.get(S.selected);
  if (entry) entry.row.firstElementChild.focus();
}

async function redeliver(seq) {
  try {
    const r = await call(`/events/${seq}/redeliver`, { method: 'POST' });
    toast(`Redelivered #${seq} as #${r.seq}`);
  } catch (err) {
    if (!fatal(err)) toast(`Redeliver failed: ${err.message}`, 'error');
  }
}

// ---- filters ----------------------------------------------------------------

const F = { method: $('#f-method'), path: $('#f-path'), text: $('#f-text') };

function matches({ ev, info }) {
  const method = F.method.value;
  const path = F.path.value.trim().toLowerCase();
  const text = F.text.value.trim().toLowerCase();
  if (method && ev.method !== method) return false;
  if (path && !`${ev.path} ${decodePath(ev.path)}`.toLowerCase().includes(path)) return false;
  if (text) {
    const hay = [ev.path, decodePath(ev.query), ...ev.headers.flat(), info.text ?? ''];
    if (!hay.some((s) => s.toLowerCase().includes(text))) return false;
  }
  return true;
}

function refreshCount() {
  let shown = 0;
  for (const entry of S.entries.values()) {
    entry.row.hidden = !matches(entry);
    if (!entry.row.hidden) shown += 1;
  }
  const total = S.entries.size;
  $('#count').textContent = shown === total ? `${total} event${total === 1 ? '' : 's'}`
    : `${shown} of ${total} events`;
  $('#empty').hidden = total > 0;
}

for (const input of Object.values(F)) input.addEventListener('input', refreshCount);

// ---- setup panel -----------------------------------------------------------

function renderSetup() {
  const webhook = `${relayBase()}/${channel}`;
  const target = $('#target').value.trim() || 'http://localhost:3000';
  const show = $('#show-token').checked;
  const client = (t) => `hookpipe-client --url ${shellQuote(webhook)} --token ${shellQuote(t)} --target ${shellQuote(target)}`;
  const smee = (t) => `npx smee-client --url ${shellQuote(`${webhook}?token=${t}`)} --target ${shellQuote(target)}`;
  $('#channel-id').textContent = channel;
  $('#webhook-url').textContent = webhook;
  for (const [id, make] of [['cmd-client', client], ['cmd-smee', smee]]) {
    const node = $(`#${id}`);
    node.textContent = make(show ? S.token : '••••••••••••');
    node.dataset.value = make(S.token);
  }
}

$('#target').value = localStorage.getItem('hookpipe:target') || 'http://localhost:3000';
$('#target').addEventListener('input', () => {
  localStorage.setItem('hookpipe:target', $('#target').value.trim());
  renderSetup();
});
$('#show-token').addEventListener('change', renderSetup);

let testCount = 0;
$('#send-test').addEventListener('click', async () => {
  testCount += 1;
  const sample = {
    event: 'hookpipe.test',
    message: 'A sample webhook sent from the inspector',
    n: testCount,
    sent_at: new Date().toISOString(),
    data: { id: `test_${Date.now()}`, amount: 4200, currency: 'eur', tags: ['sample', 'inspector'] },
  };
  try {
    const res = await fetch(`/${encodeURIComponent(channel)}/hookpipe-test`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-hookpipe-test': '1' },
      body: JSON.stringify(sample, null, 2),
    });
    const body = await res.json();
    if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
    toast(`Test event sent as #${body.seq}`);
  } catch (err) {
    toast(`Could not send the test event: ${err.message}`, 'error');
  }
});

// ---- delivery results ---------------------------------------------------------

async function pollAcks() {
  if (!S.started || document.hidden || S.entries.size === 0) return;
  const seqs = [...S.entries.keys()];
  const to = Math.max(...seqs);
  const from = Math.max(Math.min(...seqs), to - 999);
  let body;
  try { body = await call(`/acks?from=${from}&to=${to}`); } catch (err) { fatal(err); return; }
  for (const ack of body.acks) {
    const entry = S.entries.get(ack.seq);
    if (!entry) continue;
    const was = entry.delivery;
    if (was && was.status === ack.status && was.acked_at === ack.acked_at) continue;
    entry.delivery = { status: ack.status, acked_at: ack.acked_at };
    paintDelivery(entry);
    if (S.selected === ack.seq) paintDetailDelivery($('#detail'), entry);
  }
}
setInterval(pollAcks, ACK_POLL_MS);

// ---- keyboard ---------------------------------------------------------------

function visibleButtons() {
  return [...list.querySelectorAll('li:not([hidden]) > button.event')];
}

document.addEventListener('keydown', (e) => {
  if (e.ctrlKey || e.metaKey || e.altKey) return;
  const typing = /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName);
  if (e.key === 'Escape') {
    if (typing) e.target.blur();
    else if (document.body.classList.contains('detail-open')) closeDetail();
    return;
  }
  if (typing) return;
  const buttons = visibleButtons();
  const at = buttons.indexOf(document.activeElement);
  if (e.key === '/') {
    e.preventDefault();
    F.text.focus();
  } else if (e.key === 'j' || e.key === 'k') {
    const cur = buttons.findIndex((b) => Number(b.dataset.seq) === S.selected);
    const next = buttons[Math.max(0, Math.min(buttons.length - 1, cur + (e.key === 'j' ? 1 : -1)))];
    if (next) { select(Number(next.dataset.seq), false); next.focus(); }
  } else if (at >= 0 && ['ArrowDown', 'ArrowUp', 'Home', 'End'].includes(e.key)) {
    e.preventDefault();
    const i = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: buttons.length - 1 }[e.key];
    buttons[Math.max(0, Math.min(buttons.length - 1, i))].focus();
  }
});

// ---- start ----------------------------------------------------------------------

wireCopyButtons();
takeTokenFromUrl();
document.title = `${channel} · hookpipe`;
start();
