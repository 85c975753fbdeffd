// job.js: the job page (job.html?id=N).
//
// One chain: its history is read in CSV pages from /observables (compact, parsed straight into
// columns), then the SSE stream is attached with ?since=LAST_STEP and feeds the plots live. The
// stream reconnects on its own (EventSource sends Last-Event-ID); with an API token stored it is
// read with fetch instead, because EventSource cannot send an Authorization header. It is closed
// once the job's final status arrives. Around the plots: the error of a failed job, the
// equilibrium summary (burn-in shaded on the plots), the spec, checkpoints and samples.
//
// A sweep (parent job): its chains, their equilibrium means with error bars against T, and the
// table behind them; chains still running show provisional means from their records so far.
//
// A batched sweep (all chains in one job) adds, above that: every chain's time series on shared
// plots (one colour per T, blue cold to red hot, legend "T = ..."), read like one chain's (CSV
// history of the parent's /observables, which holds every chain's records, then the parent's SSE
// stream), the replica-exchange acceptance per pair of neighbouring temperatures (table with bars,
// from the job's "exchange", polled with the sweep), and the group's checkpoints (one file for all
// chains; weights per chain).
import { api, apiText, API, token, authHeaders, describe, el, $, banner, fmtNum, fmtInt, fmtTime, fmtBytes,
         fmtDuration, statusBadge, progressBar, initHeader, downloadLink, FINAL } from './api.js';
import { Records, ChainRecords, chainKey, tempColor, LivePlot, TPlot } from './plots.js';

const PAGE = 20000;                // records per history request
const SUMMARY_EVERY_MS = 10000;    // summary and files refresh while running
const SWEEP_EVERY_MS = 3000;
const OBS = ['U', 'loss', 'w2', 'train_err', 'test_err', 'val_err', 'kin_T', 'r_mean', 'r_max', 'acc_rate'];
const CHAIN_OBS = ['U', 'train_err', 'w2', 'ex_acc'];   // a batched sweep's per-chain plots

const id = Number(new URLSearchParams(location.search).get('id'));
const root = $('#job');
let job = null;
let xAxis = localStorage.getItem('boltzd.x') === 't_wall' ? 't_wall' : 'step';

initHeader(null);
if (!Number.isInteger(id) || id < 1) fail('No job given: open this page as job.html?id=N from the jobs list.');
else start();

async function start() {
  try {
    job = await api(`jobs/${id}`);
  } catch (e) {
    fail(e.status === 404 ? `There is no job #${id} (deleted?).` : `Cannot load job #${id}: ${describe(e)}`);
    return;
  }
  document.title = `#${job.id} ${job.name} · boltzd`;
  if (job.n_children > 0) renderSweep();
  else renderChain();
}

function fail(msg) {
  root.replaceChildren(el('div.failure', el('h2', 'Cannot show this job'), el('pre', msg)),
    el('p', el('a', { href: './' }, '← all jobs')));
}

/* ---------------------------------------------------------------- header, shared */

function header() {
  const j = job;
  const head = el('div.job-head', el('h1', `#${j.id} ${j.name}`), statusBadge(j.status),
    j.cancel_requested && !FINAL.has(j.status) ? el('span.muted.small', 'cancelling…') : null,
    progressBar(j), el('span.spacer'), actions());
  const meta = el('div.job-meta',
    j.parent_id ? el('span', 'chain ', el('b', String(j.chain)), ' of sweep ', el('a', { href: `job.html?id=${j.parent_id}` }, `#${j.parent_id}`)) : null,
    el('span', 'owner ', el('b', j.owner)),
    el('span', 'method ', el('b', j.method)),
    j.n_children > 0 ? el('span', el('b', String(j.n_children)), ' temperatures') : el('span', 'T ', el('b', j.T == null ? '–' : fmtNum(j.T, 4))),
    el('span', 'step ', el('b', `${fmtInt(j.step)} / ${fmtInt(j.steps)}`)),
    el('span', 'steps/s ', el('b', j.status === 'running' && j.steps_per_s ? fmtNum(j.steps_per_s, 3) : '–')),
    j.status === 'running' ? el('span', 'ETA ', el('b', fmtDuration(j.eta_s))) : null,
    el('span', 'backend ', el('b', j.backend || '–')),
    el('span', 'submitted ', el('b', fmtTime(j.created))),
    el('span', 'started ', el('b', fmtTime(j.started))),
    el('span', 'finished ', el('b', fmtTime(j.finished))));
  const parts = [head, meta];
  if (j.error) parts.push(el('div.failure#failure', el('h2', `Job ${j.status}: the error`), el('pre', j.error)));
  return parts;
}

let armedAction = null;
function actions() {
  const box = el('span.job-actions');
  const mk = (action, label) => {
    const on = armedAction === action;
    return el('button', {
      type: 'button', class: on ? 'danger' : null, dataset: { action },
      onclick: async () => {
        if (!on) {
          armedAction = action;
          refreshHeader();
          setTimeout(() => { if (armedAction === action) { armedAction = null; refreshHeader(); } }, 4000);
          return;
        }
        armedAction = null;
        try {
          if (action === 'cancel') { job = await api(`jobs/${job.id}/cancel`, { method: 'POST' }); refreshHeader(); }
          else { await api(`jobs/${job.id}`, { method: 'DELETE' }); location.href = './'; }
        } catch (e) { banner(`${action} failed: ${describe(e)}`); refreshHeader(); }
      },
    }, on ? `Really ${action}?` : label);
  };
  if (!FINAL.has(job.status) && !job.cancel_requested) box.append(mk('cancel', 'Cancel'));
  if (FINAL.has(job.status)) box.append(mk('delete', 'Delete'));
  box.append(el('a.button', { href: `submit.html?from=${job.id}`, title: 'a new job from this spec' }, 'Resubmit…'));
  return box;
}

function refreshHeader() {
  const h = $('#header');
  if (h) h.replaceChildren(...header());
  document.title = `#${job.id} ${job.name} · boltzd`;
}

function specCard() {
  const text = JSON.stringify(job.spec, null, 2);
  const copy = el('button.small', { type: 'button', onclick: async () => {
    try { await navigator.clipboard.writeText(text); copy.textContent = 'Copied'; } catch { copy.textContent = 'Copy failed'; }
    setTimeout(() => { copy.textContent = 'Copy'; }, 1500);
  } }, 'Copy');
  return el('section.card#spec', el('h2', 'Spec', el('span.muted.small', '(normalised, with every default)'), el('span.spacer'), copy),
    el('pre.spec', text));
}

/* ---------------------------------------------------------------- one chain */

let records, plots = [], stream = null;

function plotDefs(method) {
  const defs = [
    { id: 'energy', title: 'Energy U and training loss', series: [{ key: 'U' }, { key: 'loss', dash: [5, 3] }], logY: true },
    { id: 'errors', title: 'Training and test error', series: [{ key: 'train_err', label: 'train error' }, { key: 'test_err', label: 'test error' },
      ...(method === 'adam' ? [{ key: 'val_err', label: 'validation error' }] : [])] },
    { id: 'w2', title: 'Mean squared weight w²', series: [{ key: 'w2', label: 'w2' }] },
  ];
  if (method !== 'adam') defs.push({ id: 'kin_T', title: 'Kinetic temperature against T', series: [{ key: 'kin_T' }], refKey: 'T', refLabel: 'T (target)' });
  if (method === 'pl') defs.push({ id: 'ratio', title: 'Temperature ratio r (pL)', series: [{ key: 'r_mean', label: 'r mean' }, { key: 'r_max', label: 'r max' }], logY: true });
  if (method === 'hmc' || method === 'mbhmc') defs.push({ id: 'acc', title: 'Acceptance rate (hMC)', series: [{ key: 'acc_rate', label: 'acceptance' }] });
  return defs;
}

/** The x-axis switch (step or wall-clock) of the live plots. */
function xAxisSwitch() {
  const seg = el('span.seg', ...['step', 't_wall'].map((x) => el('button', {
    type: 'button', class: x === xAxis ? 'on' : null, dataset: { x },
    onclick: (ev) => {
      xAxis = x;
      localStorage.setItem('boltzd.x', x);
      for (const b of seg.children) b.classList.toggle('on', b.dataset.x === x);
      plots.forEach((p) => p.setX(x));
      ev.currentTarget.blur();
    },
  }, x === 'step' ? 'step' : 'wall-clock time')));
  return seg;
}

function renderChain() {
  const live = el('span.live#live', 'loading history…');
  const seg = xAxisSwitch();
  const csv = downloadLink(`jobs/${job.id}/observables?format=csv&limit=100000`, `job-${job.id}-observables.csv`, 'records as CSV',
    'the first 100 000 records (the API\'s page limit; page on with ?since=STEP)');
  const grid = el('div.grid#plots');
  root.replaceChildren(el('div#header', ...header()),
    el('div.toolbar', el('span.muted.small', 'x axis'), seg, live, el('span.spacer'), csv),
    grid,
    el('section.card#summary', el('h2', 'Equilibrium summary'), el('p.muted', 'Loading…')),
    el('section.card#files', el('h2', 'Checkpoints and samples'), el('p.muted', 'Loading…')),
    specCard());
  records = new Records(OBS);
  plots = plotDefs(job.method).map((d) => new LivePlot(grid, records, { ...d, x: xAxis }));
  loadHistory().then(() => {
    if (FINAL.has(job.status)) {
      setLive('done', `${job.status} · ${fmtInt(records.n)} records`);
      if (records.n === 0) {
        plots.forEach((p) => p.destroy());
        plots = [];
        grid.replaceWith(el('section.card.empty-plots', el('p.muted', `This job ${job.status} without recording any observables.`)));
      }
    } else attachStream();
    refreshDetails();
  });
  pollJob();
}

/* The header (step, steps/s, ETA) from the job every 3 s while it is not final. */
let pollTimer = null;
async function pollJob() {
  clearTimeout(pollTimer);
  if (FINAL.has(job.status)) return;
  if (!document.hidden) {
    try {
      const j = await api(`jobs/${job.id}`);
      const ended = FINAL.has(j.status) && !FINAL.has(job.status);
      job = j;
      refreshHeader();
      if (ended && !stream) refreshDetails(); // else the stream's final status event does it
    } catch { /* the next poll will tell */ }
  }
  pollTimer = setTimeout(pollJob, 3000);
}

async function loadHistory() {
  for (;;) {
    let text;
    try {
      text = await apiText(`jobs/${job.id}/observables?format=csv&limit=${PAGE}&since=${records.lastStep}`);
    } catch (e) {
      setLive('retry', `history: ${describe(e)}`);
      return;
    }
    const added = records.pushCsv(text);
    plots.forEach((p) => p.update());
    setLive('', `loading history… ${fmtInt(records.n)} records`);
    if (added < PAGE) return;
  }
}

function setLive(state, text) {
  const l = $('#live');
  if (!l) return;
  l.className = `live ${state}`;
  l.textContent = text;
}

function onRecord(rec) {
  if (records.push(rec)) plots.forEach((p) => p.update());
  liveText();
}

let liveTimer = null;
function liveText() {
  if (liveTimer) return;
  liveTimer = setTimeout(() => { liveTimer = null; if (stream) setLive('on', `live · ${fmtInt(records.n)} records`); }, 200);
}

async function onStatus(s) {
  if (s.status === 'deleted') {
    closeStream();
    setLive('', 'deleted');
    banner(`Job #${job.id} was deleted.`, 'info');
    return;
  }
  const changed = s.status !== job.status || s.cancel_requested !== job.cancel_requested;
  Object.assign(job, { status: s.status, step: s.step, steps: s.steps, cancel_requested: s.cancel_requested });
  if (s.error) job.error = s.error;
  if (FINAL.has(s.status)) {
    closeStream();
    setLive('done', `${s.status} · ${fmtInt(records.n)} records`);
  }
  if (changed || FINAL.has(s.status)) {
    if (job.n_children > 0) { sweepTick(true); return; } // a batched sweep: its own refresh
    try { job = await api(`jobs/${job.id}`); } catch { /* keep what the stream said */ }
    refreshHeader();
    refreshDetails();
  }
}

function attachStream() {
  closeStream();
  const url = `${API}jobs/${job.id}/stream?since=${records.lastStep}`;
  stream = token() ? fetchStream(url) : eventStream(url);
}

function closeStream() {
  if (stream) { stream.close(); stream = null; }
}

/** The stream through EventSource (reconnects by itself, sending Last-Event-ID). */
function eventStream(url) {
  const es = new EventSource(url);
  let retry = null;
  es.addEventListener('open', () => setLive('on', `live · ${fmtInt(records.n)} records`));
  es.addEventListener('observable', (ev) => onRecord(JSON.parse(ev.data)));
  es.addEventListener('status', (ev) => onStatus(JSON.parse(ev.data)));
  es.addEventListener('error', () => {
    if (es.readyState === EventSource.CONNECTING) { setLive('retry', 'reconnecting…'); return; }
    // closed for good (an HTTP error): start again from the last record a little later
    setLive('retry', 'stream lost; retrying in 5 s…');
    retry = setTimeout(() => { if (stream?.es === es) attachStream(); }, 5000);
  });
  return { es, close() { clearTimeout(retry); es.close(); } };
}

/** The stream through fetch, for requests that need the Authorization header. */
function fetchStream(url) {
  const ctl = new AbortController();
  let lastId = null, closed = false;
  const run = async () => {
    while (!closed) {
      try {
        const headers = { ...authHeaders(), Accept: 'text/event-stream' };
        if (lastId != null) headers['Last-Event-ID'] = lastId;
        const res = await fetch(url, { headers, signal: ctl.signal, cache: 'no-store' });
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        setLive('on', `live · ${fmtInt(records.n)} records`);
        const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
        let buf = '';
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let k;
          while ((k = buf.search(/\r?\n\r?\n/)) >= 0) {
            const block = buf.slice(0, k);
            buf = buf.slice(k).replace(/^\r?\n\r?\n/, '');
            let ev = 'message', data = '';
            for (const line of block.split(/\r?\n/)) {
              if (line.startsWith('event:')) ev = line.slice(6).trim();
              else if (line.startsWith('data:')) data += line.slice(5).trim();
              else if (line.startsWith('id:')) lastId = line.slice(3).trim();
            }
            if (ev === 'observable') onRecord(JSON.parse(data));
            else if (ev === 'status') onStatus(JSON.parse(data));
          }
        }
      } catch (e) {
        if (closed || e.name === 'AbortError') return;
        setLive('retry', `stream lost (${e.message}); reconnecting…`);
      }
      if (!closed) { setLive('retry', 'reconnecting…'); await new Promise((r) => setTimeout(r, 2000)); }
    }
  };
  run();
  return { close() { closed = true; ctl.abort(); } };
}

/* summary and files: now, then every 15 s while the job runs */
let detailsTimer = null;
async function refreshDetails() {
  clearTimeout(detailsTimer);
  await Promise.all([loadSummary(), loadFiles()]);
  if (!FINAL.has(job.status)) detailsTimer = setTimeout(() => { if (!document.hidden) refreshDetails(); else detailsTimer = setTimeout(refreshDetails, 2000); }, SUMMARY_EVERY_MS);
}

const SUMMARY_ORDER = ['U', 'loss', 'w2', 'train_err', 'test_err', 'test_loss', 'val_err', 'val_loss', 'kin_T', 'r_mean', 'acc_rate'];

async function loadSummary() {
  const card = $('#summary');
  let s;
  try { s = await api(`jobs/${job.id}/summary`); } catch (e) {
    card.replaceChildren(el('h2', 'Equilibrium summary'), el('p.muted', `Not available: ${describe(e)}`));
    return;
  }
  plots.forEach((p) => p.setBurnIn(s.records > 0 ? s.burn_in : null));
  const obs = s.observables || {};
  const names = [...SUMMARY_ORDER.filter((k) => obs[k]), ...Object.keys(obs).filter((k) => !SUMMARY_ORDER.includes(k))];
  const h = el('h2', 'Equilibrium summary', FINAL.has(job.status) ? null : el('span.muted.small', '(provisional: the chain is still running)'));
  if (!names.length) {
    card.replaceChildren(h, el('p.muted', s.records ? 'Too few records after burn-in for a summary.'
      : FINAL.has(job.status) ? 'No records.' : 'No records yet.'));
    return;
  }
  const rows = names.map((k) => {
    const o = obs[k];
    const flags = [];
    if (o.window_capped) flags.push(['τ window capped', 'the autocorrelation window reached its cap: τ_int and the error may be underestimated; run longer']);
    if (o.ess != null && o.ess < 20) flags.push([`ESS ${fmtNum(o.ess, 2)}`, `only ${fmtNum(o.ess, 2)} effective samples: the error is itself uncertain`]);
    return el('tr', { dataset: { obs: k } }, el('td', el('code', k)),
      el('td.num', fmtNum(o.mean, 5)), el('td.num', o.stderr == null ? '–' : `± ${fmtNum(o.stderr, 2)}`),
      el('td.num', fmtNum(o.std, 3)), el('td.num', fmtNum(o.tau_int, 3)), el('td.num', fmtNum(o.ess, 3)), el('td.num', fmtInt(o.n)),
      el('td', flags.length ? el('span.warnflag', { title: flags.map((f) => f[1]).join('; ') }, `⚠ ${flags.map((f) => f[0]).join(', ')}`) : ''));
  });
  card.replaceChildren(h,
    el('table.compact', el('thead', el('tr', el('th', 'observable'), el('th.num', 'mean'), el('th.num', 'stderr'), el('th.num', 'std'),
      el('th.num', 'τ_int'), el('th.num', 'ESS'), el('th.num', 'n'), el('th', ''))), el('tbody', rows)),
    el('p.summary-note', `After discarding the first ${Math.round(s.burn_in * 100)}% of ${fmtInt(s.records)} records as burn-in (shaded on the plots). `
      + 'stderr = std·√(2τ_int/n), with τ_int from the autocorrelation summed over a self-consistent window (ALGORITHM.md §7).'));
}

async function loadFiles() {
  const card = $('#files');
  // /samples answers 404 until the first sample is written; ask only once one must exist (the
  // first is taken at step 0, so by step samples.every at the latest).
  const every = job.spec?.samples?.every || 0;
  const want = every > 0 && job.step >= every;
  let ck, sm;
  try {
    [ck, sm] = await Promise.all([api(`jobs/${job.id}/checkpoints`), want ? api(`jobs/${job.id}/samples`) : { count: 0 }]);
  } catch (e) {
    card.replaceChildren(el('h2', 'Checkpoints and samples'), el('p.muted', `Not available: ${describe(e)}`));
    return;
  }
  const base = `jobs/${job.id}`;
  const parts = [el('h2', 'Checkpoints and samples')];
  if (ck.checkpoints.length) {
    parts.push(el('table.compact.files#checkpoints', el('thead', el('tr', el('th.num', 'seq'), el('th.num', 'step'), el('th.num', 'size'), el('th', 'written'), el('th', 'download'))),
      el('tbody', ck.checkpoints.slice().reverse().map((c) => el('tr',
        el('td.num', String(c.seq)), el('td.num', fmtInt(c.step)), el('td.num', fmtBytes(c.size)),
        el('td.time', { title: `${c.created} · FNV-1a ${c.checksum}` }, fmtTime(c.created)),
        el('td', downloadLink(`${base}/checkpoints/${c.seq}`, `job-${job.id}-ckpt-${c.seq}.bzc`, '.bzc', 'the checkpoint file (resume, inspect)'), ' · ',
          downloadLink(`${base}/checkpoints/${c.seq}/weights.npy`, `job-${job.id}-ckpt-${c.seq}-weights.npy`, 'weights.npy', 'the weights as a NumPy float32 vector')))))));
  } else parts.push(el('p.muted', FINAL.has(job.status) ? 'No checkpoints.' : 'No checkpoints yet.'));
  if (sm.count > 0) {
    const show = 12;
    const ks = [...Array(sm.count).keys()];
    const pick = ks.length > show ? [...ks.slice(0, 3), null, ...ks.slice(-(show - 4))] : ks;
    parts.push(el('h3', { style: 'margin-top:12px' }, `${fmtInt(sm.count)} weight samples of ${fmtInt(sm.n)} weights (float32 .npy)`),
      el('div.small#samples', pick.map((k, i) => (k == null ? el('span.muted', ' … ') : [i && pick[i - 1] != null ? ' · ' : '',
        downloadLink(`${base}/samples/${k}.npy`, `job-${job.id}-sample-${k}.npy`, `#${k} (step ${fmtInt(sm.steps[k])})`, `weight sample ${k}`)]))));
  } else parts.push(el('p.muted', !every ? 'This job saves no weight samples (samples.every is 0).'
    : FINAL.has(job.status) ? 'No weight samples.' : 'No weight samples yet.'));
  card.replaceChildren(...parts);
}

/* ---------------------------------------------------------------- a sweep */

let tplots = [];
function renderSweep() {
  const grid = el('div.grid#tplots');
  root.replaceChildren(el('div#header', ...header()),
    ...(job.batched ? batchedParts() : []),
    el('section.card#chains', el('h2', 'Chains'), el('p.muted', 'Loading…')),
    grid,
    el('section.card#sweep-table', el('h2', 'Equilibrium means against T')),
    ...(job.batched ? [el('section.card#group-files', el('h2', 'Checkpoints'), el('p.muted', 'Loading…'))] : []),
    specCard());
  if (job.batched) startBatched();
  tplots = [
    new TPlot(grid, { id: 'T-energy', title: 'U and loss against T', series: [{ key: 'U' }, { key: 'loss' }] }),
    new TPlot(grid, { id: 'T-error', title: 'Training and test error against T', series: [{ key: 'train_err', label: 'train error' }, { key: 'test_err', label: 'test error' }] }),
    new TPlot(grid, { id: 'T-w2', title: 'w² against T', series: [{ key: 'w2', label: 'w2' }] }),
  ];
  sweepTick(false);
}

let sweepTimer = null;
async function sweepTick(reload = true) {
  clearTimeout(sweepTimer);
  if (reload) {
    try { job = await api(`jobs/${job.id}`); refreshHeader(); } catch (e) { banner(`Cannot refresh: ${describe(e)}`); }
  }
  renderChildren();
  if (job.batched) { renderExchange(); loadGroupFiles(); }
  const rows = await withProvisional(job.summary_vs_T || []);
  tplots.forEach((p) => p.set(rows));
  renderSweepTable(rows);
  if (!FINAL.has(job.status) || (job.children || []).some((c) => !FINAL.has(c.status)))
    sweepTimer = setTimeout(() => sweepTick(true), document.hidden ? 10000 : SWEEP_EVERY_MS);
}

/** Rows of chains without a final summary get their running means, marked provisional. */
async function withProvisional(rows) {
  return Promise.all(rows.map(async (r) => {
    if (r.status !== 'running' || r.U) return r;
    try {
      const s = await api(`jobs/${r.job}/summary`);
      const o = s.observables || {};
      if (!o.U) return r;
      const pick = (k) => (o[k] ? { mean: o[k].mean, stderr: o[k].stderr } : null);
      return { ...r, records: s.records, provisional: true, U: pick('U'), loss: pick('loss'), w2: pick('w2'), train_err: pick('train_err'), test_err: pick('test_err') };
    } catch { return r; }
  }));
}

function renderChildren() {
  const kids = job.children || [];
  const swatch = (c) => (job.batched ? el('span.swatch', { style: `background:${tempColor(c.chain, kids.length)}` }) : null);
  $('#chains').replaceChildren(el('h2', `Chains (${kids.length})`, job.batched ? el('span.muted.small', 'batched: one job runs them all') : null),
    el('table.compact', el('thead', el('tr', el('th.num', 'chain'), el('th.num', 'T'), el('th', 'job'), el('th', 'status'), el('th.progress-col', 'progress'), el('th.num', 'steps/s'), el('th', 'backend'))),
      el('tbody', kids.map((c) => el('tr', { dataset: { id: c.id } },
        el('td.num', String(c.chain)), el('td.num', swatch(c), fmtNum(c.T, 4)), el('td', el('a', { href: `job.html?id=${c.id}` }, `#${c.id} ${c.name}`)),
        el('td', statusBadge(c.status)), el('td.progress-col', progressBar(c)),
        el('td.num', c.status === 'running' && c.steps_per_s ? fmtNum(c.steps_per_s, 3) : '–'), el('td', c.backend || '–'))))));
}

function renderSweepTable(rows) {
  const cols = ['U', 'loss', 'w2', 'train_err', 'test_err'];
  const cell = (m) => (m && m.mean != null ? `${fmtNum(m.mean, 4)} ± ${fmtNum(m.stderr, 2)}` : '–');
  $('#sweep-table').replaceChildren(el('h2', 'Equilibrium means against T'),
    el('table.compact', el('thead', el('tr', el('th.num', 'T'), el('th', 'status'), el('th.num', 'records'), ...cols.map((c) => el('th.num', c)))),
      el('tbody', rows.slice().sort((a, b) => a.T - b.T).map((r) => el('tr',
        el('td.num', el('a', { href: `job.html?id=${r.job}` }, fmtNum(r.T, 4))),
        el('td', statusBadge(r.status), r.provisional ? el('span.muted.small', ' provisional') : null),
        el('td.num', fmtInt(r.records)), ...cols.map((c) => el('td.num', cell(r[c]))))))),
    el('p.summary-note', 'Means over each chain after its burn-in, ± one standard error corrected for autocorrelation. '
      + 'Chains still running show their means so far (provisional); queued chains have none.'));
}

/* ---------------------------------------------------------------- a batched sweep */

const sortedKids = () => (job.children || []).slice().sort((a, b) => a.chain - b.chain);
const fmtT = (T) => fmtNum(T, 3);

function batchedParts() {
  const csv = downloadLink(`jobs/${job.id}/observables?format=csv&limit=100000`, `job-${job.id}-observables.csv`, 'records as CSV',
    'every chain\'s records in (step, chain) order, the first 100 000 (page on with ?since=STEP)');
  return [
    el('div.toolbar', el('span.muted.small', 'x axis'), xAxisSwitch(), el('span.live#live', 'loading history…'), el('span.spacer'), csv),
    el('div.grid#chain-plots'),
    el('section.card#exchange', el('h2', 'Replica exchange'), el('p.muted', 'Loading…')),
  ];
}

/** Every chain on shared plots: history from the parent's records, then its stream. */
function startBatched() {
  const kids = sortedKids();
  const K = kids.length;
  const exchange = job.exchange?.every > 0;
  records = new ChainRecords(CHAIN_OBS, kids.map((c) => c.chain), exchange ? K : 0);
  const perChain = (key) => kids.map((c) => ({ key: chainKey(key, c.chain), label: `T = ${fmtT(c.T)}`, color: tempColor(c.chain, K) }));
  const defs = [
    { id: 'chains-U', title: 'Energy U of every chain', series: perChain('U'), logY: true },
    { id: 'chains-train_err', title: 'Training error of every chain', series: perChain('train_err') },
    { id: 'chains-w2', title: 'Mean squared weight w² of every chain', series: perChain('w2'), logY: true },
  ];
  if (exchange) {
    defs.push({ id: 'chains-ex_acc', title: 'Exchange acceptance per pair (cumulative)',
      series: kids.slice(0, -1).map((c, i) => ({ key: chainKey('ex_acc', c.chain), label: `T ${fmtT(c.T)} ↔ ${fmtT(kids[i + 1].T)}`, color: tempColor(c.chain, K) })) });
    // replica r starts at the r-th temperature, hence its colour
    defs.push({ id: 'replica-walk', title: 'Replica walk: the temperature each replica is at', logY: true,
      series: kids.map((c, r) => ({ key: chainKey('walk', r), label: `replica ${r}`, color: tempColor(r, K) })) });
  }
  const grid = $('#chain-plots');
  plots = defs.map((d) => new LivePlot(grid, records, { ...d, x: xAxis }));
  loadHistory().then(() => {
    if (FINAL.has(job.status)) setLive('done', `${job.status} · ${fmtInt(records.n)} steps of ${K} chains`);
    else attachStream();
  });
}

/** Acceptance per pair of neighbouring temperatures, as a table with bars, and the replica walk. */
function renderExchange() {
  const card = $('#exchange');
  const ex = job.exchange;
  if (!card) return;
  if (!ex || !(ex.every > 0)) {
    card.replaceChildren(el('h2', 'Replica exchange'), el('p.muted',
      'Off: the chains run side by side without exchanges. "exchange": {"every": N} in the spec swaps neighbouring temperatures every N steps.'));
    return;
  }
  const kids = sortedKids();
  const pct = (a) => (a == null ? '–' : `${(100 * a).toFixed(1)}%`);
  const rows = ex.pairs.map((p) => el('tr', { dataset: { pair: p.chain } },
    el('td.num', el('span.swatch', { style: `background:${tempColor(p.chain, kids.length)}` }), fmtT(p.T_low)),
    el('td.num', fmtT(p.T_high)),
    el('td.num.acc', pct(p.acceptance)),
    el('td', el('div.accbar', { title: pct(p.acceptance) }, el('div.accfill', { style: `width:${(100 * (p.acceptance || 0)).toFixed(1)}%;background:${tempColor(p.chain, kids.length)}` }))),
    el('td.num', `${fmtInt(p.accepts)} / ${fmtInt(p.attempts)}`)));
  const replicas = (ex.replicas || []).map((r, k) => `${fmtT(kids[k]?.T)}: ${r == null ? '–' : r}`).join(' · ');
  card.replaceChildren(el('h2', 'Replica exchange', el('span.muted.small', `every ${fmtInt(ex.every)} steps · ${fmtInt(ex.rounds)} rounds`
      + (ex.step != null ? ` by step ${fmtInt(ex.step)}` : ''))),
    el('table.compact.exchange', el('thead', el('tr', el('th.num', 'T low'), el('th.num', 'T high'), el('th.num', 'acceptance'), el('th', ''), el('th.num', 'accepted / tried'))),
      el('tbody', rows)),
    el('p.summary-note', el('b', `${ex.round_trips == null ? '–' : fmtInt(ex.round_trips)} round trips`),
      ' (a replica going from the lowest T to the highest and back). Replica now at each T: ', replicas, '. ',
      'Acceptance is cumulative since the start; pairs are tried in alternate rounds.'));
}

/** The group's checkpoints: one file for all chains, weights per chain. */
let groupFilesAt = 0;
async function loadGroupFiles() {
  const card = $('#group-files');
  if (!card || (Date.now() - groupFilesAt < SUMMARY_EVERY_MS && !FINAL.has(job.status))) return;
  groupFilesAt = Date.now();
  let ck;
  try { ck = await api(`jobs/${job.id}/checkpoints`); } catch (e) {
    card.replaceChildren(el('h2', 'Checkpoints'), el('p.muted', `Not available: ${describe(e)}`));
    return;
  }
  const kids = sortedKids();
  const base = `jobs/${job.id}/checkpoints`;
  card.replaceChildren(el('h2', 'Checkpoints', el('span.muted.small', 'one file holds every chain; weight samples are on each chain\'s page')),
    ck.checkpoints.length ? el('table.compact.files', el('thead', el('tr', el('th.num', 'seq'), el('th.num', 'step'), el('th.num', 'size'), el('th', 'written'), el('th', 'download'))),
      el('tbody', ck.checkpoints.slice().reverse().map((c) => el('tr',
        el('td.num', String(c.seq)), el('td.num', fmtInt(c.step)), el('td.num', fmtBytes(c.size)), el('td.time', fmtTime(c.created)),
        el('td', downloadLink(`${base}/${c.seq}`, `job-${job.id}-ckpt-${c.seq}.bzc`, '.bzc', 'the group checkpoint (every chain)'), ' · weights at T ',
          kids.map((k, i) => [i ? ' ' : '', downloadLink(`${base}/${c.seq}/weights.npy?chain=${k.chain}`, `job-${job.id}-ckpt-${c.seq}-chain-${k.chain}-weights.npy`,
            fmtT(k.T), `chain ${k.chain}'s weights as a NumPy float32 vector`)]))))))
      : el('p.muted', FINAL.has(job.status) ? 'No checkpoints.' : 'No checkpoints yet.'));
}
