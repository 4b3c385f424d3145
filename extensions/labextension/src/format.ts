/**
 * What the model and run pages show, as pure functions (no JupyterLab imports, so the unit tests
 * run in plain Node): the metrics table, numbers, durations, lineage links, curves, page links.
 */

export interface IMetricRow {
  group: string;
  name: string;
  /** The value as shown: full precision within reason (6 significant digits; integers exact). */
  value: string;
  /** The value as stored (the cell's tooltip). */
  exact: string;
}

/** A number as the pages show it: integers exact; others to 6 significant digits, no trailing zeros. */
export function formatNumber(v: number): string {
  if (!Number.isFinite(v)) {
    return String(v);
  }
  if (Number.isInteger(v)) {
    return String(v);
  }
  const a = Math.abs(v);
  if (a >= 1e-4 && a < 1e9) {
    return String(Number(v.toPrecision(6)));
  }
  return v.toExponential(5).replace(/\.?0+e/, 'e');
}

function formatValue(v: unknown): string {
  if (typeof v === 'number') {
    return formatNumber(v);
  }
  if (Array.isArray(v)) {
    const shown = v.slice(0, 12).map(formatValue).join(', ');
    return v.length > 12 ? `${shown}, … (${v.length})` : shown;
  }
  if (v === null || v === undefined) {
    return '–';
  }
  return typeof v === 'object' ? JSON.stringify(v) : String(v);
}

function flatten(prefix: string, value: unknown, out: [string, unknown][]): void {
  if (value && typeof value === 'object' && !Array.isArray(value)) {
    for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
      flatten(prefix ? `${prefix}.${k}` : k, v, out);
    }
  } else {
    out.push([prefix, value]);
  }
}

/**
 * Metrics (nested, or flattened to dotted keys as the catalog keeps them) as table rows grouped by
 * their first key: ``{"transfer.accuracy": 0.91}`` is row ``accuracy`` of group ``transfer``.
 * Keys without a dot form the group ``''``, listed first; the order within a group is the metrics'.
 */
export function metricRows(metrics: Record<string, unknown> | null | undefined): IMetricRow[] {
  const flat: [string, unknown][] = [];
  flatten('', metrics ?? {}, flat);
  const rows = flat
    .filter(([key]) => key !== '')
    .map(([key, v]) => {
      const dot = key.indexOf('.');
      return {
        group: dot < 0 ? '' : key.slice(0, dot),
        name: dot < 0 ? key : key.slice(dot + 1),
        value: formatValue(v),
        exact: typeof v === 'object' && v !== null ? JSON.stringify(v) : String(v)
      };
    });
  const groups: string[] = [];
  for (const r of rows) {
    if (!groups.includes(r.group)) {
      groups.push(r.group);
    }
  }
  groups.sort((a, b) => (a === '' ? -1 : b === '' ? 1 : 0));
  return groups.flatMap(g => rows.filter(r => r.group === g));
}

/** "45 s", "3 min 05 s", "2 h 04 min"; '' for a negative or unknown duration. */
export function formatDuration(seconds: number | null | undefined): string {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds) || seconds < 0) {
    return '';
  }
  const s = Math.round(seconds);
  if (s < 60) {
    return `${s} s`;
  }
  if (s < 3600) {
    return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, '0')} s`;
  }
  return `${Math.floor(s / 3600)} h ${String(Math.floor((s % 3600) / 60)).padStart(2, '0')} min`;
}

/** Seconds from the ISO time ``started`` to ``finished`` (ISO) or to ``now`` (Unix seconds). */
export function elapsedSeconds(started: string | null, finished: string | null, now: number): number | null {
  const start = started ? Date.parse(started) : NaN;
  if (Number.isNaN(start)) {
    return null;
  }
  const end = finished ? Date.parse(finished) : now * 1000;
  return Number.isNaN(end) ? null : Math.max(0, (end - start) / 1000);
}

/** "1.2 MB", "830 B". */
export function formatBytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) {
    return '';
  }
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return i === 0 ? `${v} B` : `${Number(v.toPrecision(3))} ${units[i]}`;
}

export interface ILineage {
  base: { name: string; version: string } | null;
  data: Record<string, string> | null;
  notebook: string | null;
  parameters: Record<string, unknown>;
  run: { id: string; local: boolean } | null;
}

/** One lineage entry: a text, and what it opens (a model page, a run page), if anything. */
export interface ILineageLink {
  label: string;
  text: string;
  model?: { name: string; version: string };
  run?: string;
}

/** The lineage as links: the base model and version, the data manifest, the run, the notebook. */
export function lineageLinks(lineage: ILineage | null | undefined): ILineageLink[] {
  const links: ILineageLink[] = [];
  if (!lineage) {
    return links;
  }
  if (lineage.base?.name) {
    const { name, version } = lineage.base;
    links.push({ label: 'Base model', text: `${name}:${version}`, model: { name, version } });
  }
  for (const [file, sha] of Object.entries(lineage.data ?? {})) {
    links.push({ label: 'Data manifest', text: `${file} sha256 ${String(sha).slice(0, 12)}…` });
  }
  if (lineage.run?.id) {
    links.push({
      label: 'Run',
      text: lineage.run.local ? lineage.run.id : `${lineage.run.id} (not in your runs)`,
      ...(lineage.run.local ? { run: lineage.run.id } : {})
    });
  }
  if (lineage.notebook) {
    // published from a run, the notebook is the run's executed copy; otherwise the one to train with
    links.push({ label: lineage.run?.id ? 'Executed notebook' : 'Training notebook', text: lineage.notebook });
  }
  return links;
}

export interface IEpoch {
  epoch: number;
  logs: Record<string, number | null>;
}

/** Training curves from per-epoch logs: loss-like series and the rest, each ``{name: [[epoch, value]]}``. */
export function curves(history: IEpoch[] | null | undefined): { losses: ISeries; others: ISeries } {
  const losses: ISeries = {};
  const others: ISeries = {};
  for (const h of history ?? []) {
    for (const [key, value] of Object.entries(h.logs ?? {})) {
      if (typeof value !== 'number' || key === 'learning_rate' || key === 'lr') {
        continue;
      }
      const into = key.includes('loss') ? losses : others;
      (into[key] ??= []).push([h.epoch, value]);
    }
  }
  return { losses, others };
}

export type ISeries = Record<string, [number, number][]>;

/** An SVG polyline's points for ``series`` scaled into ``width`` x ``height`` (y grows upward). */
export function polyline(
  points: [number, number][],
  box: { x0: number; x1: number; y0: number; y1: number },
  width: number,
  height: number
): string {
  const sx = (x: number) => (box.x1 === box.x0 ? width / 2 : ((x - box.x0) / (box.x1 - box.x0)) * width);
  const sy = (y: number) => (box.y1 === box.y0 ? height / 2 : height - ((y - box.y0) / (box.y1 - box.y0)) * height);
  return points.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
}

export type PageRef =
  | { kind: 'model'; name: string; version: string }
  | { kind: 'run'; id: string }
  | { kind: 'job'; id: string }
  | { kind: 'runs'; ids: string[]; sweep: string }
  | { kind: 'services' };

/** The page a URL's query names: ``?deepvre-model=NAME[:VERSION]``, ``?deepvre-run=ID``,
 * ``?deepvre-job=ID`` (a preprocessing job), ``?deepvre-runs=ID,ID`` or ``?deepvre-sweep=ID`` (the
 * runs page: runs side by side, or a sweep) or ``?deepvre-services``; null otherwise. */
export function pageFromSearch(search: string): PageRef | null {
  const params = new URLSearchParams(search);
  if (params.has('deepvre-services')) {
    return { kind: 'services' };
  }
  const sweep = params.get('deepvre-sweep');
  const ids = (params.get('deepvre-runs') ?? '').split(',').filter(Boolean); // a run id has no comma
  if (sweep || ids.length) {
    return { kind: 'runs', ids: sweep ? [] : ids, sweep: sweep ?? '' };
  }
  const model = params.get('deepvre-model');
  if (model) {
    const colon = model.lastIndexOf(':');
    return colon > 0
      ? { kind: 'model', name: model.slice(0, colon), version: model.slice(colon + 1) }
      : { kind: 'model', name: model, version: '' };
  }
  const run = params.get('deepvre-run');
  if (run) {
    return { kind: 'run', id: run };
  }
  const job = params.get('deepvre-job');
  return job ? { kind: 'job', id: job } : null;
}

/** The query that opens ``page`` (the inverse of :func:`pageFromSearch`). */
export function pageSearch(page: PageRef): string {
  const params = new URLSearchParams();
  if (page.kind === 'model') {
    params.set('deepvre-model', page.version ? `${page.name}:${page.version}` : page.name);
  } else if (page.kind === 'run' || page.kind === 'job') {
    params.set(`deepvre-${page.kind}`, page.id);
  } else if (page.kind === 'runs') {
    params.set(page.sweep ? 'deepvre-sweep' : 'deepvre-runs', page.sweep || page.ids.join(','));
  } else {
    params.set('deepvre-services', '');
  }
  return `?${params.toString()}`;
}
