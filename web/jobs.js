// jobs.js: the jobs page: the table of top-level jobs (sweeps as one row), filtered by status and
// owner (kept in the URL), refreshed every 2 s while the tab is visible; cancel and delete with a
// second click to confirm. Errors of an action show in its row; 401/403 also in the banner.
import { api, describe, el, $, banner, fmtNum, fmtInt, fmtTime, fmtTimeShort, statusBadge, progressBar, initHeader, FINAL } from './api.js';

const STATUSES = ['all', 'queued', 'running', 'succeeded', 'failed', 'cancelled'];
const REFRESH_MS = 2000;
const CONFIRM_MS = 4000;

const params = new URLSearchParams(location.search);
let status = STATUSES.includes(params.get('status')) ? params.get('status') : 'all';
let owner = params.get('owner') || '';
let limit = 100;
const rows = new Map();      // id -> {key, tr}
const armed = new Map();     // id -> {action, until}
const rowError = new Map();  // id -> message
let timer = null, inFlight = null;

initHeader('jobs');
renderFilters();
$('#owner').value = owner;
$('#owner').addEventListener('input', debounce(() => { owner = $('#owner').value.trim(); syncUrl(); reload(); }, 300));
$('#more').addEventListener('click', () => { limit += 100; reload(); });
document.addEventListener('visibilitychange', () => { if (!document.hidden) refresh(); });
refresh();

function renderFilters() {
  $('#filters').replaceChildren(...STATUSES.map((s) => el('button', {
    type: 'button', class: `chip${s === status ? ' on' : ''}`, 'aria-pressed': String(s === status), dataset: { status: s },
    onclick: () => { status = s; syncUrl(); renderFilters(); reload(); },
  }, s)));
}

function syncUrl() {
  const q = new URLSearchParams();
  if (status !== 'all') q.set('status', status);
  if (owner) q.set('owner', owner);
  history.replaceState(null, '', q.toString() ? `?${q}` : location.pathname);
}

function reload() {
  for (const { tr } of rows.values()) tr.remove();
  rows.clear();
  refresh();
}

async function refresh() {
  clearTimeout(timer);
  inFlight?.abort();
  const ctl = new AbortController();
  inFlight = ctl;
  const q = new URLSearchParams({ limit: String(limit) });
  if (status !== 'all') q.set('status', status);
  if (owner) q.set('owner', owner);
  try {
    const data = await api(`jobs?${q}`, { signal: ctl.signal });
    render(data.jobs);
    $('#more').hidden = data.count < limit;
    $('#updated').textContent = `updated ${new Date().toLocaleTimeString()}`;
    $('#updated').classList.remove('stale');
  } catch (e) {
    if (e.name === 'AbortError') return;
    $('#updated').textContent = `not updated: ${describe(e)}`;
    $('#updated').classList.add('stale');
  } finally {
    if (inFlight === ctl) {
      inFlight = null;
      timer = setTimeout(() => { if (!document.hidden) refresh(); }, REFRESH_MS);
    }
  }
}

function render(jobs) {
  const body = $('#jobs tbody');
  const seen = new Set();
  let prev = null;
  for (const j of jobs) {
    seen.add(j.id);
    const a = armed.get(j.id);
    if (a && a.until < Date.now()) armed.delete(j.id);
    const key = JSON.stringify([j, armed.get(j.id)?.action, rowError.get(j.id)]);
    let r = rows.get(j.id);
    if (!r || r.key !== key) {
      const tr = row(j);
      if (r) r.tr.replaceWith(tr);
      r = { key, tr };
      rows.set(j.id, r);
    }
    // keep newest-first order
    if (prev ? prev.nextSibling !== r.tr : body.firstChild !== r.tr) prev ? prev.after(r.tr) : body.prepend(r.tr);
    prev = r.tr;
  }
  for (const [id, r] of rows) if (!seen.has(id)) { r.tr.remove(); rows.delete(id); }
  const empty = $('#empty');
  empty.hidden = jobs.length > 0;
  empty.replaceChildren(status === 'all' && !owner
    ? el('span', 'No jobs yet. ', el('a', { href: 'submit.html' }, 'Submit one'), ' or POST a spec to /api/v1/jobs.')
    : el('span', `No ${status === 'all' ? '' : `${status} `}jobs${owner ? ` of ${owner}` : ''}.`));
}

function row(j) {
  const sweep = j.n_children > 0;
  const href = `job.html?id=${j.id}`;
  const name = el('td.name', el('a', { href }, j.name),
    sweep ? el('span.tag', { title: j.batched ? 'a batched sweep: one job runs a chain per T' : 'a temperature sweep: one chain per T' },
      `${j.batched ? 'batched' : 'sweep'} · ${j.n_children} T`) : null);
  const err = j.error ? el('div.row-error', { title: j.error }, j.error) : null;
  if (err) name.append(err);
  const started = el('td.time', { title: j.started ? fmtTime(j.started) : '' }, fmtTimeShort(j.started));
  const finished = el('td.time', { title: j.finished ? fmtTime(j.finished) : '' }, fmtTimeShort(j.finished));
  const tr = el('tr', { dataset: { id: j.id, status: j.status } },
    el('td.num', el('a', { href }, `#${j.id}`)),
    name,
    el('td', j.owner),
    el('td', el('code', j.method)),
    el('td.num', sweep ? '–' : j.T == null ? '–' : fmtNum(j.T, 3)),
    el('td', statusBadge(j.status, j.cancel_requested ? 'cancel requested' : null),
      j.cancel_requested && !FINAL.has(j.status) ? el('span.muted.small', ' cancelling…') : null),
    el('td.progress-col', progressBar(j), el('div.small.muted', `${fmtInt(j.step)} / ${fmtInt(j.steps)}`)),
    el('td.num', j.status === 'running' && j.steps_per_s ? fmtNum(j.steps_per_s, 3) : '–'),
    el('td', j.backend || '–'),
    started, finished,
    el('td.actions', actions(j)));
  return tr;
}

function actions(j) {
  const out = [];
  const a = armed.get(j.id);
  if (!FINAL.has(j.status) && !j.cancel_requested) out.push(actionButton(j, 'cancel', a));
  if (FINAL.has(j.status)) out.push(actionButton(j, 'delete', a));
  const msg = rowError.get(j.id);
  if (msg) out.push(el('div.action-error', { role: 'alert' }, msg));
  return out;
}

function actionButton(j, action, a) {
  const confirming = a?.action === action;
  const label = confirming ? (action === 'cancel' ? 'Really cancel?' : 'Really delete?') : (action === 'cancel' ? 'Cancel' : 'Delete');
  return el('button', {
    type: 'button', class: `small ${confirming ? 'danger' : ''}`, dataset: { action },
    title: action === 'cancel' ? 'stop this job (a sweep: all its chains); click twice' : 'delete the job and its files; click twice',
    onclick: () => act(j, action),
  }, label);
}

async function act(j, action) {
  const a = armed.get(j.id);
  rowError.delete(j.id);
  if (a?.action !== action || a.until < Date.now()) {
    armed.set(j.id, { action, until: Date.now() + CONFIRM_MS });
    setTimeout(() => { if (armed.get(j.id)?.action === action && armed.get(j.id).until <= Date.now()) { armed.delete(j.id); refresh(); } }, CONFIRM_MS + 50);
    refresh();
    return;
  }
  armed.delete(j.id);
  try {
    if (action === 'cancel') await api(`jobs/${j.id}/cancel`, { method: 'POST' });
    else await api(`jobs/${j.id}`, { method: 'DELETE' });
    banner(null);
  } catch (e) {
    rowError.set(j.id, `${action} failed: ${describe(e)}`);
  }
  refresh();
}

function debounce(f, ms) {
  let t = null;
  return (...a) => { clearTimeout(t); t = setTimeout(() => f(...a), ms); };
}
