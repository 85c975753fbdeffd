// api.js: the dashboard's common parts: JSON requests to /api/v1 (with the stored bearer
// token), API errors as exceptions that keep the error's code and field, the header bar (nav,
// daemon health, token field), the page-wide error banner, and small DOM/format helpers.

export const API = new URL('api/v1/', document.baseURI).pathname; // relative, so a proxy prefix works
const TOKEN_KEY = 'boltzd.token';

export function token() {
  try { return localStorage.getItem(TOKEN_KEY) || ''; } catch { return ''; }
}
export function setToken(t) {
  try { t ? localStorage.setItem(TOKEN_KEY, t) : localStorage.removeItem(TOKEN_KEY); } catch { /* private mode */ }
}
export function authHeaders() {
  const t = token();
  return t ? { Authorization: `Bearer ${t}` } : {};
}

/** An API answer that was not 2xx: {status, code, message, field} as the API sent them. */
export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
    this.field = field || null;
  }
  get auth() { return this.status === 401 || this.status === 403; }
}

/** Request path (relative to /api/v1) and return the parsed JSON body; throws ApiError. */
export async function api(path, { method = 'GET', body, headers = {}, signal } = {}) {
  let res;
  try {
    res = await fetch(API + path, {
      method, signal, body,
      headers: { Accept: 'application/json', ...(body ? { 'Content-Type': 'application/json' } : {}),
                 ...authHeaders(), ...headers },
      cache: 'no-store',
    });
  } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new ApiError(0, 'network', `cannot reach boltzd (${e.message})`);
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { /* not JSON */ }
  if (!res.ok) {
    const err = data && data.error;
    const msg = err?.message || text.trim().slice(0, 300) || res.statusText;
    const e = new ApiError(res.status, err?.code || `http_${res.status}`, msg, err?.field);
    if (e.auth) banner(authMessage(e));
    throw e;
  }
  return data;
}

/** Request path and return the body as text (CSV). */
export async function apiText(path, { signal } = {}) {
  const res = await fetch(API + path, { headers: authHeaders(), cache: 'no-store', signal });
  const text = await res.text();
  if (!res.ok) {
    let err = null;
    try { err = JSON.parse(text).error; } catch { /* not JSON */ }
    const e = new ApiError(res.status, err?.code || `http_${res.status}`, err?.message || res.statusText, err?.field);
    if (e.auth) banner(authMessage(e));
    throw e;
  }
  return text;
}

function authMessage(e) {
  return e.status === 401
    ? `Not signed in (401): ${e.message}. Paste an API token into the token field at the top right.`
    : `Not allowed (403): ${e.message}. Your token does not permit this.`;
}

/** One line for an error: "404 not_found: no job 7" or the plain message for network trouble. */
export function describe(e) {
  if (e instanceof ApiError) return e.status ? `${e.status} ${e.code}: ${e.message}` : e.message;
  return String(e?.message || e);
}

/**
 * A download link to an API path. A plain link cannot send the Authorization header, so with a
 * token stored a click fetches the file with it and saves the blob under the same name.
 */
export function downloadLink(path, filename, text, title) {
  const a = el('a', { href: API + path, download: filename || '', title });
  a.append(text);
  a.addEventListener('click', async (ev) => {
    if (!token()) return;
    ev.preventDefault();
    try {
      const res = await fetch(API + path, { headers: authHeaders(), cache: 'no-store' });
      if (!res.ok) {
        let err = null;
        try { err = (await res.json()).error; } catch { /* not JSON */ }
        throw new ApiError(res.status, err?.code || `http_${res.status}`, err?.message || res.statusText, err?.field);
      }
      const url = URL.createObjectURL(await res.blob());
      const cd = res.headers.get('Content-Disposition') || '';
      const name = filename || /filename="?([^";]+)"?/.exec(cd)?.[1] || path.split('/').pop();
      const tmp = el('a', { href: url, download: name });
      document.body.append(tmp);
      tmp.click();
      tmp.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (e) {
      banner(`Download failed: ${describe(e)}`);
    }
  });
  return a;
}

/* ---------------------------------------------------------------- DOM helpers */

/** el('div.card#x', {title: 'y', onclick: f}, child, 'text', ...) */
export function el(tag, attrs, ...kids) {
  const m = /^([a-z0-9]+)((?:[.#][\w-]+)*)$/i.exec(tag);
  const node = document.createElement(m ? m[1] : tag);
  if (m && m[2]) for (const part of m[2].match(/[.#][\w-]+/g)) {
    if (part[0] === '.') node.classList.add(part.slice(1)); else node.id = part.slice(1);
  }
  if (attrs && (typeof attrs !== 'object' || attrs instanceof Node || Array.isArray(attrs))) {
    kids.unshift(attrs);
    attrs = null;
  }
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v == null || v === false) continue;
    if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else if (k === 'dataset') Object.assign(node.dataset, v);
    else if (k in node && typeof v !== 'string') node[k] = v;
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const k of kids.flat(Infinity)) if (k != null && k !== false) node.append(k instanceof Node ? k : String(k));
  return node;
}

export const $ = (sel, root = document) => root.querySelector(sel);

/** The page-wide banner for errors that are not about one field (auth, network, 5xx). */
export function banner(message, kind = 'error') {
  let b = $('#banner');
  if (!b) return;
  if (!message) { b.hidden = true; b.replaceChildren(); return; }
  b.className = `banner ${kind}`;
  b.replaceChildren(el('span', message), el('button.link', { type: 'button', title: 'dismiss', onclick: () => banner(null) }, '×'));
  b.hidden = false;
}

/* ---------------------------------------------------------------- formatting */

export function fmtNum(v, digits = 4) {
  if (v == null || !Number.isFinite(v)) return '–';
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e6 || a < 1e-3) return v.toExponential(digits - 1).replace('e+', 'e');
  return Number(v.toPrecision(digits)).toString();
}

export function fmtInt(v) {
  return v == null || !Number.isFinite(v) ? '–' : Math.round(v).toLocaleString('en-US');
}

export function fmtDuration(s) {
  if (s == null || !Number.isFinite(s)) return '–';
  s = Math.max(0, Math.round(s));
  const d = Math.floor(s / 86400), h = Math.floor(s % 86400 / 3600), m = Math.floor(s % 3600 / 60), ss = s % 60;
  if (d) return `${d}d ${h}h`;
  if (h) return `${h}h ${String(m).padStart(2, '0')}m`;
  if (m) return `${m}m ${String(ss).padStart(2, '0')}s`;
  return `${ss}s`;
}

/** ISO time as local "YYYY-MM-DD HH:MM:SS" (the title keeps the UTC text). */
export function fmtTime(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

/** Short form for tables: "HH:MM:SS" today, else "YYYY-MM-DD HH:MM". */
export function fmtTimeShort(iso) {
  if (!iso) return '–';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const full = fmtTime(iso);
  return d.toDateString() === new Date().toDateString() ? full.slice(11) : full.slice(0, 16);
}

export function fmtBytes(b) {
  if (b == null || !Number.isFinite(b)) return '–';
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (b >= 1024 && i < u.length - 1) { b /= 1024; i++; }
  return `${i ? b.toFixed(b < 10 ? 2 : b < 100 ? 1 : 0) : b} ${u[i]}`;
}

export const FINAL = new Set(['succeeded', 'failed', 'cancelled']);

export function statusBadge(status, extra) {
  return el(`span.badge.s-${status}`, { title: extra || status }, status);
}

/** A progress bar with its text ("42% · ETA 3m 10s"). */
export function progressBar(job) {
  const p = Math.max(0, Math.min(1, job.progress || 0));
  const pct = p * 100;
  let text = `${pct < 10 && pct > 0 ? pct.toFixed(1) : Math.floor(pct)}%`;
  if (job.status === 'running' && job.eta_s != null) text += ` · ETA ${fmtDuration(job.eta_s)}`;
  return el('div.progress', { title: `step ${fmtInt(job.step)} of ${fmtInt(job.steps)}` },
    el('div.bar', el(`div.fill.s-${job.status}`, { style: `width:${pct.toFixed(2)}%` })),
    el('span.ptext', text));
}

/* ---------------------------------------------------------------- header bar */

/** Fill <header id="top"> with brand, nav, daemon health and the token field. */
export function initHeader(active) {
  const top = $('#top');
  if (!top) return;
  const link = (href, name, key) => el('a', { href, class: active === key ? 'active' : null }, name);
  const health = el('span.health#health', { title: 'daemon health' }, '…');
  const tok = el('input#token', { type: 'password', placeholder: 'API token', autocomplete: 'off', spellcheck: 'false',
                                  value: token(), title: 'Bearer token sent with every request (kept in this browser)' });
  tok.addEventListener('change', () => { setToken(tok.value.trim()); banner(null); refreshHealth(); });
  top.replaceChildren(
    el('a.brand', { href: './' }, el('img', { src: 'favicon.svg', alt: '', width: 22, height: 22 }), 'boltzd'),
    el('nav', link('./', 'Jobs', 'jobs'), link('submit.html', 'Submit', 'submit')),
    el('span.spacer'), health,
    el('form.token', { onsubmit: (e) => { e.preventDefault(); tok.dispatchEvent(new Event('change')); } }, el('label', 'token ', tok)));
  refreshHealth();
  setInterval(() => { if (!document.hidden) refreshHealth(); }, 10000);
}

async function refreshHealth() {
  const h = $('#health');
  if (!h) return;
  try {
    const r = await fetch(API + 'health', { headers: authHeaders(), cache: 'no-store' });
    const j = await r.json();
    h.className = `health ${j.status === 'ok' ? 'ok' : 'warn'}`;
    h.textContent = `v${j.version} · ${j.backends} · ${j.workers} worker${j.workers === 1 ? '' : 's'} · ${j.running} running · ${j.queued} queued`;
    h.title = `daemon ${j.status}, up ${fmtDuration(j.uptime_s)}, store ${j.store_ok ? 'ok' : 'NOT ok'}`;
  } catch {
    h.className = 'health down';
    h.textContent = 'daemon unreachable';
  }
}
