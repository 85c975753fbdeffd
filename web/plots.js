// plots.js: the dashboard's plots on uPlot (web/vendor/uPlot.iife.min.js, the global `uPlot`).
//
// Records: a Records store keeps a job's observables column-wise (Float64Array, NaN for null),
// growing as history pages and stream events arrive. ChainRecords does the same for the chains of
// a batched sweep, which share their record steps: one row per step, a column per (observable,
// chain), so one LivePlot draws every chain (a series per chain, coloured by its T: tempColor).
//
// Decimation: a LivePlot never hands uPlot more than MAX_POINTS points, whatever the number of
// records. It splits the visible x range into buckets (at most one per pixel column) and keeps,
// for every series, the record with the smallest and the one with the largest value in each
// bucket (plus the first and last record). Spikes and the envelope of a noisy trace therefore
// survive exactly as they would at full resolution, and every point drawn is a real record.
// Zooming in (drag on the plot) re-decimates the zoomed range, so detail appears down to single
// records; double-click zooms out. The caption under each plot says how many records it shows.
/* global uPlot */

export const MAX_POINTS = 4000;
/* A log axis shows values from 1e-15 up: uPlot's tick steps stop at 1e-16 (below that its tick
 * search does not end), and a chain's r or loss can reach 1e-48. Smaller values are not drawn;
 * the caption says so. */
export const LOG_FLOOR = 1e-15;

const PALETTE = ['#2563eb', '#dc2626', '#059669', '#d97706', '#7c3aed', '#0891b2', '#db2777', '#4b5563'];
export const color = (i) => PALETTE[i % PALETTE.length];
/** The colour of temperature i of n (in increasing T): blue (cold) through green to red (hot). */
export const tempColor = (i, n) => `hsl(${Math.round(n > 1 ? 230 - 230 * i / (n - 1) : 230)}, 72%, 44%)`;
/** The column of observable key of one chain in a ChainRecords store. */
export const chainKey = (key, chain) => `${key}@${chain}`;

/* ---------------------------------------------------------------- records, column-wise */

export class Records {
  constructor(keys) {
    this.keys = ['step', 't_wall', 'T', ...keys.filter((k) => !['step', 't_wall', 'T'].includes(k))];
    this.n = 0;
    this.cap = 1024;
    this.cols = Object.fromEntries(this.keys.map((k) => [k, new Float64Array(this.cap)]));
    this.version = 0;
  }
  get lastStep() { return this.n ? this.cols.step[this.n - 1] : -1; }
  _grow() {
    this.cap *= 2;
    for (const k of this.keys) {
      const a = new Float64Array(this.cap);
      a.set(this.cols[k].subarray(0, this.n));
      this.cols[k] = a;
    }
  }
  /** Append one record ({step, t_wall, U: 1.2, r_mean: null, ...}); older or repeated steps are ignored. */
  push(rec) {
    if (rec.step <= this.lastStep) return false;
    if (this.n === this.cap) this._grow();
    for (const k of this.keys) {
      const v = rec[k];
      this.cols[k][this.n] = v == null ? NaN : +v;
    }
    this.n++;
    this.version++;
    return true;
  }
  /** Append the rows of a CSV page from /observables?format=csv (header line first); returns rows added. */
  pushCsv(text) {
    const lines = text.split('\n');
    const head = lines[0].split(',');
    const at = this.keys.map((k) => head.indexOf(k));
    let added = 0;
    for (let li = 1; li < lines.length; li++) {
      const line = lines[li];
      if (!line) continue;
      const f = line.split(',');
      const step = +f[at[0]];
      if (!(step > this.lastStep)) continue;
      if (this.n === this.cap) this._grow();
      for (let i = 0; i < this.keys.length; i++) {
        const s = at[i] >= 0 ? f[at[i]] : '';
        this.cols[this.keys[i]][this.n] = s === '' ? NaN : +s;
      }
      this.n++;
      added++;
    }
    if (added) this.version++;
    return added;
  }
  col(k) { return this.cols[k].subarray(0, this.n); }
  /** Has any record a finite value of k? */
  has(k) {
    const c = this.cols[k];
    if (!c) return false;
    for (let i = 0; i < this.n; i++) if (Number.isFinite(c[i])) return true;
    return false;
  }
}

/**
 * new ChainRecords(keys, chains, replicas = 0): the records of a batched sweep's chains (chain ids
 * in `chains`), arriving in (step, chain) order as the parent's /observables and stream give them.
 * Each step is one row (x: step, and chain 0's t_wall); chain c's value of key k is in column
 * chainKey(k, c), NaN until that chain's record of the step arrives. Older steps are ignored.
 * With replicas = K (replica exchange), column chainKey('walk', r) holds the temperature replica r
 * sits at: the T of the chain whose record names it (its walk through the temperature ladder).
 */
export class ChainRecords extends Records {
  constructor(keys, chains, replicas = 0) {
    const walk = Array.from({ length: replicas }, (_, r) => chainKey('walk', r));
    super([...chains.flatMap((c) => keys.map((k) => chainKey(k, c))), ...walk]);
    this.base = keys;
    this.replicas = replicas;
  }
  push(rec) {
    if (!(rec.step >= this.lastStep)) return false;
    if (rec.step > this.lastStep) {
      if (this.n === this.cap) this._grow();
      for (const k of this.keys) this.cols[k][this.n] = NaN;
      this.cols.step[this.n] = rec.step;
      this.cols.t_wall[this.n] = rec.t_wall == null ? NaN : +rec.t_wall;
      this.n++;
    }
    for (const k of this.base) {
      const col = this.cols[chainKey(k, rec.chain)];
      if (col) col[this.n - 1] = rec[k] == null ? NaN : +rec[k];
    }
    if (this.replicas && rec.replica != null && rec.T != null) {
      const col = this.cols[chainKey('walk', +rec.replica)];
      if (col) col[this.n - 1] = +rec.T;
    }
    this.version++;
    return true;
  }
  /** A CSV page (header line first, rows in (step, chain) order); returns the records taken. */
  pushCsv(text) {
    const lines = text.split('\n');
    const head = lines[0].split(',');
    const extra = this.replicas ? ['replica', 'T'] : [];
    const want = ['step', 't_wall', 'chain', ...this.base, ...extra].map((k) => [k, head.indexOf(k)]).filter(([, i]) => i >= 0);
    let added = 0;
    for (let li = 1; li < lines.length; li++) {
      if (!lines[li]) continue;
      const f = lines[li].split(',');
      const rec = {};
      for (const [k, i] of want) rec[k] = f[i] === '' ? null : +f[i];
      if (this.push(rec)) added++;
    }
    return added;
  }
}

/* ---------------------------------------------------------------- decimation */

function lowerBound(xs, v, lo, hi) {
  while (lo < hi) { const m = (lo + hi) >> 1; if (xs[m] < v) lo = m + 1; else hi = m; }
  return lo;
}

/**
 * Indices of the records to draw: all of them when few, else per bucket of x the argmin and
 * argmax of every series (NaN skipped), in x order. xs ascending; ys: arrays of the same length;
 * [x0, x1]: the visible range (null for all); buckets: usually the plot's width in pixels.
 * The neighbours just outside the range and the first and last records are kept too, so lines
 * run on to the plot's edges and the data's full extent stays known (double-click zooms out).
 */
export function decimate(xs, ys, n, range, buckets, maxPoints = MAX_POINTS) {
  let i0 = 0, i1 = n;
  if (range && n) {
    i0 = Math.max(0, lowerBound(xs, range[0], 0, n) - 1);
    i1 = Math.min(n, lowerBound(xs, range[1], 0, n) + 1);
  }
  const m = i1 - i0;
  const S = ys.length, perBucket = 2 * S + 1;
  buckets = Math.max(1, Math.min(buckets, Math.floor(maxPoints / perBucket)));
  const out = [];
  if (range && i0 > 0) out.push(0);
  if (m <= maxPoints - 2) {
    for (let i = i0; i < i1; i++) out.push(i);
  } else {
    const xa = xs[i0], xb = xs[i1 - 1];
    const w = (xb - xa) / buckets || 1;
    const lo = new Float64Array(S), hi = new Float64Array(S);
    const loI = new Int32Array(S), hiI = new Int32Array(S);
    const pick = [];
    let b = -1, first = -1;
    const flush = () => {
      if (first < 0) return;
      pick.length = 0;
      pick.push(first); // keeps x continuous where every series is NaN
      for (let s = 0; s < S; s++) if (loI[s] >= 0) pick.push(loI[s], hiI[s]);
      pick.sort((p, q) => p - q);
      for (let k = 0; k < pick.length; k++) if (k === 0 || pick[k] !== pick[k - 1]) out.push(pick[k]);
    };
    for (let i = i0; i < i1; i++) {
      const bi = Math.min(buckets - 1, Math.floor((xs[i] - xa) / w));
      if (bi !== b) {
        flush();
        b = bi;
        first = i;
        lo.fill(Infinity); hi.fill(-Infinity); loI.fill(-1); hiI.fill(-1);
      }
      for (let s = 0; s < S; s++) {
        const v = ys[s][i];
        if (!(v === v)) continue; // NaN
        if (v < lo[s]) { lo[s] = v; loI[s] = i; }
        if (v > hi[s]) { hi[s] = v; hiI[s] = i; }
      }
    }
    flush();
    out.push(i1 - 1);
  }
  if (range && i1 < n) out.push(n - 1);
  // Dedupe in order (the first/last records may repeat the range's ends).
  const idx = [];
  for (const i of out) if (idx.length === 0 || i > idx[idx.length - 1]) idx.push(i);
  return idx;
}

/* ---------------------------------------------------------------- formatting of axes */

export function fmtAxis(v) {
  if (v == null) return '';
  if (v === 0) return '0';
  const a = Math.abs(v);
  if (a >= 1e5 || a < 1e-4) {
    if (isPow10(a)) return `${v < 0 ? '-' : ''}1e${Math.round(Math.log10(a))}`;
    return v.toExponential(1).replace('e+', 'e');
  }
  return String(Number(v.toPrecision(4)));
}

/** Tick steps of a time-since-start axis (seconds): sub-second, then clock-friendly ones. */
const CLOCK_INCRS = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800,
  3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800];

/** Seconds as m:ss or h:mm:ss; ticks closer than a second as seconds with decimals. */
export function fmtClock(s, incr = 1) {
  if (s == null || !Number.isFinite(s)) return '';
  if (incr < 1 && s < 60) return `${s.toFixed(Math.min(3, Math.ceil(-Math.log10(incr) - 1e-9)))}s`;
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60), ss = s % 60;
  const p = (n) => String(n).padStart(2, '0');
  return h ? `${h}:${p(m)}:${p(ss)}` : `${m}:${p(ss)}`;
}

function fmtStep(v) {
  if (v == null) return '';
  const a = Math.abs(v);
  if (a >= 1e6) return `${+(v / 1e6).toPrecision(3)}M`;
  if (a >= 1e4) return `${+(v / 1e3).toPrecision(3)}k`;
  return String(Math.round(v));
}

/* ---------------------------------------------------------------- axes */

const AXIS = { stroke: '#4b5563', grid: { stroke: '#eef0f3', width: 1 }, ticks: { stroke: '#d1d5db', width: 1 } };

/** Room for the widest tick label; it grows at once and shrinks only by more than 12 px, so
 * uPlot's size cycles settle and the axis does not jitter as live data moves the ticks. */
function axisSize(u, values, axisIdx) {
  const axis = u.axes[axisIdx];
  let size = axis.ticks.size + axis.gap + 4;
  u.ctx.font = axis.font[0];
  let w = 0;
  for (const v of values || []) if (v) w = Math.max(w, u.ctx.measureText(v).width / devicePixelRatio);
  size = Math.ceil(size + w);
  const prev = axis._size;
  return prev && size < prev && size > prev - 12 ? prev : size;
}

/* uPlot stops sizing after three cycles; when the tick labels changed on the last one, the plot
 * area can start left of the axis' final width and clip its labels. Redo the layout then. */
function guardAxes(u) {
  const a = u.axes[1];
  if (!a._size || u._guarding || u.bbox.left / devicePixelRatio >= a._size - 0.5) return;
  u._guarding = true;
  setTimeout(() => {
    const { width, height } = u;
    u.setSize({ width: width - 1, height });
    u.setSize({ width, height });
    u._guarding = false;
  }, 0);
}

const isPow10 = (v) => v > 0 && Math.abs(Math.log10(v) - Math.round(Math.log10(v))) < 1e-9;

/** A y axis; on a log scale only powers of ten get lines and labels, thinned to fit. */
export function yAxis(log, horizontal = false) {
  const ax = { ...AXIS, size: axisSize, values: (u, sp) => sp.map(fmtAxis) };
  if (log) {
    ax.filter = (u, sp) => {
      const dec = sp.filter(isPow10);
      const room = Math.max(2, Math.floor((horizontal ? u.bbox.width / 60 : u.bbox.height / 22) / devicePixelRatio));
      const k = Math.max(1, Math.ceil(dec.length / room));
      return sp.map((v) => (isPow10(v) && Math.round(Math.log10(v)) % k === 0 ? v : null));
    };
    ax.values = (u, sp) => sp.map((v) => (v == null ? null : fmtAxis(v)));
  }
  return ax;
}

/* ---------------------------------------------------------------- a live plot of records */

/**
 * new LivePlot(parent, records, {title, series: [{key, label, dash}], x: 'step'|'t_wall',
 *                                 logY, refKey, burnIn})
 * refKey: a record column drawn as a grey dashed reference (kin_T's T). burnIn: fraction of
 * records shaded as burn-in (what the equilibrium summary leaves out).
 */
export class LivePlot {
  constructor(parent, records, opts) {
    this.records = records;
    this.opts = { x: 'step', logY: false, burnIn: null, ...opts };
    this.zoom = null;
    this.drawn = -1;
    this.pending = false;
    this.root = parentEl(parent, 'div.plot');
    this.root.dataset.plot = opts.id || opts.title;
    this.root.classList.add('live');
    this.root.plot = this; // for the browser test and the console
    this.head = document.createElement('div');
    this.head.className = 'plot-head';
    const h = document.createElement('h3');
    h.textContent = opts.title;
    this.logBox = checkbox('log y', this.opts.logY, (on) => { this.opts.logY = on; this.rebuild(); });
    this.head.append(h, this.logBox);
    this.box = document.createElement('div');
    this.box.className = 'plot-box';
    this.caption = document.createElement('div');
    this.caption.className = 'plot-caption';
    this.root.append(this.head, this.box, this.caption);
    this.build();
    this.ro = new ResizeObserver(() => this.resize());
    this.ro.observe(this.box);
  }

  keys() {
    const ks = this.opts.series.map((s) => s.key);
    if (this.opts.refKey) ks.push(this.opts.refKey);
    return ks;
  }

  build() {
    const o = this.opts;
    const time = o.x === 't_wall';
    const series = [{ label: time ? 'time since start' : 'step', value: (u, v) => (v == null ? '–' : time ? fmtClock(v, 0.01) : String(v)) }];
    o.series.forEach((s, i) => series.push({
      label: s.label || s.key, stroke: s.color || color(i), width: 1.5, dash: s.dash, spanGaps: false,
      points: { show: false }, value: (u, v) => (v == null ? '–' : fmtAxis(v)),
    }));
    if (o.refKey) series.push({ label: o.refLabel || o.refKey, stroke: '#6b7280', width: 1.25, dash: [6, 4],
                                points: { show: false }, value: (u, v) => (v == null ? '–' : fmtAxis(v)) });
    const width = Math.max(200, this.box.clientWidth || 480);
    const self = this;
    this.u = new uPlot({
      width, height: o.height || 220,
      series,
      scales: { x: { time: false }, y: o.logY ? { distr: 3 } : { auto: true } },
      axes: [time
        ? { ...AXIS, incrs: CLOCK_INCRS, values: (u, sp, ai, space, incr) => sp.map((v) => fmtClock(v, incr)) }
        : { ...AXIS, values: (u, sp) => sp.map(fmtStep) }, yAxis(o.logY)],
      cursor: { drag: { x: true, y: false }, points: { size: 6 } },
      legend: { live: true },
      hooks: {
        setScale: [(u, key) => { if (key === 'x' && !self.own) self.onZoom(); }],
        drawClear: [(u) => self.drawBurnIn(u)],
        draw: [guardAxes],
      },
    }, this.data(), this.box);
    this.drawn = this.records.version;
    // Off the plot, the legend shows the latest record's values (live monitoring).
    this.u.over.addEventListener('mouseenter', () => { this.hover = true; });
    this.u.over.addEventListener('mouseleave', () => { this.hover = false; setTimeout(() => this.showLatest(), 0); });
    this.showLatest();
  }

  showLatest() {
    const n = this.u.data[0].length;
    if (!this.hover && n) this.u.setLegend({ idx: n - 1 });
  }

  rebuild() {
    this.u.destroy();
    this.build();
  }

  setX(x) { if (x !== this.opts.x) { this.opts.x = x; this.zoom = null; this.rebuild(); } }
  setBurnIn(f) { this.opts.burnIn = f; this.u.redraw(false); }

  /** The decimated data for the current x range, and the caption. */
  data() {
    const r = this.records, n = r.n;
    const xs = r.col(this.opts.x);
    const ys = this.keys().map((k) => r.cols[k] ? r.col(k) : new Float64Array(n).fill(NaN));
    const width = Math.max(100, Math.round(this.box.clientWidth || 480));
    const idx = decimate(xs, ys, n, this.zoom, width);
    const log = this.opts.logY;
    const out = [new Float64Array(idx.length)];
    for (let j = 0; j < idx.length; j++) out[0][j] = xs[idx[j]];
    for (const y of ys) {
      const a = new Array(idx.length);
      for (let j = 0; j < idx.length; j++) {
        const v = y[idx[j]];
        a[j] = v === v && (!log || v >= LOG_FLOOR) ? v : null;
      }
      out.push(a);
    }
    this.nDrawn = idx.length;
    this.updateCaption();
    return out;
  }

  updateCaption() {
    const n = this.records.n;
    let t = `${n.toLocaleString('en-US')} record${n === 1 ? '' : 's'}`;
    if (this.nDrawn < n) t += ` · ${this.nDrawn.toLocaleString('en-US')} drawn (min/max per pixel column${this.zoom ? ', zoomed' : ''})`;
    else if (this.zoom) t += ' · zoomed';
    if (n > 1) t += ' · drag to zoom, double-click to reset';
    if (this.opts.logY) t += ' · log y: values below 1e-15 (and ≤ 0) not drawn';
    this.caption.textContent = t;
    this.root.dataset.points = String(n);
    this.root.dataset.drawn = String(this.nDrawn);
  }

  /** Ask for a redraw with the latest records (at most a few per second). */
  update() {
    if (this.pending) return;
    this.pending = true;
    const since = performance.now() - (this.lastDraw || 0);
    setTimeout(() => requestAnimationFrame(() => { this.pending = false; this.redraw(); }), Math.max(0, 250 - since));
  }

  redraw() {
    this.lastDraw = performance.now();
    if (this.drawn === this.records.version && !this.dirty) return;
    this.dirty = false;
    this.drawn = this.records.version;
    this.own = true;
    try {
      if (!this.zoom) this.u.setData(this.data(), true);
      else {
        this.u.setData(this.data(), false);
        this.u.setScale('x', { min: this.zoom[0], max: this.zoom[1] });
      }
    } finally { this.own = false; }
    this.showLatest();
  }

  /** The user zoomed (drag) or reset (double-click): re-decimate the new range. */
  onZoom() {
    const sx = this.u.scales.x;
    const xs = this.records.col(this.opts.x), n = this.records.n;
    if (!n || sx.min == null) return;
    const full = sx.min <= xs[0] && sx.max >= xs[n - 1];
    this.zoom = full ? null : [sx.min, sx.max];
    this.dirty = true;
    this.updateCaption();
    clearTimeout(this.zoomTimer);
    this.zoomTimer = setTimeout(() => this.redraw(), 30);
  }

  drawBurnIn(u) {
    const f = this.opts.burnIn, r = this.records;
    if (!f || r.n < 3) return;
    const k = Math.floor(f * r.n);
    if (k < 1) return;
    const xs = r.col(this.opts.x);
    const x0 = u.valToPos(xs[0], 'x', true), x1 = u.valToPos(xs[k - 1], 'x', true);
    const { left, top, width, height } = u.bbox;
    const a = Math.max(left, x0), b = Math.min(left + width, x1);
    if (b <= a) return;
    const ctx = u.ctx;
    ctx.save();
    ctx.fillStyle = 'rgba(107,114,128,0.08)';
    ctx.fillRect(a, top, b - a, height);
    ctx.fillStyle = '#9ca3af';
    ctx.font = `${Math.round(11 * devicePixelRatio)}px system-ui, sans-serif`;
    ctx.textAlign = 'right';
    if (b - a > 60 * devicePixelRatio) ctx.fillText('burn-in', b - 6 * devicePixelRatio, top + 14 * devicePixelRatio);
    ctx.restore();
  }

  resize() {
    const w = Math.round(this.box.clientWidth);
    if (!w || w === this.u.width) return;
    this.u.setSize({ width: w, height: this.u.height });
    this.dirty = true;
    this.update();
  }

  destroy() { this.ro.disconnect(); this.u.destroy(); this.root.remove(); }
}

/* ---------------------------------------------------------------- means with error bars against T */

/**
 * new TPlot(parent, {title, series: [{key, label}], logX: true, logY}) and .set(rows) with rows
 * [{T, U: {mean, stderr}, ...}]: points at the means, bars of ± one standard error (the
 * summary's stderr, which accounts for autocorrelation), joined by thin lines in T order.
 */
export class TPlot {
  constructor(parent, opts) {
    this.opts = { logX: true, logY: false, ...opts };
    this.rows = [];
    this.root = parentEl(parent, 'div.plot');
    this.root.dataset.plot = opts.id || opts.title;
    const head = document.createElement('div');
    head.className = 'plot-head';
    const h = document.createElement('h3');
    h.textContent = opts.title;
    head.append(h, checkbox('log T', this.opts.logX, (on) => { this.opts.logX = on; this.rebuild(); }),
      checkbox('log y', this.opts.logY, (on) => { this.opts.logY = on; this.rebuild(); }));
    this.box = document.createElement('div');
    this.box.className = 'plot-box';
    this.caption = document.createElement('div');
    this.caption.className = 'plot-caption';
    this.root.append(head, this.box, this.caption);
    this.build();
    this.ro = new ResizeObserver(() => {
      const w = Math.round(this.box.clientWidth);
      if (w && w !== this.u.width) this.u.setSize({ width: w, height: this.u.height });
    });
    this.ro.observe(this.box);
  }

  build() {
    const o = this.opts;
    const self = this;
    const series = [{ label: 'T', value: (u, v) => (v == null ? '–' : fmtAxis(v)) }];
    o.series.forEach((s, i) => series.push({
      label: s.label || s.key, stroke: color(i), width: 1, spanGaps: true, dash: i ? [4, 3] : undefined,
      points: { show: true, size: 7, fill: color(i), stroke: color(i) },
      value: (u, v, si, di) => {
        if (v == null) return '–';
        const e = self.err[si - 1]?.[di];
        return e != null ? `${fmtAxis(v)} ± ${fmtAxis(e)}` : fmtAxis(v);
      },
    }));
    this.u = new uPlot({
      width: Math.max(200, this.box.clientWidth || 480), height: o.height || 240,
      series,
      scales: { x: { time: false, distr: o.logX ? 3 : 1 }, y: o.logY ? { distr: 3 } : { auto: true, range: (u, a, b) => self.yRange(a, b) } },
      axes: [{ ...yAxis(o.logX, true), size: 30, label: 'T', labelSize: 18 }, yAxis(o.logY)],
      cursor: { drag: { x: false, y: false }, points: { size: 9 } },
      hooks: { draw: [(u) => self.drawBars(u), guardAxes] },
    }, this.data(), this.box);
  }

  rebuild() { this.u.destroy(); this.build(); }

  /** Room for the error bars in the y range. */
  yRange(min, max) {
    let lo = min, hi = max;
    this.err?.forEach((es, s) => es.forEach((e, i) => {
      const m = this.d?.[s + 1]?.[i];
      if (m == null || e == null) return;
      lo = Math.min(lo, m - e);
      hi = Math.max(hi, m + e);
    }));
    if (lo == null || hi == null || !Number.isFinite(lo) || !Number.isFinite(hi)) return [0, 1];
    const pad = (hi - lo) * 0.12 || Math.abs(hi) * 0.1 || 1;
    return [lo - pad, hi + pad];
  }

  data() {
    const rows = this.rows.filter((r) => r.T >= LOG_FLOOR || (!this.opts.logX && r.T != null)).sort((a, b) => a.T - b.T);
    const log = this.opts.logY;
    const d = [rows.map((r) => r.T)];
    this.err = [];
    for (const s of this.opts.series) {
      d.push(rows.map((r) => { const m = r[s.key]?.mean; return m != null && (!log || m >= LOG_FLOOR) ? m : null; }));
      this.err.push(rows.map((r) => r[s.key]?.stderr ?? null));
    }
    this.d = d;
    const have = rows.filter((r) => this.opts.series.some((s) => r[s.key]?.mean != null)).length;
    this.caption.textContent = `${have} of ${this.rows.length} temperatures with a summary · bars: ±1 standard error (autocorrelation-corrected)`
      + (rows.some((r) => r.provisional) ? ' · hollow: running, provisional' : '');
    this.root.dataset.points = String(have);
    this.provisional = rows.map((r) => !!r.provisional);
    return d;
  }

  set(rows) {
    this.rows = rows;
    this.u.setData(this.data());
  }

  drawBars(u) {
    const ctx = u.ctx, pr = devicePixelRatio;
    ctx.save();
    ctx.lineWidth = 1.25 * pr;
    this.err.forEach((es, s) => {
      ctx.strokeStyle = color(s);
      es.forEach((e, i) => {
        const m = this.d[s + 1][i], t = this.d[0][i];
        if (m == null) return;
        const x = u.valToPos(t, 'x', true);
        if (this.provisional[i]) { // hollow marker over the filled point
          ctx.fillStyle = '#fff';
          ctx.beginPath(); ctx.arc(x, u.valToPos(m, 'y', true), 2 * pr, 0, 2 * Math.PI); ctx.fill();
        }
        if (e == null || !(e > 0)) return;
        let lo = m - e;
        if (this.opts.logY && lo <= 0) lo = u.scales.y.min;
        const y0 = u.valToPos(lo, 'y', true), y1 = u.valToPos(m + e, 'y', true), c = 4 * pr;
        ctx.beginPath();
        ctx.moveTo(x, y0); ctx.lineTo(x, y1);
        ctx.moveTo(x - c, y0); ctx.lineTo(x + c, y0);
        ctx.moveTo(x - c, y1); ctx.lineTo(x + c, y1);
        ctx.stroke();
      });
    });
    ctx.restore();
  }
}

/* ---------------------------------------------------------------- small helpers */

function parentEl(parent, spec) {
  const [tag, cls] = spec.split('.');
  const d = document.createElement(tag);
  d.className = cls;
  parent.append(d);
  return d;
}

function checkbox(label, on, change) {
  const l = document.createElement('label');
  l.className = 'toggle';
  const c = document.createElement('input');
  c.type = 'checkbox';
  c.checked = on;
  c.addEventListener('change', () => change(c.checked));
  l.append(c, ` ${label}`);
  return l;
}
