// submit.js: the submit page: a JSON editor (textarea with line numbers) prefilled from the
// examples (web/examples/, copied from examples/ by scripts/web-deps) or from an earlier job
// (?from=ID); a live syntax check; the API's validation errors shown next to the field they name
// (the error's "field", e.g. "sampler.T" or "model.hidden[0]", located in the text by a small
// JSON parser that remembers where every key is); a preview of the parameter count and the
// memory a chain needs; and, when sampler.T is a list, a "batched" checkbox and an "exchange
// every" field that write "batched" and "exchange": {"every": N} into the spec (and follow it).
import { api, describe, el, $, banner, fmtInt, fmtBytes, initHeader } from './api.js';

const LINE = 19;     // px, as in app.css (.code textarea, .gutter div)
const PAD = 10;      // textarea's top padding
const ta = $('#spec'), gutter = $('#gutter'), marks = $('#marks');
let apiErrors = [];  // [{field, message}] from the last submit, until the text changes

initHeader('submit');
init();

async function init() {
  $('#user').value = localStorage.getItem('boltzd.user') || '';
  ta.addEventListener('input', () => { apiErrors = []; clearFieldNotes(); update(); });
  ta.addEventListener('scroll', () => { gutter.scrollTop = ta.scrollTop; placeMarks(); });
  ta.addEventListener('keydown', (e) => {
    if (e.key === 'Tab' && !e.shiftKey) { e.preventDefault(); document.execCommand('insertText', false, '  '); }
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) { e.preventDefault(); submit(); }
  });
  new ResizeObserver(() => { gutter.style.height = `${ta.offsetHeight}px`; placeMarks(); }).observe(ta);
  $('#format').addEventListener('click', format);
  $('#submit').addEventListener('click', submit);
  $('#example').addEventListener('change', () => loadExample($('#example').value));
  $('#batched').addEventListener('change', applyBatch);
  $('#exchange-every').addEventListener('change', applyBatch);

  const from = Number(new URLSearchParams(location.search).get('from'));
  let examples = [];
  try {
    const r = await fetch('examples/index.json', { cache: 'no-cache' });
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    examples = await r.json();
  } catch (e) {
    banner(`The example specs are missing from web/examples/ (${e.message}); run scripts/web-deps.`);
  }
  const sel = $('#example');
  sel.replaceChildren(...examples.map((x) => el('option', { value: x.file }, x.name)));
  if (Number.isInteger(from) && from > 0) {
    sel.prepend(el('option', { value: `job:${from}` }, `job #${from}`));
    sel.value = `job:${from}`;
    await loadExample(`job:${from}`);
  } else if (examples.length) {
    sel.value = examples.some((x) => x.file === 'spin-small.json') ? 'spin-small.json' : examples[0].file;
    await loadExample(sel.value);
  } else update();
}

async function loadExample(file) {
  let text;
  try {
    if (file.startsWith('job:')) {
      const j = await api(`jobs/${file.slice(4)}`);
      const spec = { ...j.spec, name: `${j.spec.name}-again` };
      text = JSON.stringify(spec, null, 2);
    } else {
      const r = await fetch(`examples/${encodeURIComponent(file)}`, { cache: 'no-cache' });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      text = await r.text();
    }
  } catch (e) {
    banner(`Cannot load ${file}: ${describe(e)}`);
    return;
  }
  ta.value = text.replace(/\s+$/, '') + '\n';
  apiErrors = [];
  clearFieldNotes();
  update();
}

function format() {
  try {
    ta.value = JSON.stringify(JSON.parse(ta.value), null, 2) + '\n';
    apiErrors = [];
    update();
  } catch { update(); }
}

/* ---------------------------------------------------------------- the editor's state */

let parsed = null;
function update() {
  const text = ta.value;
  const lines = text.split('\n').length;
  if (gutter.childElementCount !== lines) {
    gutter.replaceChildren(...Array.from({ length: lines }, (_, i) => el('div', String(i + 1))));
  }
  parsed = null;
  let syntax = null;
  try { parsed = parseJson(text); } catch (e) { syntax = e; }
  const s = $('#syntax');
  if (syntax) { s.textContent = `JSON: ${syntax.message} (line ${syntax.line})`; s.style.color = 'var(--danger)'; }
  else { s.textContent = 'JSON ok'; s.style.color = 'var(--ok)'; }
  renderErrors(syntax);
  renderPreview(parsed?.value);
  syncBatch(parsed?.value);
}

/* ---------------------------------------------------------------- batched sweeps */

const isSweep = (spec) => Array.isArray(spec?.sampler?.T) && spec.sampler.T.length > 1;

/** The batched controls follow the text: shown for a list of temperatures, set from the spec. */
function syncBatch(spec) {
  const bar = $('#batch-bar');
  bar.hidden = !isSweep(spec);
  if (bar.hidden) return;
  const every = $('#exchange-every');
  $('#batched').checked = spec.batched === true;
  if (document.activeElement !== every) every.value = Number.isInteger(spec.exchange?.every) ? spec.exchange.every : 0;
  every.disabled = spec.batched !== true;
}

/** The controls into the text: "batched": true and "exchange": {"every": N} (both left out when off). */
function applyBatch() {
  const spec = parsed?.value;
  if (!spec || typeof spec !== 'object' || Array.isArray(spec)) return;
  const on = $('#batched').checked;
  const every = Math.max(0, Math.floor(Number($('#exchange-every').value) || 0));
  if (on) spec.batched = true; else delete spec.batched;
  if (on && every > 0) spec.exchange = { ...(spec.exchange || {}), every }; else delete spec.exchange;
  ta.value = JSON.stringify(spec, null, 2) + '\n';
  apiErrors = [];
  clearFieldNotes();
  update();
}

/** The error list under the editor and the marks in it. */
function renderErrors(syntax) {
  const items = [];
  const mk = [];
  if (syntax) {
    items.push({ text: `JSON syntax: ${syntax.message}`, line: syntax.line });
    mk.push({ line: syntax.line, col: syntax.col, text: syntax.message, field: null });
  }
  for (const e of apiErrors) {
    if (!e.field || e.field === 'priority' || e.field === 'X-Boltz-User') {
      items.push({ text: e.message, field: e.field });
      continue;
    }
    const loc = parsed ? locate(parsed.paths, e.field) : null;
    items.push({ text: e.message, field: e.field, line: loc?.line, start: loc?.start, end: loc?.end });
    if (loc) mk.push({ line: loc.line, col: loc.col, start: loc.start, end: loc.end, text: loc.exact ? e.message : `${e.message} (${e.field} is not in the spec)`, field: e.field });
  }
  $('#errors').replaceChildren(...items.map((it) => el('li', { dataset: { field: it.field || '' } },
    it.field ? el('code', it.field) : null, it.field ? ': ' : '', it.text,
    it.line ? [' ', el('a', { onclick: () => goTo(it.line, it.start, it.end) }, `line ${it.line}`)] : null)));
  markList = mk;
  gutter.querySelectorAll('.err').forEach((d) => d.classList.remove('err'));
  for (const m of mk) gutter.children[m.line - 1]?.classList.add('err');
  placeMarks();
}

let markList = [];
function placeMarks() {
  marks.replaceChildren();
  const code = ta.parentElement;
  code.querySelectorAll('.field-error').forEach((n) => n.remove());
  for (const m of markList) {
    const top = PAD + (m.line - 1) * LINE - ta.scrollTop;
    if (top < -LINE || top > ta.clientHeight) continue;
    marks.append(el('div.mark-line', { style: `top:${top}px` }));
    const left = Math.max(4, Math.min(ta.clientWidth - 200, 12 + (m.col - 1) * charWidth() - ta.scrollLeft - 8));
    const bubble = el('div.field-error', { role: 'alert', dataset: { field: m.field || '' }, style: `top:${top + LINE + 4}px;left:${left}px` }, m.text);
    code.append(bubble);
  }
}

let cw = 0;
function charWidth() {
  if (!cw) {
    const ctx = document.createElement('canvas').getContext('2d');
    ctx.font = getComputedStyle(ta).font;
    cw = ctx.measureText('0123456789').width / 10 || 7.5;
  }
  return cw;
}

/** Scroll to a line and select the field there (start..end), else the whole line. */
function goTo(line, start, end) {
  const lines = ta.value.split('\n');
  let pos = 0;
  for (let i = 0; i < line - 1; i++) pos += lines[i].length + 1;
  ta.focus();
  if (start != null && end != null) ta.setSelectionRange(start, end);
  else ta.setSelectionRange(pos, pos + lines[line - 1].length);
  ta.scrollTop = Math.max(0, (line - 4) * LINE);
  placeMarks();
}

/* Errors about the form's own fields (priority, as user) go under those inputs. */
function fieldNote(input, msg) {
  const n = el('div.field-error.static', { role: 'alert', dataset: { field: input.id } }, msg);
  n.style.position = 'static';
  n.style.marginTop = '4px';
  input.closest('label').after(n);
}
function clearFieldNotes() { document.querySelectorAll('.field-error.static').forEach((n) => n.remove()); }

/* ---------------------------------------------------------------- submit */

async function submit() {
  const btn = $('#submit');
  clearFieldNotes();
  banner(null);
  if (!parsed) { update(); ta.focus(); return; }
  const user = $('#user').value.trim();
  localStorage.setItem('boltzd.user', user);
  const prio = $('#priority').value.trim() || '0';
  btn.disabled = true;
  btn.textContent = 'Submitting…';
  try {
    const j = await api(`jobs?priority=${encodeURIComponent(prio)}`, {
      method: 'POST', body: ta.value, headers: user ? { 'X-Boltz-User': user } : {},
    });
    location.href = `job.html?id=${j.id}`;
    return;
  } catch (e) {
    if (e.status === 400 && e.field === 'priority') fieldNote($('#priority'), e.message);
    else if (e.status === 400 && e.field === 'X-Boltz-User') fieldNote($('#user'), e.message);
    else if (e.status === 400 || e.status === 413) apiErrors = [{ field: e.field, message: e.message }];
    else if (!e.auth) banner(`Submit failed: ${describe(e)}`);
    update();
    const first = markList[0];
    if (first) goTo(first.line, first.start, first.end);
  } finally {
    btn.disabled = false;
    btn.textContent = 'Submit job';
  }
}

/* ---------------------------------------------------------------- JSON with positions */

/**
 * Parse JSON text; returns {value, paths} where paths maps every member and element path in the
 * API's notation ("sampler.T", "model.hidden[0]") to {line, col, keyStart, valueStart}. Throws
 * Error with .line/.col on a syntax error.
 */
export function parseJson(text) {
  let i = 0;
  const paths = new Map();
  const lineStarts = [0];
  for (let k = 0; k < text.length; k++) if (text.charCodeAt(k) === 10) lineStarts.push(k + 1);
  const lc = (pos) => {
    let lo = 0, hi = lineStarts.length - 1;
    while (lo < hi) { const m = (lo + hi + 1) >> 1; if (lineStarts[m] <= pos) lo = m; else hi = m - 1; }
    return { line: lo + 1, col: pos - lineStarts[lo] + 1 };
  };
  const fail = (msg, pos = i) => {
    const e = new Error(msg);
    Object.assign(e, lc(Math.min(pos, text.length)));
    throw e;
  };
  const ws = () => { while (i < text.length && ' \t\n\r'.includes(text[i])) i++; };
  const what = () => (i >= text.length ? 'end of text' : `'${text[i]}'`);
  const str = () => {
    const start = i++;
    let out = '';
    for (;;) {
      if (i >= text.length) fail('unterminated string', start);
      const c = text[i];
      if (c === '"') { i++; return out; }
      if (c === '\\') {
        const n = text[i + 1];
        const map = { '"': '"', '\\': '\\', '/': '/', b: '\b', f: '\f', n: '\n', r: '\r', t: '\t' };
        if (n in map) { out += map[n]; i += 2; }
        else if (n === 'u' && /^[0-9a-fA-F]{4}$/.test(text.slice(i + 2, i + 6))) { out += String.fromCharCode(parseInt(text.slice(i + 2, i + 6), 16)); i += 6; }
        else fail('bad escape in string');
      } else if (c.charCodeAt(0) < 0x20) fail('control character in string (newline inside quotes?)');
      else { out += c; i++; }
    }
  };
  const value = (path) => {
    ws();
    const c = text[i];
    if (c === '{') {
      i++;
      const o = {};
      ws();
      if (text[i] === '}') { i++; return o; }
      for (;;) {
        ws();
        if (text[i] !== '"') fail(`expected a "key" but found ${what()}`);
        const keyStart = i;
        const k = str();
        ws();
        if (text[i] !== ':') fail(`expected ':' after "${k}" but found ${what()}`);
        i++;
        ws();
        const p = path ? `${path}.${k}` : k;
        const at = { ...lc(keyStart), keyStart, valueStart: i };
        paths.set(p, at);
        o[k] = value(p);
        at.end = i;
        ws();
        if (text[i] === ',') { i++; ws(); if (text[i] === '}') fail('trailing comma before }'); continue; }
        if (text[i] === '}') { i++; return o; }
        fail(`expected ',' or '}' but found ${what()}`);
      }
    }
    if (c === '[') {
      i++;
      const a = [];
      ws();
      if (text[i] === ']') { i++; return a; }
      for (;;) {
        ws();
        const p = `${path}[${a.length}]`;
        const at = { ...lc(i), keyStart: i, valueStart: i };
        paths.set(p, at);
        a.push(value(p));
        at.end = i;
        ws();
        if (text[i] === ',') { i++; ws(); if (text[i] === ']') fail('trailing comma before ]'); continue; }
        if (text[i] === ']') { i++; return a; }
        fail(`expected ',' or ']' but found ${what()}`);
      }
    }
    if (c === '"') return str();
    const m = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i, i + 400));
    if (m && m[0]) { i += m[0].length; return Number(m[0]); }
    for (const [w, v] of [['true', true], ['false', false], ['null', null]]) {
      if (text.startsWith(w, i)) { i += w.length; return v; }
    }
    return fail(`unexpected ${what()}`);
  };
  const v = value('');
  ws();
  if (i < text.length) fail(`unexpected ${what()} after the end of the spec`);
  return { value: v, paths };
}

/** Where a field named by the API is: itself, else its nearest ancestor present in the text. */
function locate(paths, field) {
  let f = field;
  while (f) {
    const p = paths.get(f);
    if (p) return { line: p.line, col: p.col, start: p.keyStart, end: p.end, exact: f === field };
    const cut = Math.max(f.lastIndexOf('.'), f.lastIndexOf('['));
    if (cut <= 0) break;
    f = f.slice(0, cut);
  }
  return { line: 1, col: 1, exact: false };
}

/* ---------------------------------------------------------------- the preview */

/**
 * Parameter count: layer widths [n_in, hidden..., classes], n = sum of a*b weights (+ b biases).
 * Memory estimate per chain, float32: 4 bytes x (data + 8 n) where data = (train + test) x n_in
 * inputs and 8 n covers the weight-sized vectors a sampler keeps (weights, momenta, gradient,
 * masses and noise-variance estimates, a proposal or checkpoint copy). Activations of one
 * mini-batch and the labels are left out. An estimate, not a measurement.
 */
export function estimate(spec) {
  const ds = spec?.dataset || {};
  const kind = ds.kind || 'spin';
  const model = spec?.model || {};
  const num = (v, d) => (typeof v === 'number' && Number.isFinite(v) ? v : d);
  let nIn = null, classes = null, train = null, test = null;
  if (kind === 'spin') { nIn = num(ds.n_in, 100); classes = num(ds.classes, 10); train = num(ds.train, 2000); test = num(ds.test, 10000); }
  else if (kind === 'fashion_mnist') {
    nIn = ds.projection && typeof ds.projection === 'object' ? num(ds.projection.dim, null) : 784;
    classes = 10; train = num(ds.train, 60000); test = num(ds.test, 10000);
  } else if (kind === 'npy') { classes = num(ds.classes, 0) || null; train = num(ds.train, 0) || null; test = num(ds.test, 0) || null; }
  const hidden = Array.isArray(model.hidden) ? model.hidden : [64, 32];
  const bias = model.bias !== false;
  const sizes = [nIn, ...hidden, classes];
  let n = 0, unknown = false;
  for (let l = 1; l < sizes.length; l++) {
    const a = sizes[l - 1], b = sizes[l];
    if (typeof a !== 'number' || typeof b !== 'number') { unknown = true; continue; }
    n += a * b + (bias ? b : 0);
  }
  const sampler = spec?.sampler || {};
  const temps = Array.isArray(sampler.T) ? sampler.T.length : 1;
  const steps = num(sampler.steps, null);
  const every = num(spec?.record?.every, 200);
  const sEvery = num(spec?.samples?.every, 0);
  const dataFloats = nIn != null && train != null ? (train + (test || 0)) * nIn : null;
  return {
    kind, sizes, bias, n: unknown ? null : n, temps, steps, method: sampler.method || 'pl',
    dataBytes: dataFloats == null ? null : 4 * dataFloats,
    memBytes: unknown || dataFloats == null ? null : 4 * (dataFloats + 8 * n),
    records: steps ? Math.floor(steps / every) + 1 : null,
    samples: steps && sEvery ? Math.floor(steps / sEvery) : 0,
    samplesBytes: steps && sEvery && !unknown ? Math.floor(steps / sEvery) * 4 * n : null,
  };
}

function renderPreview(spec) {
  const p = $('#preview');
  if (!spec || typeof spec !== 'object') {
    p.replaceChildren(el('h2', 'Preview'), el('p.muted', 'Fix the JSON to see the preview.'));
    return;
  }
  const e = estimate(spec);
  const q = (v) => (v == null ? '?' : String(v));
  const rows = [
    ['layers', el('span.layers', e.sizes.map(q).join(' → '), e.bias ? ' (+ biases)' : '')],
    ['data', e.dataBytes == null ? 'from the .npy files' : `${fmtBytes(e.dataBytes)} (${e.kind})`],
    ['memory per chain', el('b#mem', e.memBytes == null ? 'unknown until the data is read' : `≈ ${fmtBytes(e.memBytes)}`)],
    ['chains', e.temps <= 1 ? '1' : spec.batched === true
      ? `${e.temps} in one job (batched${spec.exchange?.every > 0 ? `, exchange every ${fmtInt(spec.exchange.every)} steps` : ''})`
      : `${e.temps} (a sweep: one job per T)`],
    ['steps', e.steps == null ? '?' : fmtInt(e.steps)],
    ['records', e.records == null ? '?' : `${fmtInt(e.records)} per chain`],
    ['weight samples', e.samples ? `${fmtInt(e.samples)} per chain, ${e.samplesBytes == null ? '?' : fmtBytes(e.samplesBytes)} on disk` : 'none'],
  ];
  const warn = [];
  if (e.n != null && e.n > 5e8) warn.push('More than 500 000 000 weights: the daemon will refuse this spec.');
  if (e.dataBytes != null && e.dataBytes > 16 * 2 ** 30) warn.push('The data set is over 16 GiB: the daemon will refuse this spec.');
  if (e.temps > 1 && e.memBytes != null) rows.splice(3, 0, ['memory, all chains at once', `≈ ${fmtBytes(e.memBytes * e.temps)}`]);
  p.replaceChildren(el('h2', 'Preview'),
    el('div.big#params', e.n == null ? '? parameters' : `${fmtInt(e.n)} parameters`),
    el('p.hint', e.n == null ? 'The input width or classes come from the .npy files.' : `the weights a chain samples (${e.method})`),
    el('table.kv', el('tbody', rows.map(([k, v]) => el('tr', el('td', k), el('td', v))))),
    ...warn.map((w) => el('p.warnflag', '⚠ ', w)),
    el('p.hint', 'Memory ≈ 4 bytes × (data + 8 × parameters): the float32 data set (train + test inputs) plus about eight '
      + 'weight-sized vectors (weights, momenta, gradient, masses, variance estimates, a proposal or checkpoint copy). '
      + 'Mini-batch activations and labels are left out; an estimate, not a measurement.'));
}
