// Helpers shared by the inspector's pages. Webhook payloads are attacker-
// controlled: everything here builds DOM nodes and sets text, never markup.

/** An element with attributes and children; strings become text nodes. */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') node.className = v;
    else if (k === 'text') node.textContent = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : String(v));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    if (Array.isArray(c)) append(node, c);
    else node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

export const $ = (sel, root = document) => root.querySelector(sel);

/** The relay's public base URL: `--public-url` when set, else this origin. */
export function relayBase() {
  const meta = document.querySelector('meta[name="hookpipe-base"]');
  return (meta && meta.content) || location.origin;
}

const tokenKey = (channel) => `hookpipe:token:${channel}`;
export const loadToken = (channel) => localStorage.getItem(tokenKey(channel));
export const saveToken = (channel, token) => localStorage.setItem(tokenKey(channel), token);
export const forgetToken = (channel) => localStorage.removeItem(tokenKey(channel));

/** Quotes a word for a POSIX shell, only when it needs it. */
export function shellQuote(s) {
  if (s !== '' && /^[A-Za-z0-9_./:=@%+,-]+$/.test(s)) return s;
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(n < 10240 ? 1 : 0)} KB`;
  return `${(n / 1024 / 1024).toFixed(1)} MB`;
}

/** Copies text; falls back to a hidden textarea where the Clipboard API is
 *  unavailable (plain http on a non-local host). */
export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    const area = el('textarea', { class: 'offscreen', readonly: true });
    area.value = text;
    document.body.append(area);
    area.select();
    let ok = false;
    try { ok = document.execCommand('copy'); } catch { ok = false; }
    area.remove();
    return ok;
  }
}

let toastTimer;
/** A short message in the live region at the bottom of the page. */
export function toast(message, kind = 'ok') {
  const box = $('#toast');
  if (!box) return;
  box.textContent = message;
  box.dataset.kind = kind;
  box.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => { box.hidden = true; }, 4000);
}

/** Wires `<button data-copy="ID">`: copies the `data-value` (else the text) of #ID. */
export function wireCopyButtons(root = document) {
  root.addEventListener('click', async (e) => {
    const btn = e.target.closest('button[data-copy]');
    if (!btn) return;
    const src = document.getElementById(btn.dataset.copy);
    const text = src.dataset.value ?? src.textContent;
    toast(await copyText(text) ? 'Copied' : 'Could not copy; select the text instead', 'ok');
  });
}
