/**
 * Preprocessing jobs as the panel shows them (pure helpers, tested with jest): the clusters offered,
 * progress, counts per split and the bad records.
 */

export interface ISplit {
  n: number;
  shards: number;
  counts: Record<string, number>;
}

export interface IPreprocessJob {
  id: string;
  kind: string;
  input: string;
  output: string;
  cluster: string;
  state: 'starting' | 'running' | 'done' | 'failed';
  dashboard: string;
  error: string;
  progress: { done: number; total: number | null };
  splits: Record<string, ISplit>;
  bad_records: { record: string; error: string; count?: number }[];
  summary: { bad_records?: { count: number }; summary?: { classes?: unknown } } | null;
  elapsed: number;
}

const CLUSTER_LABELS: Record<string, string> = {
  local: 'local (Dask LocalCluster on this server)',
  slurm: 'Slurm (dask-jobqueue workers as batch jobs)',
  kubernetes: 'Kubernetes (dask-kubernetes workers as pods)'
};

/** What the cluster choice says for a kind the server offers. */
export function clusterLabel(kind: string): string {
  return CLUSTER_LABELS[kind] ?? kind;
}

/** "3 of 8 shards" (or what the job is doing before it knows how many), and a fraction 0..1 or null. */
export function jobProgress(job: IPreprocessJob): { text: string; fraction: number | null } {
  const { done, total } = job.progress ?? { done: 0, total: null };
  if (job.state === 'starting') {
    return { text: `starting the ${job.cluster} cluster`, fraction: null };
  }
  if (total === null || total === undefined) {
    return { text: job.state === 'running' ? 'planning the shards' : job.state, fraction: null };
  }
  return { text: `${done} of ${total} shard${total === 1 ? '' : 's'}`, fraction: total ? done / total : 1 };
}

export interface ISplitRow {
  split: string;
  n: number;
  counts: string;
}

/** One row per split (train, val, test first, then the rest by name), with its counts per label. */
/** The class names the pipeline's manifest lists (labels are their indices), or none. */
export function classNames(job: IPreprocessJob): string[] {
  const classes = job.summary?.summary?.classes;
  return Array.isArray(classes) ? classes.map(c => String(c)) : [];
}

/** Splits in the order train, val, test, others; ``names``: class names for label indices. */
export function splitRows(splits: Record<string, ISplit> | null | undefined, names: string[] = []): ISplitRow[] {
  const order = ['train', 'val', 'validation', 'test'];
  const rank = (s: string) => (order.includes(s) ? order.indexOf(s) : order.length);
  return Object.entries(splits ?? {})
    .sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b))
    .map(([split, s]) => ({
      split,
      n: s.n,
      counts: Object.entries(s.counts ?? {})
        .map(([label, count]): [string, number] => [/^\d+$/.test(label) && names[Number(label)] !== undefined ? names[Number(label)] : label, count])
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([label, count]) => `${label}: ${count}`)
        .join(', ')
    }));
}

/** How many bad records, and whether the list shown is all of them. */
export function badSummary(job: IPreprocessJob): { count: number; shown: number } {
  const shown = job.bad_records?.length ?? 0;
  return { count: job.summary?.bad_records?.count ?? shown, shown };
}
