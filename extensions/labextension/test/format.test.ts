import {
  curves,
  elapsedSeconds,
  formatBytes,
  formatDuration,
  formatNumber,
  lineageLinks,
  metricRows,
  pageFromSearch,
  pageSearch,
  polyline
} from '../src/format';

describe('formatNumber', () => {
  it('keeps integers exact and floats to 6 significant digits', () => {
    expect(formatNumber(1234567)).toBe('1234567');
    expect(formatNumber(0.912345678)).toBe('0.912346');
    expect(formatNumber(0.5)).toBe('0.5');
    expect(formatNumber(12.25)).toBe('12.25');
    expect(formatNumber(0.0000123456789)).toBe('1.23457e-5');
    expect(formatNumber(-3.2e-7)).toBe('-3.2e-7');
    expect(formatNumber(NaN)).toBe('NaN');
  });
});

describe('metricRows', () => {
  it('groups dotted catalog keys by their first part, plain keys first', () => {
    const rows = metricRows({
      'transfer.accuracy': 0.9123456,
      'transfer.seeds': 5,
      mode: 'full',
      'scratch.accuracy': 0.5,
      'comparison.delta.low': -0.01
    });
    expect(rows).toEqual([
      { group: '', name: 'mode', value: 'full', exact: 'full' },
      { group: 'transfer', name: 'accuracy', value: '0.912346', exact: '0.9123456' },
      { group: 'transfer', name: 'seeds', value: '5', exact: '5' },
      { group: 'scratch', name: 'accuracy', value: '0.5', exact: '0.5' },
      { group: 'comparison', name: 'delta.low', value: '-0.01', exact: '-0.01' }
    ]);
  });
  it('flattens nested metrics.json and shows lists and nulls', () => {
    const rows = metricRows({ transfer: { accuracy: 0.75, per_seed: [0.5, 1] }, note: null });
    expect(rows.map(r => [r.group, r.name, r.value])).toEqual([
      ['', 'note', '–'],
      ['transfer', 'accuracy', '0.75'],
      ['transfer', 'per_seed', '0.5, 1']
    ]);
    expect(metricRows(null)).toEqual([]);
    const long = metricRows({ xs: Array.from({ length: 20 }, (_, i) => i) })[0].value;
    expect(long).toBe('0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, … (20)');
  });
});

describe('durations and sizes', () => {
  it('reads like a clock', () => {
    expect(formatDuration(45.4)).toBe('45 s');
    expect(formatDuration(185)).toBe('3 min 05 s');
    expect(formatDuration(7440)).toBe('2 h 04 min');
    expect(formatDuration(null)).toBe('');
    expect(formatDuration(-1)).toBe('');
  });
  it('measures elapsed time to the end, or to now while running', () => {
    const started = '2026-11-30T10:00:00+00:00';
    expect(elapsedSeconds(started, '2026-11-30T10:02:30+00:00', 0)).toBe(150);
    expect(elapsedSeconds(started, null, Date.parse(started) / 1000 + 42)).toBe(42);
    expect(elapsedSeconds(null, null, 0)).toBeNull();
  });
  it('gives file sizes', () => {
    expect(formatBytes(830)).toBe('830 B');
    expect(formatBytes(1234567)).toBe('1.23 MB');
    expect(formatBytes(undefined)).toBe('');
  });
});

describe('lineageLinks', () => {
  it('links the base model and a local run, names the data and the notebook', () => {
    const links = lineageLinks({
      base: { name: 'mobilenet-v2-imagenet', version: '1.0.0' },
      data: { 'manifest.json': 'ab'.repeat(32) },
      notebook: 'training.ipynb',
      parameters: { epochs: 2 },
      run: { id: 'biology-20261130-1', local: true }
    });
    expect(links).toEqual([
      { label: 'Base model', text: 'mobilenet-v2-imagenet:1.0.0', model: { name: 'mobilenet-v2-imagenet', version: '1.0.0' } },
      { label: 'Data manifest', text: 'manifest.json sha256 abababababab…' },
      { label: 'Run', text: 'biology-20261130-1', run: 'biology-20261130-1' },
      { label: 'Executed notebook', text: 'training.ipynb' }
    ]);
  });
  it('does not link a run that is not in the user’s runs', () => {
    const [run] = lineageLinks({ base: null, data: null, notebook: null, parameters: {}, run: { id: 'r1', local: false } });
    expect(run).toEqual({ label: 'Run', text: 'r1 (not in your runs)' });
    const [notebook] = lineageLinks({ base: null, data: null, notebook: 'train.ipynb', parameters: {}, run: null });
    expect(notebook).toEqual({ label: 'Training notebook', text: 'train.ipynb' });
    expect(lineageLinks(null)).toEqual([]);
  });
});

describe('curves', () => {
  it('splits losses from the other metrics, per epoch, skipping gaps and the learning rate', () => {
    const { losses, others } = curves([
      { epoch: 1, logs: { loss: 0.9, val_loss: 1.0, accuracy: 0.5, learning_rate: 0.001 } },
      { epoch: 2, logs: { loss: 0.5, val_loss: null, accuracy: 0.7, learning_rate: 0.001 } }
    ]);
    expect(losses).toEqual({ loss: [[1, 0.9], [2, 0.5]], val_loss: [[1, 1.0]] });
    expect(others).toEqual({ accuracy: [[1, 0.5], [2, 0.7]] });
  });
  it('scales points into the box, y upward', () => {
    expect(polyline([[1, 0], [3, 1]], { x0: 1, x1: 3, y0: 0, y1: 1 }, 100, 50)).toBe('0.0,50.0 100.0,0.0');
    expect(polyline([[1, 2]], { x0: 1, x1: 1, y0: 2, y1: 2 }, 100, 50)).toBe('50.0,25.0');
  });
});

describe('page links', () => {
  it('round-trips model, run and preprocessing job pages through the URL query', () => {
    for (const page of [
      { kind: 'model' as const, name: 'cells-v2', version: '1.0.0' },
      { kind: 'model' as const, name: 'cells', version: '' },
      { kind: 'run' as const, id: 'biology-20261130-180640-67fc5e' },
      { kind: 'job' as const, id: '3' },
      { kind: 'services' as const }
    ]) {
      expect(pageFromSearch(pageSearch(page))).toEqual(page);
    }
    expect(pageSearch({ kind: 'model', name: 'a&b', version: '1' })).toBe('?deepvre-model=a%26b%3A1');
    expect(pageFromSearch('?reset')).toBeNull();
    expect(pageSearch({ kind: 'services' })).toBe('?deepvre-services=');
    expect(pageFromSearch('?deepvre-services')).toEqual({ kind: 'services' });
    expect(pageSearch({ kind: 'job', id: 'a b' })).toBe('?deepvre-job=a+b');
    expect(pageFromSearch('?deepvre-job=')).toBeNull();
    // the runs page: runs side by side, or one sweep
    for (const page of [
      { kind: 'runs', ids: ['a-1', 'b.2'], sweep: '' },
      { kind: 'runs', ids: [], sweep: 'sweep-train-1' }
    ] as const) {
      expect(pageFromSearch(pageSearch({ ...page, ids: [...page.ids] }))).toEqual(page);
    }
    expect(pageSearch({ kind: 'runs', ids: ['a', 'b'], sweep: '' })).toBe('?deepvre-runs=a%2Cb');
    expect(pageFromSearch('?deepvre-runs=a,,b')).toEqual({ kind: 'runs', ids: ['a', 'b'], sweep: '' });
    expect(pageFromSearch('?deepvre-runs=')).toBeNull();
  });
});
