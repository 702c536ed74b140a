// The home page: create a channel and open its page.
import { $, relayBase, saveToken } from './dom.js';

for (const slot of document.querySelectorAll('.base')) slot.textContent = relayBase();

$('#new-channel').addEventListener('click', async (e) => {
  const btn = e.currentTarget;
  const error = $('#new-error');
  btn.disabled = true;
  error.textContent = '';
  try {
    const res = await fetch('/new', { method: 'POST' });
    const body = await res.json();
    if (!res.ok) throw new Error(body.error || `HTTP ${res.status}`);
    saveToken(body.channel, body.token);
    location.assign(`/${encodeURIComponent(body.channel)}`);
  } catch (err) {
    error.textContent = `Could not create a channel: ${err.message}`;
    btn.disabled = false;
  }
});

$('#open-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const raw = $('#open-input').value.trim();
  let id = raw;
  let token = null;
  try {
    const url = new URL(raw);
    id = url.pathname.split('/')[1] || '';
    token = url.searchParams.get('token');
  } catch { /* a bare id */ }
  if (/^[A-Za-z0-9_-]{1,64}$/.test(id)) {
    if (token) saveToken(id, token);
    location.assign(`/${id}`);
  } else {
    $('#open-input').setCustomValidity('Paste the channel URL or its id');
  }
  $('#open-input').reportValidity();
});
$('#open-input').addEventListener('input', (e) => e.target.setCustomValidity(''));
