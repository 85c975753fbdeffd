// tests/browser/test_dashboard.mjs: the dashboard in headless Chromium (Debian's /usr/bin/chromium)
// driven by playwright-core, against a real `boltzd serve` on a free loopback port.
//
//   node tests/browser/test_dashboard.mjs [BOLTZD] [SOURCE_DIR]
//
// Steps: open the jobs page and filter it; the submit page's example and preview; a validation
// error shown next to its field; submit a small job through the form and watch its plot gain
// points until it finishes (summary, checkpoints, samples); follow a running job with an API token
// set (the fetch-based stream, Authorization header on every request); cancel that job from the
// jobs page; a failed job's error; a sweep's plots against T; a batched sweep's page (every chain
// on one plot with a legend per T, the exchange acceptance per pair, each replica's walk) and the submit form's batched
// controls; 100 000 records decimated in the plots. Screenshots go to $BROWSER_SHOTS (else
// $OUT/browser-shots, else SOURCE_DIR/build/browser-shots). Any console error or uncaught page error fails the test, except the network
// line Chromium logs for the 400 the validation step provokes on purpose. Prints "N passed, N failed".
import { spawn } from 'node:child_process';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const SRC = path.resolve(process.argv[3] || path.join(here, '..', '..'));
const BOLTZD = path.resolve(process.argv[2] || path.join(SRC, 'build', 'boltzd'));
const DEPS = process.env.BOLTZ_WEB_DEPS || SRC;
const { chromium } = createRequire(path.join(DEPS, 'package.json'))('playwright-core');
const SHOTS = process.env.BROWSER_SHOTS || (process.env.OUT ? path.join(process.env.OUT, 'browser-shots') : path.join(SRC, 'build', 'browser-shots'));
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const T0 = Date.now();

let passed = 0, failed = 0;
const problems = [];            // console errors and page errors, with the step they happened in
let step = 'start';
let allow400 = false;           // the validation step expects one HTTP 400 line in the console

function log(msg) { console.log(`[${((Date.now() - T0) / 1000).toFixed(1).padStart(5)}s] ${msg}`); }

async function check(name, fn) {
  step = name;
  const before = problems.length;
  try {
    await fn();
    if (problems.length > before) throw new Error(`console/page errors: ${problems.slice(before).join(' | ')}`);
    passed++;
    log(`ok   ${name}`);
  } catch (e) {
    failed++;
    log(`FAIL ${name}: ${e.message.split('\n').slice(0, 6).join('\n     ')}`);
  }
}

function assert(cond, msg) { if (!cond) throw new Error(msg); }

/* ---------------------------------------------------------------- the daemon */

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => { const { port } = s.address(); s.close(() => resolve(port)); });
  });
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'boltzd-browser-'));
const port = await freePort();
const BASE = `http://127.0.0.1:${port}`;
const daemonLog = fs.openSync(path.join(tmp, 'boltzd.log'), 'w');
const daemon = spawn(BOLTZD, ['serve', '--listen', `127.0.0.1:${port}`, '--data-dir', path.join(tmp, 'data'),
  '--web-dir', path.join(SRC, 'web'), '--workers', '2'], { stdio: ['ignore', daemonLog, daemonLog] });
let browser = null;

async function cleanup() {
  try { await browser?.close(); } catch { /* gone */ }
  if (daemon.exitCode == null) {
    daemon.kill('SIGTERM');
    await new Promise((r) => { const t = setTimeout(() => { daemon.kill('SIGKILL'); r(); }, 10000); daemon.once('exit', () => { clearTimeout(t); r(); }); });
  }
}
process.on('SIGINT', async () => { await cleanup(); process.exit(130); });
process.on('SIGTERM', async () => { await cleanup(); process.exit(143); });

async function apiCall(pathname, opts = {}) {
  const r = await fetch(`${BASE}/api/v1/${pathname}`, opts);
  const body = await r.json();
  if (!r.ok) throw new Error(`${pathname}: ${r.status} ${JSON.stringify(body)}`);
  return body;
}

async function waitFor(what, fn, timeoutMs = 20000, everyMs = 200) {
  const end = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try { last = await fn(); if (last) return last; } catch (e) { last = e; }
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}${last instanceof Error ? ` (${last.message})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

const tiny = (over) => JSON.stringify({
  name: 'tiny',
  dataset: { kind: 'spin', n_in: 40, classes: 4, train: 256, test: 256, p_flip: 0.2, seed: 1 },
  model: { hidden: [12], bias: true, lambda: 0.001 },
  sampler: { method: 'pl', T: 0.001, steps: 2000, batch: 64, seed: 3 },
  record: { every: 20, test: true },
  ...over,
});

let exitCode = 1;
try {
  fs.mkdirSync(SHOTS, { recursive: true });
  for (const f of fs.readdirSync(SHOTS)) if (f.endsWith('.png')) fs.rmSync(path.join(SHOTS, f));
  assert(fs.existsSync(BOLTZD), `no boltzd at ${BOLTZD} (build it first)`);
  assert(fs.existsSync(CHROMIUM), `no Chromium at ${CHROMIUM} (apt-get install chromium)`);
  await waitFor('the daemon', async () => (await fetch(`${BASE}/api/v1/health`)).ok, 15000);
  log(`boltzd on ${BASE}, data in ${tmp}, screenshots in ${SHOTS}`);

  // Jobs the steps need, through the API: a sweep (finishes in seconds), a job that fails, and a
  // long job to follow and cancel.
  const sweep = await apiCall('jobs', { method: 'POST', body: JSON.stringify({
    name: 'sweep-hmc', dataset: { kind: 'spin', n_in: 40, classes: 4, train: 200, test: 200, seed: 1 },
    model: { hidden: [8] }, sampler: { method: 'hmc', T: [0.0003, 0.001, 0.003, 0.01, 0.03], steps: 300, leapfrog: 5, h: 0.05 },
    record: { every: 10 } }) });
  const failing = await apiCall('jobs', { method: 'POST', body: JSON.stringify({
    name: 'no-data', dataset: { kind: 'npy', dir: path.join(tmp, 'missing') }, model: { hidden: [8] }, sampler: { T: 0.01, steps: 100 } }) });
  // A batched sweep with replica exchange: 3 chains x 3000 steps, 101 records each (seconds).
  const batchedT = [0.001, 0.002, 0.004];
  const batched = await apiCall('jobs', { method: 'POST', body: JSON.stringify({
    name: 'batched-px', dataset: { kind: 'spin', n_in: 40, classes: 4, train: 200, test: 200, seed: 1 },
    model: { hidden: [8] }, sampler: { method: 'pl', T: batchedT, steps: 3000, batch: 50, seed: 2 },
    batched: true, exchange: { every: 20 }, record: { every: 30 } }) });
  const victim = await apiCall('jobs', { method: 'POST', headers: { 'X-Boltz-User': 'alice' },
    body: tiny({ name: 'long-chain', sampler: { method: 'pl', T: 0.001, steps: 100000000, batch: 64, seed: 5 }, record: { every: 100, test: true } }) });

  // A fresh profile in the temporary folder (deleted afterwards); the flags keep Chromium off the
  // network: no updates, sync, QUIC or background requests.
  browser = await chromium.launchPersistentContext(path.join(tmp, 'chromium-profile'), {
    executablePath: CHROMIUM, headless: true, viewport: { width: 1360, height: 900 }, deviceScaleFactor: 1,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
           '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
  const context = browser;
  const page = await context.newPage();
  // Generous: CI machines can be busy (the daemon's chains share the cores with Chromium).
  page.setDefaultTimeout(45000);
  page.setDefaultNavigationTimeout(45000);
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const text = m.text();
    if (allow400 && /status of 400/.test(text)) { allow400 = false; return; }
    problems.push(`[${step}] console: ${text} (${m.location()?.url || ''})`);
  });
  page.on('pageerror', (e) => problems.push(`[${step}] page error: ${e.message}`));
  const shot = async (name) => page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  const row = (id) => page.locator(`#jobs tbody tr[data-id="${id}"]`);

  await check('jobs page lists the jobs and refreshes live', async () => {
    await page.goto(`${BASE}/`);
    await row(sweep.id).waitFor();
    await row(victim.id).waitFor();
    await page.locator(`#jobs tbody tr[data-id="${failing.id}"][data-status="failed"]`).waitFor();
    await page.locator(`#jobs tbody tr[data-id="${victim.id}"][data-status="running"]`).waitFor();
    const cells = await row(victim.id).locator('td').allInnerTexts();
    assert(cells[1].includes('long-chain') && cells[2] === 'alice' && cells[3] === 'pl', `victim row: ${cells.join(' | ')}`);
    assert(/ETA/.test(cells[6]), `no ETA in the running job's progress: ${cells[6]}`);
    assert(await row(sweep.id).locator('.tag').innerText() === 'sweep · 5 T', 'sweep tag');
    assert(await row(failing.id).locator('.row-error').innerText() !== '', 'failed job shows no error');
    // live: the running job's step moves without a reload
    const s0 = await row(victim.id).locator('.progress-col .small').innerText();
    await waitFor('the step column to move', async () => (await row(victim.id).locator('.progress-col .small').innerText()) !== s0, 10000);
    await shot('01-jobs');
  });

  await check('jobs page filters by status', async () => {
    await page.click('#filters button[data-status="failed"]');
    await waitFor('only failed rows', async () => {
      const st = await page.locator('#jobs tbody tr').evaluateAll((trs) => trs.map((t) => t.dataset.status));
      return st.length === 1 && st[0] === 'failed';
    });
    assert(page.url().endsWith('?status=failed'), `filter not in the URL: ${page.url()}`);
    await page.click('#filters button[data-status="all"]');
    await row(victim.id).waitFor();
  });

  await check('submit page: example prefilled, parameter and memory preview', async () => {
    await page.goto(`${BASE}/submit.html`);
    await waitFor('the example', async () => (await page.inputValue('#spec')).includes('"spin-small"'));
    const exampleFile = fs.readFileSync(path.join(SRC, 'examples', 'spin-small.json'), 'utf8');
    assert((await page.inputValue('#spec')).trim() === exampleFile.trim(), 'the editor does not hold examples/spin-small.json (run scripts/web-deps)');
    // spin-small: 500 -> 20 -> 100 -> 10 with biases = 10020 + 2100 + 1010 = 13130 weights
    assert((await page.innerText('#params')) === '13,130 parameters', `params: ${await page.innerText('#params')}`);
    // memory = 4 * ((2000 + 2000) * 500 + 8 * 13130) = 8,420,160 bytes
    assert((await page.innerText('#mem')) === '≈ 8.03 MiB', `memory: ${await page.innerText('#mem')}`);
    await page.selectOption('#example', 'fashion-projected.json');
    await waitFor('the fashion example', async () => (await page.inputValue('#spec')).includes('fashion_mnist'));
    // 256 -> 128 -> 64 -> 10 with biases = 32896 + 8256 + 650 = 41802
    assert((await page.innerText('#params')) === '41,802 parameters', `params: ${await page.innerText('#params')}`);
  });

  await check('a validation error shows next to the field it names', async () => {
    await page.selectOption('#example', 'spin-small.json');
    await waitFor('the example', async () => (await page.inputValue('#spec')).includes('"spin-small"'));
    const text = (await page.inputValue('#spec')).replace('"T": 0.001', '"T": -1');
    await page.fill('#spec', text);
    allow400 = true;
    await page.click('#submit');
    const bubble = page.locator('.field-error[data-field="sampler.T"]');
    await bubble.waitFor();
    const msg = await bubble.innerText();
    assert(/sampler\.T must be > 0/.test(msg), `bubble says: ${msg}`);
    // it sits right under the line holding "T": -1
    const line = text.split('\n').findIndex((l) => l.includes('"T": -1')) + 1;
    const mark = await page.locator('#gutter div.err').innerText();
    assert(Number(mark) === line, `marked line ${mark}, "T" is on line ${line}`);
    const taBox = await page.locator('#spec').boundingBox();
    const bBox = await bubble.boundingBox();
    const scroll = await page.locator('#spec').evaluate((t) => t.scrollTop);
    const expectTop = taBox.y + 10 + line * 19 - scroll + 4;
    assert(Math.abs(bBox.y - expectTop) < 3, `bubble at y=${bBox.y}, line ${line} ends at ${expectTop}`);
    assert(await page.locator('#errors li[data-field="sampler.T"]').count() === 1, 'no entry in the error list');
    assert(!allow400, 'the 400 did not reach the console (expected one network line)');
    await shot('02-submit-validation-error');
    // a syntax error is marked live, before any submit
    await page.fill('#spec', text.replace('"T": -1,', '"T": -1'));
    await waitFor('the syntax mark', async () => (await page.innerText('#syntax')).startsWith('JSON:'));
    assert(await page.locator('.field-error').count() === 1, 'no syntax mark');
  });

  let small = null;
  await check('submit a small job through the form and watch its plot gain points', async () => {
    await page.goto(`${BASE}/submit.html`);
    await waitFor('the example', async () => (await page.inputValue('#spec')).includes('"spin-small"'));
    await page.fill('#spec', JSON.stringify(JSON.parse(tiny({
      name: 'browser-small', dataset: { kind: 'spin', n_in: 100, classes: 10, train: 1000, test: 500, p_flip: 0.3, seed: 1 },
      model: { hidden: [32, 16], bias: true, lambda: 0.001 },
      sampler: { method: 'pl', T: 0.001, steps: 6000, batch: 64, seed: 3 },
      record: { every: 40, test: true }, samples: { every: 1500 }, checkpoint: { every: 3000, keep: 3 } })), null, 2));
    await page.fill('#user', 'bob');
    await Promise.all([page.waitForURL(/job\.html\?id=\d+$/), page.click('#submit')]);
    small = Number(new URL(page.url()).searchParams.get('id'));
    const plot = page.locator('.plot[data-plot="energy"]');
    await plot.waitFor();
    const n0 = Number(await waitFor('the first points', async () => { const n = Number(await plot.getAttribute('data-points')); return n > 0 && n; }, 30000));
    const n1 = Number(await waitFor('more points', async () => { const n = Number(await plot.getAttribute('data-points')); return n >= n0 + 5 && n; }, 30000));
    log(`     job #${small}: plot went from ${n0} to ${n1} points`);
    assert(await page.locator('#live.on').count() === 1 || (await page.innerText('#live')).startsWith('succeeded'), `live state: ${await page.innerText('#live')}`);
    for (const id of ['errors', 'w2', 'kin_T', 'ratio']) assert(Number(await page.locator(`.plot[data-plot="${id}"]`).getAttribute('data-points')) > 0, `plot ${id} is empty`);
    await shot('03-job-live');
    const j = await apiCall(`jobs/${small}`);
    assert(j.owner === 'bob' && j.name === 'browser-small', `submitted job: ${j.owner} ${j.name}`);
  });

  await check('the job finishes: summary, checkpoints and samples with download links', async () => {
    assert(small, 'no job from the previous step');
    await page.locator('#live.done').waitFor({ timeout: 60000 });
    await page.locator('.job-head .badge.s-succeeded').waitFor();
    await page.locator('#summary tr[data-obs="U"]').waitFor();
    const steps = (await apiCall(`jobs/${small}/observables?limit=100000`)).count;
    // The last records reach the plot through the stream, which may land a moment after the
    // status turns final (seen under ASan): wait for them, then require the exact count.
    const plotted = async () => Number(await page.locator('.plot[data-plot="energy"]').getAttribute('data-points'));
    await waitFor(`the plot to hold the API's ${steps} records`, async () => (await plotted()) === steps, 10000).catch(() => {});
    assert((await plotted()) === steps, `plot holds ${await plotted()} points, the API ${steps}`);
    const ck = page.locator('#checkpoints a', { hasText: 'weights.npy' }).first();
    const href = await ck.getAttribute('href');
    const r = await fetch(BASE + href);
    assert(r.ok && (await r.arrayBuffer()).byteLength > 100, `checkpoint download ${href}: ${r.status}`);
    // with a token stored, a click downloads through fetch (a plain link cannot send the header)
    await page.evaluate(() => localStorage.setItem('boltzd.token', 'test-token'));
    const [dl] = await Promise.all([page.waitForEvent('download'), ck.click()]);
    await page.evaluate(() => localStorage.removeItem('boltzd.token'));
    const npy = fs.readFileSync(await dl.path());
    assert(/^job-\d+-ckpt-\d+-weights\.npy$/.test(dl.suggestedFilename()) && npy.subarray(1, 6).toString() === 'NUMPY',
      `download ${dl.suggestedFilename()}: ${npy.length} bytes`);
    await waitFor('sample links', async () => (await page.locator('#samples a').count()) >= 4, 10000);
    await page.click('.seg button[data-x="t_wall"]');
    await page.locator('.plot[data-plot="energy"]').waitFor();
    await shot('04-job-done-wallclock');
    await page.click('.seg button[data-x="step"]');
  });

  await check('follow a running job with an API token (fetch stream, Authorization header)', async () => {
    const auth = [];
    const onReq = (req) => { if (req.url().includes('/api/v1/')) auth.push(req.headers().authorization || ''); };
    page.on('request', onReq);
    await page.goto(`${BASE}/job.html?id=${victim.id}`);
    await page.fill('#token', 'test-token');
    await page.press('#token', 'Enter');
    await page.reload();
    const plot = page.locator('.plot[data-plot="energy"]');
    const n0 = Number(await waitFor('points', async () => { const n = Number(await plot.getAttribute('data-points')); return n > 0 && n; }, 20000));
    await waitFor('more points through the fetch stream', async () => Number(await plot.getAttribute('data-points')) > n0, 20000);
    page.off('request', onReq);
    assert(auth.length > 3 && auth.slice(-3).every((h) => h === 'Bearer test-token'), `Authorization headers: ${auth.slice(-5).join(', ')}`);
    await page.fill('#token', '');
    await page.press('#token', 'Enter');
    await shot('05-job-running-pl');
  });

  await check('cancel another job from the jobs page', async () => {
    await page.goto(`${BASE}/`);
    const r = row(victim.id);
    await r.locator('button[data-action="cancel"]').click();
    await r.locator('button[data-action="cancel"]', { hasText: 'Really cancel?' }).click();
    await page.locator(`#jobs tbody tr[data-id="${victim.id}"][data-status="cancelled"]`).waitFor({ timeout: 20000 });
    assert(await r.locator('button[data-action="delete"]').count() === 1, 'no delete button once cancelled');
    assert((await apiCall(`jobs/${victim.id}`)).status === 'cancelled', 'the API does not say cancelled');
    await shot('06-jobs-after-cancel');
  });

  await check("a failed job's error in plain view", async () => {
    await page.goto(`${BASE}/job.html?id=${failing.id}`);
    const f = page.locator('#failure');
    await f.waitFor();
    assert(/x_train\.npy/.test(await f.innerText()), `failure box: ${await f.innerText()}`);
    await shot('07-job-failed');
  });

  await check("a sweep's means against T", async () => {
    await waitFor('the sweep to finish', async () => (await apiCall(`jobs/${sweep.id}`)).status === 'succeeded', 60000, 500);
    await page.goto(`${BASE}/job.html?id=${sweep.id}`);
    for (const id of ['T-energy', 'T-error', 'T-w2']) {
      await waitFor(`plot ${id}`, async () => Number(await page.locator(`.plot[data-plot="${id}"]`).getAttribute('data-points')) === 5);
    }
    assert(await page.locator('#sweep-table tbody tr').count() === 5, 'table rows');
    assert(await page.locator('#chains tbody tr').count() === 5, 'chain rows');
    const cell = await page.locator('#sweep-table tbody tr').first().locator('td').nth(7).innerText();
    assert(/±/.test(cell), `test_err cell: ${cell}`);
    await shot('08-sweep-vs-T');
  });

  await check('a batched sweep: every chain on one plot with a legend per T, exchange acceptance per pair', async () => {
    await waitFor('the batched sweep to finish', async () => (await apiCall(`jobs/${batched.id}`)).status === 'succeeded', 90000, 500);
    await page.goto(`${BASE}/job.html?id=${batched.id}`);
    const plot = page.locator('.plot[data-plot="chains-U"]');
    // 3000 steps recorded every 30: steps 0..3000, 101 rows of all three chains
    await waitFor('every recorded step in the plot', async () => Number(await plot.getAttribute('data-points')) === 101);
    const legend = (await plot.locator('.u-legend .u-series').allInnerTexts()).join(' | ');
    for (const T of batchedT) assert(legend.includes(`T = ${T}`), `no legend entry for T = ${T}: ${legend}`);
    const ex = (await apiCall(`jobs/${batched.id}/exchange`)).pairs;
    const rows = page.locator('#exchange tbody tr');
    await waitFor('the acceptance table', async () => (await rows.count()) === batchedT.length - 1);
    for (let k = 0; k < ex.length; k++) {
      const cell = await rows.nth(k).locator('td.acc').innerText();
      assert(cell === `${(100 * ex[k].acceptance).toFixed(1)}%`, `pair ${k}: table says ${cell}, the API ${ex[k].acceptance}`);
    }
    await waitFor('means against T', async () => Number(await page.locator('.plot[data-plot="T-energy"]').getAttribute('data-points')) === batchedT.length);
    // each replica's walk through the ladder: one series per replica, every recorded step
    const walk = page.locator('.plot[data-plot="replica-walk"]');
    await waitFor('the replica walk', async () => Number(await walk.getAttribute('data-points')) === 101);
    const walkLegend = (await walk.locator('.u-legend .u-series').allInnerTexts()).join(' | ').toLowerCase(); // the legend is styled upper-case
    for (let r = 0; r < batchedT.length; r++) assert(walkLegend.includes(`replica ${r}`), `no walk of replica ${r}: ${walkLegend}`);
    await shot('09-batched-sweep');
  });

  await check('submit page: batched and exchange controls for a list of temperatures', async () => {
    await page.goto(`${BASE}/submit.html`);
    await waitFor('the example', async () => (await page.inputValue('#spec')).includes('"spin-small"'));
    assert(await page.locator('#batch-bar').isHidden(), 'batched controls shown for a single T');
    await page.fill('#spec', (await page.inputValue('#spec')).replace('"T": 0.001', '"T": [0.001, 0.002, 0.004]'));
    await page.locator('#batch-bar').waitFor({ state: 'visible' });
    await page.check('#batched');
    await page.fill('#exchange-every', '25');
    await page.press('#exchange-every', 'Tab');
    const spec = JSON.parse(await page.inputValue('#spec'));
    assert(spec.batched === true && spec.exchange?.every === 25, `spec: batched ${spec.batched}, exchange ${JSON.stringify(spec.exchange)}`);
    const chains = await page.locator('#preview tr').evaluateAll((trs) => trs.map((t) => t.innerText).find((t) => t.startsWith('chains')) || '');
    assert(/3 in one job \(batched, exchange every 25 steps\)/.test(chains), `preview: ${chains}`);
  });

  await check('100 000 records stay within a few thousand drawn points', async () => {
    await page.goto(`${BASE}/job.html?id=${small}`);
    await page.locator('.plot[data-plot="energy"]').waitFor();
    const r = await page.evaluate(async () => {
      const { Records, LivePlot, MAX_POINTS } = await import('/plots.js');
      const holder = document.createElement('div');
      holder.style.width = '900px';
      document.querySelector('main').prepend(holder);
      const rec = new Records(['U', 'loss']);
      let s = 7;
      const rnd = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648);
      for (let i = 0; i < 100000; i++) rec.push({ step: i * 10, t_wall: i * 0.01, T: 0.001, U: 1 + Math.sin(i / 5000) + 0.1 * rnd() + (i === 54321 ? 5 : 0), loss: 1 + 0.1 * rnd() });
      const t0 = performance.now();
      const p = new LivePlot(holder, rec, { id: 'big', title: '100 000 records', series: [{ key: 'U' }, { key: 'loss' }] });
      const t1 = performance.now();
      for (let i = 0; i < 200; i++) rec.push({ step: 1000000 + i * 10, t_wall: 1000 + i, T: 0.001, U: 1, loss: 1 });
      p.redraw();
      const t2 = performance.now();
      const d = p.u.data;
      const maxU = Math.max(...d[1].filter((v) => v != null)), minU = Math.min(...d[1].filter((v) => v != null));
      const all = rec.col('U');
      let trueMax = -Infinity, trueMin = Infinity;
      for (const v of all) { trueMax = Math.max(trueMax, v); trueMin = Math.min(trueMin, v); }
      holder.remove();
      return { drawn: d[0].length, records: rec.n, max: MAX_POINTS, maxU, minU, trueMax, trueMin, first: d[0][0], last: d[0][d[0].length - 1], build: t1 - t0, redraw: t2 - t1 };
    });
    log(`     ${r.records} records -> ${r.drawn} drawn; build ${r.build.toFixed(0)} ms, redraw ${r.redraw.toFixed(0)} ms (information, not a pass condition)`);
    assert(r.drawn <= r.max && r.drawn > 500, `drawn ${r.drawn}`);
    assert(r.maxU === r.trueMax && r.trueMax > 5, `the spike at record 54321 was lost (max U drawn ${r.maxU}, in the data ${r.trueMax})`);
    assert(r.minU === r.trueMin, `the minimum was lost (${r.minU} drawn, ${r.trueMin} in the data)`);
    assert(r.first === 0 && r.last === 1000000 + 199 * 10, `x extent ${r.first}..${r.last}`);
  });

  await check('static files: content types, no listing, no escape', async () => {
    const types = { '/': 'text/html', '/app.css': 'text/css', '/plots.js': 'text/javascript', '/vendor/uPlot.iife.min.js': 'text/javascript',
      '/favicon.svg': 'image/svg+xml', '/examples/index.json': 'application/json' };
    for (const [p, t] of Object.entries(types)) {
      const r = await fetch(BASE + p);
      assert(r.ok && r.headers.get('content-type').startsWith(t), `${p}: ${r.status} ${r.headers.get('content-type')}`);
    }
    for (const p of ['/vendor/', '/examples/', '/../CMakeLists.txt', '/%2e%2e/CMakeLists.txt', '/.hidden']) {
      const r = await fetch(BASE + p);
      assert(r.status === 404, `${p}: ${r.status}`);
    }
  });

  exitCode = failed ? 1 : 0;
} catch (e) {
  failed++;
  log(`FAIL setup: ${e.stack || e.message}`);
} finally {
  await cleanup();
  if (failed) {
    const logText = fs.readFileSync(path.join(tmp, 'boltzd.log'), 'utf8');
    console.log(`--- boltzd log (last lines) ---\n${logText.split('\n').slice(-25).join('\n')}`);
  } else fs.rmSync(tmp, { recursive: true, force: true });
  console.log(`${passed} passed, ${failed} failed (${((Date.now() - T0) / 1000).toFixed(1)} s; screenshots in ${SHOTS})`);
  process.exit(failed ? 1 : exitCode);
}
