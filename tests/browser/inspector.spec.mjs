// The web inspector in headless Chromium, driven by playwright-core.
// Run by tests/inspector.rs, which starts the relay and passes RELAY_URL,
// CONTROL_URL (kill/start the relay, a WebSocket subscriber), CHROMIUM and
// NODE_DIR; SCREENSHOT_DIR, when set, receives the README's screenshots.
// The tests share one page and run in order: each builds on the last.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createServer } from 'node:http';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { promisify } from 'node:util';

const { RELAY_URL: relay, CONTROL_URL: control, CHROMIUM, NODE_DIR, SCREENSHOT_DIR } = process.env;
assert.ok(relay && control && CHROMIUM && NODE_DIR, 'run me from tests/inspector.rs (cargo test --test inspector)');
const { chromium } = createRequire(join(NODE_DIR, 'package.json'))('playwright-core');
const run = promisify(execFile);

const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--no-proxy-server',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

let browser; let context; let page;
let channel; let token;
const problems = [];       // page errors, CSP violations, dialogs
const requested = [];      // every URL the page asked for

const PUSH = JSON.stringify({
  ref: 'refs/heads/main',
  repository: { id: 1296269, full_name: 'octocat/Hello-World', big_id: 'BIG' },
  commits: [{ id: '76ae82c', message: 'Fix "quotes" and ünïcödé ✓', added: [] }],
  sender: null,
}, null, 2).replace('"BIG"', '123456789012345678901'); // beyond 2^53

async function curl(path, ...args) {
  const { stdout } = await run('curl', ['-sS', '--fail-with-body', '--noproxy', '*', ...args, `${relay}/${channel}${path}`]);
  return JSON.parse(stdout);
}

async function ctl(path, body) {
  const res = await fetch(control + path, body === undefined ? { method: path === '/next-event' ? 'GET' : 'POST' }
    : { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  assert.equal(res.status, 200, `control ${path}: ${await res.clone().text()}`);
  return /json/.test(res.headers.get('content-type')) ? res.json() : res.text();
}

const row = (seq) => page.locator(`#event-list li[data-seq="${seq}"] > button`);
const detail = () => page.locator('#detail');

async function open(seq) {
  await row(seq).click();
  await page.waitForFunction((s) => document.querySelector('#detail h2')?.textContent.endsWith(`#${s}`), seq);
}

before(async () => {
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ARGS });
  context = await browser.newContext({ viewport: { width: 1280, height: 860 }, colorScheme: 'light' });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: relay });
  page = await context.newPage();
  page.on('pageerror', (e) => problems.push(`page error: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() === 'error' && !/ERR_CONNECTION_REFUSED|WebSocket connection/.test(m.text())) problems.push(`console: ${m.text()}`);
  });
  page.on('dialog', (d) => { problems.push(`dialog: ${d.message()}`); d.dismiss(); });
  page.on('request', (r) => requested.push(r.url()));
});

after(async () => {
  await browser?.close();
});

test('the home page creates a channel and opens its page', async () => {
  await page.goto(`${relay}/`);
  assert.match(await page.locator('h1').textContent(), /webhooks/i);
  assert.match(await page.locator('#cmd-client').textContent(), /hookpipe-client --url http:\/\/127\.0\.0\.1:\d+\/CHANNEL/);
  await page.getByRole('button', { name: 'New channel' }).click();
  await page.waitForURL(/\/[A-Za-z0-9_-]{22}$/);
  channel = new URL(page.url()).pathname.slice(1);
  token = await page.evaluate((c) => localStorage.getItem(`hookpipe:token:${c}`), channel);
  assert.ok(token && token.length >= 43, 'the token is kept in the page storage');
  await page.waitForSelector('#conn[data-state="live"]');
  assert.equal(await page.locator('#webhook-url').textContent(), `${relay}/${channel}`);
  const client = page.locator('#cmd-client');
  assert.equal(await client.getAttribute('data-value'),
    `hookpipe-client --url ${relay}/${channel} --token ${token} --target http://localhost:3000`);
  assert.ok(!(await client.textContent()).includes(token), 'the token is masked on screen');
  assert.equal(await page.locator('#cmd-smee').getAttribute('data-value'),
    `npx smee-client --url '${relay}/${channel}?token=${token}' --target http://localhost:3000`);
  assert.ok(requested.every((u) => !u.includes(token)), 'the token is not in any URL but the WebSocket');
});

test('an event POSTed with curl appears within a second, without reload', async () => {
  let navigations = 0;
  page.on('framenavigated', () => { navigations += 1; });
  const started = Date.now();
  const receipt = await curl('/github?delivery=1', '-H', 'content-type: application/json',
    '-H', 'x-github-event: push', '-H', 'x-hub-signature-256: sha256=d57c68ca', '--data-binary', PUSH);
  assert.equal(receipt.seq, 1);
  await row(1).waitFor({ timeout: Math.max(1, 1000 - (Date.now() - started)) });
  assert.ok(Date.now() - started < 1000, `shown after ${Date.now() - started} ms`);
  assert.equal(navigations, 0, 'no reload');
  assert.match(await row(1).textContent(), /POST\s*\/github\?delivery=1/);
  assert.match(await row(1).textContent(), /application\/json/);
});

test('the detail view shows the headers and the body', async () => {
  await open(1);
  const headers = detail().locator('table.kv').nth(1);
  assert.equal(await headers.locator('tr', { hasText: 'x-github-event' }).locator('td').textContent(), 'push');
  assert.equal(await headers.locator('tr', { hasText: 'x-hub-signature-256' }).locator('td').textContent(), 'sha256=d57c68ca');
  const query = detail().locator('table.kv').first();
  assert.equal(await query.locator('td').textContent(), '1');
  const tree = detail().locator('.body-view');
  assert.match(await tree.textContent(), /"full_name": "octocat\/Hello-World"/);
  assert.match(await tree.textContent(), /123456789012345678901/, 'big numbers keep every digit');
  // Collapsible: the repository object folds away.
  const repo = tree.locator('details.j-node details.j-node').first();
  await repo.locator('summary').click();
  assert.equal(await repo.evaluate((d) => d.open), false);
  await detail().getByRole('button', { name: 'Raw' }).click();
  assert.equal(await detail().locator('pre.raw').textContent(), PUSH);
});

const EVIL = '<img src=x onerror="window.__pwned=1">';
test('injection payloads are shown as text and never run', async () => {
  const html = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=1">';
  const a = await curl('/%3Cscript%3Ealert(1)%3C/script%3E?q=%3Cimg%20src%3Dx%20onerror%3Dwindow.__pwned%3D1%3E',
    '-H', 'content-type: text/html', '-H', `x-evil: ${EVIL}`, '-H', 'x-&#60script&#62: 1',
    '--data-binary', html);
  const json = JSON.stringify({ [EVIL]: '<script>window.__pwned=1</script>', list: [EVIL] });
  const b = await curl('/json', '-H', 'content-type: application/json', '--data-binary', json);
  const form = `${encodeURIComponent('<script>')}=${encodeURIComponent(EVIL)}`;
  const c = await curl('/form', '-H', 'content-type: application/x-www-form-urlencoded', '--data-binary', form);

  await row(c.seq).waitFor();
  assert.match(await row(a.seq).locator('.path').textContent(), /^\/<script>alert\(1\)<\/script>\?q=/);
  await open(a.seq);
  const text = await detail().textContent();
  assert.ok(text.includes('/<script>alert(1)</script>'), 'path as text');
  assert.ok(text.includes('<img src=x onerror=window.__pwned=1>'), 'query value as text');
  assert.ok(text.includes(EVIL), 'header value as text');
  assert.ok(text.includes('x-&#60script&#62'), 'header name as text, entities not decoded');
  assert.equal(await detail().locator('pre.raw').textContent(), html, 'body as text');
  await open(b.seq);
  assert.ok((await detail().textContent()).includes(JSON.stringify(EVIL)), 'JSON key as text');
  await open(c.seq);
  assert.equal(await detail().locator('.body-view td').textContent(), EVIL, 'form field as text');

  assert.equal(await page.evaluate(() => window.__pwned), undefined, 'no payload ran');
  assert.equal(await page.locator('main script, main img, main iframe').count(), 0, 'no payload element exists');
  assert.ok(!requested.some((u) => /\/x$/.test(u)), 'no payload image was requested');
  assert.deepEqual(problems, []);

  // Defence in depth: had a payload reached markup, the CSP would stop it.
  const probe = await context.newPage();
  await probe.goto(`${relay}/${channel}`);
  const violated = await probe.evaluate(() => new Promise((resolve) => {
    document.addEventListener('securitypolicyviolation', (e) => resolve(e.effectiveDirective), { once: true });
    const box = document.createElement('div');
    box.innerHTML = '<img src=x onerror="window.__pwned=2">';
    document.body.append(box);
  }));
  assert.equal(violated, 'script-src-attr');
  assert.equal(await probe.evaluate(() => window.__pwned), undefined);
  await probe.close();
});

test('Copy as curl replays the exact request against a URL the user types', async () => {
  const seen = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => { seen.push({ req, body: Buffer.concat(chunks) }); res.end('ok'); });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const target = `http://127.0.0.1:${server.address().port}/hooks`;
  try {
    await page.fill('#target', target);
    const binary = Buffer.from([0, 1, 2, 0xff, 0xfe, 13, 10, 39, 0x1b, 0x80]);
    const r = await run('bash', ['-c', `printf '\\x00\\x01\\x02\\xff\\xfe\\r\\n\\x27\\x1b\\x80' | curl -sS --noproxy '*' -X PUT ` +
      `-H 'content-type: application/octet-stream' -H 'x-empty;' --data-binary @- '${relay}/${channel}/bin/a%20b?x=1&y=%C3%A9'`]);
    const { seq } = JSON.parse(r.stdout);
    await row(seq).waitFor();
    for (const [s, method, url, body] of [[1, 'POST', '/hooks/github?delivery=1', Buffer.from(PUSH)],
      [seq, 'PUT', '/hooks/bin/a%20b?x=1&y=%C3%A9', binary]]) {
      await open(s);
      const original = await page.evaluate((n) => fetch(`/api/channels/${location.pathname.slice(1)}/events/${n}`, {
        headers: { authorization: `Bearer ${localStorage.getItem(`hookpipe:token:${location.pathname.slice(1)}`)}` },
      }).then((x) => x.json()), s);
      await detail().getByRole('button', { name: 'Copy as curl' }).click();
      const cmd = await page.evaluate(() => navigator.clipboard.readText());
      assert.match(cmd, /curl /);
      seen.length = 0;
      await run('bash', ['-c', cmd], { env: { PATH: process.env.PATH } });
      assert.equal(seen.length, 1, cmd);
      const { req, body: got } = seen[0];
      assert.equal(req.method, method);
      assert.equal(req.url, url);
      assert.ok(got.equals(body), `body bytes: ${got.toString('hex')} vs ${body.toString('hex')}`);
      const replayed = [];
      for (let i = 0; i < req.rawHeaders.length; i += 2) replayed.push([req.rawHeaders[i].toLowerCase(), req.rawHeaders[i + 1]]);
      const hop = ['host', 'content-length'];
      const want = original.headers.filter(([n]) => !hop.includes(n));
      const have = replayed.filter(([n]) => !hop.includes(n));
      assert.deepEqual(have, want, `headers of ${cmd}`);
    }
  } finally {
    server.close();
  }
});

test('Redeliver makes a connected WebSocket subscriber receive the event again', async () => {
  await ctl('/subscribe', { channel, token });
  await open(1);
  // Keyboard only: focus the button and press Enter.
  await detail().getByRole('button', { name: 'Redeliver' }).focus();
  await page.keyboard.press('Enter');
  const ev = await ctl('/next-event');
  assert.equal(ev.method, 'POST');
  assert.equal(ev.path, '/github');
  assert.equal(ev.query, 'delivery=1');
  assert.equal(ev.body, PUSH);
  assert.deepEqual(ev.headers.filter(([n]) => n === 'x-hookpipe-redelivery-of'), [['x-hookpipe-redelivery-of', '1']]);
  assert.deepEqual(ev.headers.filter(([n]) => n === 'x-github-event'), [['x-github-event', 'push']]);
  await row(ev.seq).waitFor();
  assert.match(await page.locator('#toast').textContent(), new RegExp(`Redelivered #1 as #${ev.seq}`));

  // A subscriber's ack shows as the delivery result, without reload.
  await ctl('/ack', { seq: ev.seq, status: 200 });
  await page.waitForFunction((s) => document.querySelector(`li[data-seq="${s}"] .delivery`)?.textContent === '→ 200', ev.seq,
    { timeout: 8000 });
  await open(ev.seq);
  assert.match(await detail().locator('.detail-delivery').textContent(), /answered 200/);
  await detail().getByRole('button', { name: '#1' }).click();
  await page.waitForFunction(() => document.querySelector('#detail h2')?.textContent.endsWith('#1'));
});

test('Send test event posts a sample webhook to the channel', async () => {
  const before = await page.locator('#event-list li[data-seq]').count();
  await page.getByRole('button', { name: 'Send test event' }).click();
  await page.waitForFunction((n) => document.querySelectorAll('#event-list li[data-seq]').length === n + 1, before);
  const top = page.locator('#event-list li[data-seq]').first();
  assert.match(await top.textContent(), /POST\s*\/hookpipe-test/);
  await top.locator('button').click();
  assert.match(await detail().textContent(), /x-hookpipe-test1/);
});

test('filters by method, path and text', async () => {
  const visible = () => page.locator('#event-list li[data-seq]:not([hidden])').count();
  const total = await page.locator('#event-list li[data-seq]').count();
  await page.selectOption('#f-method', 'PUT');
  assert.equal(await visible(), 1);
  await page.selectOption('#f-method', '');
  await page.fill('#f-path', 'github');
  assert.equal(await visible(), 2, 'the event and its redelivery');
  await page.fill('#f-path', '');
  await page.fill('#f-text', 'octocat');
  assert.equal(await visible(), 2);
  await page.fill('#f-text', 'pwned');
  assert.equal(await visible(), 3, 'the three injection events');
  assert.match(await page.locator('#count').textContent(), new RegExp(`3 of ${total} events`));
  await page.fill('#f-text', '');
  assert.equal(await visible(), total);
});

test('usable with the keyboard alone', async () => {
  await page.locator('body').click({ position: { x: 5, y: 400 } });
  await page.keyboard.press('/');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'f-text');
  await page.keyboard.press('Escape');
  const newest = Number(await page.locator('#event-list li[data-seq]').first().getAttribute('data-seq'));
  await page.keyboard.press('k');
  await page.keyboard.press('k'); // already the newest: stays
  const current = () => page.evaluate(() => Number(document.querySelector('button[aria-current]')?.dataset.seq));
  assert.equal(await current(), newest);
  await page.keyboard.press('j');
  assert.equal(await current(), newest - 1);
  await page.keyboard.press('ArrowDown');
  await page.keyboard.press('Enter');
  assert.equal(await current(), newest - 2);
  // Tab reaches the detail's actions.
  let reached = false;
  for (let i = 0; i < 40 && !reached; i += 1) {
    await page.keyboard.press('Tab');
    reached = await page.evaluate(() => document.activeElement.textContent === 'Copy as curl');
  }
  assert.ok(reached, 'Copy as curl is reachable with Tab');
});

test('reads well at phone width and in dark mode', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.emulateMedia({ colorScheme: 'dark' });
  await page.keyboard.press('Escape'); // back to the list
  const overflow = () => page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(await overflow() <= 0, 'no sideways scrolling');
  const bg = await page.evaluate(() => getComputedStyle(document.body).backgroundColor);
  assert.equal(bg, 'rgb(15, 17, 21)');
  await open(1);
  assert.ok(await detail().isVisible());
  assert.equal(await page.locator('#event-list').isVisible(), false, 'the detail replaces the list');
  assert.ok(await overflow() <= 0, 'no sideways scrolling in the detail');
  await page.keyboard.press('Escape');
  assert.ok(await page.locator('#event-list').isVisible());
  assert.equal(await page.evaluate(() => document.activeElement.dataset.seq), '1', 'focus back on the event');
  await page.setViewportSize({ width: 1280, height: 860 });
  await page.emulateMedia({ colorScheme: 'light' });
});

test('the page reconnects after the relay restarts and catches up from the last seen seq', async () => {
  const last = Number(await page.locator('#event-list li[data-seq]').first().getAttribute('data-seq'));
  const sockets = [];
  page.on('websocket', (ws) => sockets.push({
    url: ws.url(), at: Date.now(), closed: new Promise((r) => ws.on('close', r)),
  }));
  await ctl('/kill');
  await page.waitForSelector('#conn[data-state="reconnecting"]');
  assert.match(await page.locator('#conn').textContent(), /Reconnecting/);
  // Let one attempt fail against the dead port.
  const t0 = Date.now();
  while (sockets.length === 0) {
    assert.ok(Date.now() - t0 < 5000, 'the page tries to reconnect');
    await new Promise((r) => setTimeout(r, 20));
  }
  await sockets[0].closed;
  const attempts = sockets.length;
  // Committed where the page cannot see them: only catching up shows them.
  const posted = await ctl('/publish-offline', { channel, count: 3 });
  const postedAt = Date.now();
  assert.deepEqual(posted, [last + 1, last + 2, last + 3]);
  await ctl('/start');
  await page.waitForSelector('#conn[data-state="live"]', { timeout: 15000 });
  for (const seq of posted) await row(seq).waitFor();
  const resumed = sockets.slice(attempts).at(-1);
  assert.ok(resumed, 'a new WebSocket after the restart');
  assert.equal(new URL(resumed.url).searchParams.get('since'), String(last), 'resumes from the last seen seq');
  assert.ok(resumed.at >= postedAt, 'the events were committed while the page was disconnected');
  assert.equal(await page.locator(`#event-list li[data-seq="${last + 1}"]`).count(), 1, 'no duplicates');
  assert.equal(await page.locator('#event-list li[data-seq]').count(), last + 3);
  assert.deepEqual(problems, []);
});

test('a wrong token is refused and the page asks for one; the URL keeps no token', async () => {
  const other = await browser.newContext();
  const gate = await other.newPage();
  await gate.goto(`${relay}/${channel}?token=wrong`);
  await gate.waitForSelector('#gate:not([hidden])');
  assert.match(await gate.locator('#gate-error').textContent(), /rejected/);
  assert.equal(new URL(gate.url()).search, '', 'the token left the address bar');
  await gate.fill('#gate-token', token);
  await gate.keyboard.press('Enter');
  await gate.waitForSelector('#conn[data-state="live"]');
  assert.ok(await gate.locator('#event-list li[data-seq="1"]').isVisible(), 'history loaded');
  await other.close();
});

test('screenshots for the README', { skip: !SCREENSHOT_DIR && 'set HOOKPIPE_SCREENSHOTS=docs to save them' }, async () => {
  await page.setViewportSize({ width: 1280, height: 1040 });
  await page.fill('#target', 'http://localhost:3000');
  await page.evaluate(() => { document.querySelector('#setup').open = false; });
  await open(1);
  await detail().getByRole('button', { name: 'Pretty' }).click();
  await page.evaluate(() => { document.activeElement.blur(); window.scrollTo(0, 0); });
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    await page.screenshot({ path: join(SCREENSHOT_DIR, scheme === 'light' ? 'inspector.png' : 'inspector-dark.png') });
  }
});
