import { baseChoices, IRanking, IRankingJob, latestRanking, rankingProgress, score } from '../src/rankings';

const ranking: IRanking = {
  data: { path: 'cells', samples: 400, shape: [96, 96, 3], n_classes: 4, splits: { train: 240 } },
  models: [
    { rank: 1, model: 'mobilenet:1.0.0', name: 'mobilenet', version: '1.0.0', title: 'M', floor: false, logme: 0.745,
      leep: -0.74, probe_accuracy: 1, reading: 'highest' },
    { rank: 2, model: 'random:mobilenet:1.0.0', name: 'mobilenet', version: '1.0.0', title: 'R', floor: true,
      logme: -0.307, leep: -1.27, probe_accuracy: 0.77, reading: 'the floor' },
    { rank: 3, model: 'tiny:2.0', name: 'tiny', version: '2.0', title: 'T', floor: false, logme: -0.4, leep: null,
      probe_accuracy: null, reading: 'below' }
  ],
  skipped: [],
  basis: 'LogME',
  seconds: 30
};

function job(overrides: Partial<IRankingJob>): IRankingJob {
  return { id: '1', data: 'cells', cluster: 'local', state: 'running', stage: 'features', error: '',
           progress: { done: 0, total: null }, result: null, elapsed: 1, ...overrides };
}

describe('rankingProgress', () => {
  it('names the stage, then counts its tasks', () => {
    expect(rankingProgress(job({ state: 'starting', stage: 'starting the cluster' }))).toEqual({
      text: 'starting the cluster', fraction: null
    });
    expect(rankingProgress(job({ progress: { done: 10, total: 40 } }))).toEqual({ text: 'features: 10 of 40', fraction: 0.25 });
  });
});

describe('baseChoices', () => {
  it('offers the catalog models best first, with their score beside the random network', () => {
    expect(baseChoices(ranking)).toEqual([
      { name: 'mobilenet', version: '1.0.0', label: '1. mobilenet:1.0.0 · LogME 0.745 (random network -0.307) · probe 1.00' },
      { name: 'tiny', version: '2.0', label: '2. tiny:2.0 · LogME -0.400 (random network -0.307)' }
    ]);
    expect(baseChoices(null)).toEqual([]);
  });
});

describe('latestRanking and score', () => {
  it('takes the last finished job and prints missing scores as a dash', () => {
    const jobs = [job({ id: '1', state: 'done', result: ranking }), job({ id: '2', state: 'failed' }),
                  job({ id: '3', state: 'running' })];
    expect(latestRanking(jobs)?.id).toBe('1');
    expect(latestRanking([])).toBeNull();
    expect(score(null)).toBe('–');
    expect(score(0.12345, 2)).toBe('0.12');
  });
});
