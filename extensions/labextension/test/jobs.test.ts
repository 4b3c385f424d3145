import { badSummary, classNames, clusterLabel, IPreprocessJob, jobProgress, splitRows } from '../src/jobs';

function job(overrides: Partial<IPreprocessJob>): IPreprocessJob {
  return {
    id: '1', kind: 'images', input: 'photos', output: 'photos-preprocessed', cluster: 'local',
    state: 'running', dashboard: '', error: '', progress: { done: 0, total: null }, splits: {},
    bad_records: [], summary: null, elapsed: 1, ...overrides
  };
}

describe('jobProgress', () => {
  it('says what the job does before it knows the shards, then counts them', () => {
    expect(jobProgress(job({ state: 'starting', cluster: 'slurm' }))).toEqual({
      text: 'starting the slurm cluster', fraction: null
    });
    expect(jobProgress(job({}))).toEqual({ text: 'planning the shards', fraction: null });
    expect(jobProgress(job({ progress: { done: 3, total: 8 } }))).toEqual({ text: '3 of 8 shards', fraction: 0.375 });
    expect(jobProgress(job({ state: 'done', progress: { done: 1, total: 1 } }))).toEqual({
      text: '1 of 1 shard', fraction: 1
    });
  });
});

describe('splitRows', () => {
  it('puts train, val and test first and lists the counts per label', () => {
    const rows = splitRows({
      test: { n: 2, shards: 1, counts: { cat: 1, coffee: 1 } },
      extra: { n: 1, shards: 1, counts: {} },
      train: { n: 7, shards: 1, counts: { coffee: 4, cat: 3 } }
    });
    expect(rows.map(r => r.split)).toEqual(['train', 'test', 'extra']);
    expect(rows[0]).toEqual({ split: 'train', n: 7, counts: 'cat: 3, coffee: 4' });
    expect(splitRows(null)).toEqual([]);
  });

  it("names the labels with the manifest's classes (the pipelines count by label index)", () => {
    const names = classNames(job({ summary: { summary: { classes: ['cat', 'coffee'] } } }));
    expect(names).toEqual(['cat', 'coffee']);
    const splits = { train: { n: 8, shards: 1, counts: { '1': 4, '0': 3, '7': 1 } } };
    expect(splitRows(splits, names)[0].counts).toBe('7: 1, cat: 3, coffee: 4'); // an index it does not know stays
    expect(splitRows(splits)[0].counts).toBe('0: 3, 1: 4, 7: 1');
    expect(classNames(job({ summary: { summary: { classes: 'cat' } } }))).toEqual([]);
  });
});

describe('badSummary and clusterLabel', () => {
  it('counts every bad record the manifest has, not only those listed', () => {
    const bad = [{ record: 'cat/broken.jpg', error: 'cannot identify image file' }];
    expect(badSummary(job({ bad_records: bad, summary: { bad_records: { count: 60 } } }))).toEqual({ count: 60, shown: 1 });
    expect(badSummary(job({ bad_records: bad }))).toEqual({ count: 1, shown: 1 });
  });
  it('names the offered clusters and passes unknown kinds through', () => {
    expect(clusterLabel('local')).toContain('LocalCluster');
    expect(clusterLabel('tls://10.0.0.1:8786')).toBe('tls://10.0.0.1:8786');
  });
});
