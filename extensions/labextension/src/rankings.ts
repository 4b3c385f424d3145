/**
 * "Rank base models for my data" as the panel shows it (pure helpers, tested with jest): a ranking
 * job's progress, the table's numbers, and the base-model choices the fine-tune form offers.
 */

export interface IRankingRow {
  rank: number;
  model: string;
  name: string;
  version: string;
  title: string;
  floor: boolean;
  logme: number;
  leep: number | null;
  probe_accuracy: number | null;
  reading: string;
}

export interface IRanking {
  data: { path: string; samples: number; shape: number[]; n_classes: number; splits: Record<string, number> };
  models: IRankingRow[];
  skipped: { model: string; reason: string }[];
  basis: string;
  seconds: number;
}

export interface IRankingJob {
  id: string;
  data: string;
  cluster: string;
  state: 'starting' | 'running' | 'done' | 'failed';
  stage: string;
  progress: { done: number; total: number | null };
  error: string;
  result: IRanking | null;
  elapsed: number;
}

/** "features: 12 of 40" (or the stage alone before it counts), and a fraction 0..1 or null. */
export function rankingProgress(job: IRankingJob): { text: string; fraction: number | null } {
  const { done, total } = job.progress ?? { done: 0, total: null };
  if (job.state === 'starting' || !total || total <= 1) {
    return { text: job.stage || job.state, fraction: null };
  }
  return { text: `${job.stage}: ${done} of ${total}`, fraction: done / total };
}

/** A score as the table shows it: fixed digits, or "–" where there is none (LEEP without source labels). */
export function score(value: number | null | undefined, digits = 3): string {
  return value === null || value === undefined || Number.isNaN(value) ? '–' : value.toFixed(digits);
}

export interface IBaseChoice {
  name: string;
  version: string;
  label: string;
}

/** The catalog models of a ranking, best first, as the fine-tune form's base-model choices (the random
 * floor is no catalog model and is left out; its LogME is quoted for comparison). */
export function baseChoices(ranking: IRanking | null | undefined): IBaseChoice[] {
  if (!ranking) {
    return [];
  }
  const floor = ranking.models.find(m => m.floor);
  return ranking.models
    .filter(m => !m.floor)
    .map((m, i) => ({
      name: m.name,
      version: m.version,
      label:
        `${i + 1}. ${m.name}:${m.version} · LogME ${score(m.logme)}` +
        (floor ? ` (random network ${score(floor.logme)})` : '') +
        (m.probe_accuracy !== null ? ` · probe ${score(m.probe_accuracy, 2)}` : '')
    }));
}

/** The latest finished ranking of a job list (jobs are listed oldest first). */
export function latestRanking(jobs: IRankingJob[]): IRankingJob | null {
  const done = jobs.filter(j => j.state === 'done' && j.result);
  return done.length ? done[done.length - 1] : null;
}
