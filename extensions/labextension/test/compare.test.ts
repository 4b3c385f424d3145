import { bestRun, compareQuery, ICompareRun, laterFits, metricSeries, nextSort, runLabel, sortRuns } from '../src/compare';

function run(id: string, metrics: Record<string, number>, parameters: Record<string, unknown> = {}, state = 'done'): ICompareRun {
  return {
    id,
    state,
    started: null,
    finished: null,
    notebook: null,
    sweep: null,
    parameters,
    metrics,
    curves: metrics.loss === undefined ? null : { fit: 'f', fits: 1, series: { loss: [[1, metrics.loss]] } }
  };
}

const runs = [
  run('a', { accuracy: 0.7, loss: 0.4 }, { lr: 0.1 }),
  run('b', { accuracy: 0.9, loss: 0.5 }, { lr: 0.01 }),
  run('c', { loss: 0.2 }, { lr: 0.001 }),
  run('d', { accuracy: 0.95, loss: 0.1 }, { lr: 0.5 }, 'running')
];
const accuracy = { name: 'accuracy', better: 'higher' as const };
const loss = { name: 'loss', better: 'lower' as const };

describe('the sweep table', () => {
  it('sorts by a metric, runs without it last', () => {
    expect(sortRuns(runs, { metric: 'accuracy', order: 'desc' }).map(r => r.id)).toEqual(['d', 'b', 'a', 'c']);
    expect(sortRuns(runs, { metric: 'accuracy', order: 'asc' }).map(r => r.id)).toEqual(['a', 'b', 'd', 'c']);
    expect(sortRuns(runs, { metric: 'loss', order: 'asc' }).map(r => r.id)).toEqual(['d', 'c', 'a', 'b']);
    expect(sortRuns(runs, null).map(r => r.id)).toEqual(['a', 'b', 'c', 'd']);
  });
  it('a header click sorts best first, a second click the other way', () => {
    expect(nextSort(null, loss)).toEqual({ metric: 'loss', order: 'asc' });
    expect(nextSort({ metric: 'loss', order: 'asc' }, loss)).toEqual({ metric: 'loss', order: 'desc' });
    expect(nextSort({ metric: 'loss', order: 'asc' }, accuracy)).toEqual({ metric: 'accuracy', order: 'desc' });
  });
  it('marks the best finished run in the metric direction', () => {
    expect(bestRun(runs, accuracy)).toBe('b'); // d is better but still running
    expect(bestRun(runs, loss)).toBe('c');
    expect(bestRun(runs, undefined)).toBeNull();
    expect(bestRun([runs[3]], loss)).toBeNull();
  });
});

describe('labels and curves', () => {
  it('names a run by its differing parameters', () => {
    expect(runLabel(runs[0], ['lr'])).toBe('lr=0.1');
    expect(runLabel(run('x', {}, { lr: 0.1, opt: 'adam' }), ['opt', 'lr', 'gone'])).toBe('opt=adam lr=0.1 gone=–');
    expect(runLabel(runs[0], [])).toBe('a');
  });
  it('one line per run that logged the metric; clashing labels keep apart', () => {
    expect(metricSeries(runs, 'loss', { a: 'lr=0.1', b: 'lr=0.1' })).toEqual({
      'lr=0.1': [[1, 0.4]],
      'lr=0.1 (b)': [[1, 0.5]],
      c: [[1, 0.2]],
      d: [[1, 0.1]]
    });
    expect(metricSeries(runs, 'accuracy', {})).toEqual({});
  });
  it('says which fit the curves show when a run fitted more than once', () => {
    expect(laterFits(runs, {})).toEqual([]);
    const twice = { ...runs[0], curves: { fit: 'transfer-s1', fits: 2, series: {} } };
    expect(laterFits([twice, runs[1]], { a: 'lr=0.1' })).toEqual(['lr=0.1: fit transfer-s1 (fit 2 of this run)']);
  });
  it('asks for the runs named or one sweep', () => {
    expect(compareQuery({ ids: ['a', 'b c'], sweep: '' })).toBe('run=a&run=b+c');
    expect(compareQuery({ ids: ['a'], sweep: 'sweep-x' })).toBe('sweep=sweep-x');
  });
});
