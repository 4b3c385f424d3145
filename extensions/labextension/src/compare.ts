/**
 * What the runs page shows, as pure functions (no JupyterLab imports, so the unit tests run in
 * plain Node): the types of ``GET compare``, a table sorted by a metric, the best run, each run's
 * label (its differing parameters) and the curves of one metric, one line per run.
 */
import { ISeries } from './format';

export interface ICompareRun {
  id: string;
  state: string;
  started: string | null;
  finished: string | null;
  notebook: string | null;
  sweep: string | null;
  parameters: Record<string, unknown>;
  /** Final metrics, nested keys joined by dots, numbers only. */
  metrics: Record<string, number>;
  curves: { fit: string | null; fits: number | null; series: Record<string, [number, number][]> } | null;
}

export interface ICompareMetric {
  name: string;
  better: 'higher' | 'lower';
}

export interface IComparison {
  runs: ICompareRun[];
  parameters: { differ: string[]; same: Record<string, unknown> };
  metrics: ICompareMetric[];
  curves: string[];
  sweep: { id: string; axes: string[] } | null;
}

export interface ISort {
  metric: string;
  /** ``desc``: largest first. */
  order: 'asc' | 'desc';
}

/** The order a metric's column sorts by first: its best value on top. */
export function bestFirst(metric: ICompareMetric): ISort {
  return { metric: metric.name, order: metric.better === 'lower' ? 'asc' : 'desc' };
}

/** The sort after a click on ``metric``'s header: best first, then the other way on a second click. */
export function nextSort(current: ISort | null, metric: ICompareMetric): ISort {
  if (current?.metric === metric.name) {
    return { metric: metric.name, order: current.order === 'asc' ? 'desc' : 'asc' };
  }
  return bestFirst(metric);
}

/** ``runs`` sorted by ``sort``; runs without the metric go last, in their order. */
export function sortRuns(runs: ICompareRun[], sort: ISort | null): ICompareRun[] {
  if (!sort) {
    return runs.slice();
  }
  const sign = sort.order === 'asc' ? 1 : -1;
  return runs
    .map((run, index) => ({ run, index, value: run.metrics[sort.metric] }))
    .sort((a, b) => {
      const [ha, hb] = [typeof a.value === 'number', typeof b.value === 'number'];
      if (ha !== hb) {
        return ha ? -1 : 1;
      }
      return (ha && a.value !== b.value ? sign * (a.value - b.value) : 0) || a.index - b.index;
    })
    .map(r => r.run);
}

/** The id of the finished run with the best value of ``metric`` (its ``better`` direction), or null. */
export function bestRun(runs: ICompareRun[], metric: ICompareMetric | undefined): string | null {
  if (!metric) {
    return null;
  }
  const [first] = sortRuns(
    runs.filter(r => r.state === 'done' && typeof r.metrics[metric.name] === 'number'),
    bestFirst(metric)
  );
  return first?.id ?? null;
}

/** A parameter's value as a cell shows it. */
export function formatParameter(value: unknown): string {
  if (value === undefined) {
    return '–';
  }
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/** A run's name in legends: its values of the parameters that differ (``lr=0.1 epochs=2``), else its id. */
export function runLabel(run: ICompareRun, differ: string[]): string {
  const parts = differ.map(name => `${name}=${formatParameter(run.parameters[name])}`);
  return parts.length ? parts.join(' ') : run.id;
}

/** ``metric``'s curves: one series per run that logged it, named by ``labels`` (unique; the id is added on a clash). */
export function metricSeries(runs: ICompareRun[], metric: string, labels: Record<string, string>): ISeries {
  const series: ISeries = {};
  for (const run of runs) {
    const points = run.curves?.series[metric];
    if (!points?.length) {
      continue;
    }
    let name = labels[run.id] ?? run.id;
    if (name in series) {
      name = `${name} (${run.id})`;
    }
    series[name] = points;
  }
  return series;
}

/**
 * Which fit the curves show, when a run fitted more than once (``progress.json`` keeps the current
 * fit's epochs only): ``"lr=0.1: fit transfer-s2 (fit 3 of this run)"`` per such run; empty when every
 * run fitted once, as the curves are then the whole training.
 */
export function laterFits(runs: ICompareRun[], labels: Record<string, string>): string[] {
  return runs
    .filter(r => (r.curves?.fits ?? 1) > 1)
    .map(r => `${labels[r.id] ?? r.id}: fit ${r.curves!.fit ?? '?'} (fit ${r.curves!.fits} of this run)`);
}

/** The query of ``GET compare``: the runs named, or one sweep. */
export function compareQuery(page: { ids: string[]; sweep: string }): string {
  const params = new URLSearchParams();
  if (page.sweep) {
    params.set('sweep', page.sweep);
  } else {
    page.ids.forEach(id => params.append('run', id));
  }
  return params.toString();
}
