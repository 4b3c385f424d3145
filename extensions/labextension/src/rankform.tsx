/**
 * "Rank base models for my data": a form taking a preprocessed data set's folder and a cluster, the
 * ranking job's progress (it may take a minute), then the table: rank, model, LogME, LEEP, probe
 * accuracy and the plain-words reading, with the models skipped and why.
 */
import React, { useEffect, useState } from 'react';

import { post, requestAPI } from './api';
import { formatDuration } from './format';
import { clusterLabel } from './jobs';
import { usePolling } from './polling';
import { IRanking, IRankingJob, rankingProgress, score } from './rankings';

export function RankingTable({ ranking }: { ranking: IRanking }): JSX.Element {
  const splits = Object.entries(ranking.data.splits)
    .map(([k, v]) => `${k} ${v}`)
    .join(', ');
  return (
    <div data-testid="ranking">
      <p className="jp-deepvre-meta">
        {ranking.data.path}: {ranking.data.samples} samples {JSON.stringify(ranking.data.shape)}, {ranking.data.n_classes}{' '}
        classes ({splits}); {formatDuration(ranking.seconds)}
      </p>
      <table className="jp-deepvre-table" data-testid="ranking-table">
        <thead>
          <tr>
            <th>rank</th>
            <th>model</th>
            <th title="LogME (You et al., 2021): higher is better">LogME</th>
            <th title="LEEP (Nguyen et al., 2020): 0 is best; needs the model's own labels">LEEP</th>
            <th title="accuracy of a linear probe on the same features">probe</th>
          </tr>
        </thead>
        {/* the reading under its model's numbers, the table's full width (the sidebar is narrow) */}
        {ranking.models.map(m => (
          <tbody key={m.model}>
            <tr data-floor={m.floor}>
              <td>{m.rank}</td>
              <td style={{ wordBreak: 'break-all' }}>{m.model}</td>
              <td>{score(m.logme)}</td>
              <td>{score(m.leep)}</td>
              <td>{score(m.probe_accuracy, 2)}</td>
            </tr>
            <tr className="jp-deepvre-reading">
              <td colSpan={5}>
                <small>{m.reading}</small>
              </td>
            </tr>
          </tbody>
        ))}
      </table>
      {ranking.skipped.length > 0 && (
        <ul className="jp-deepvre-skipped" data-testid="ranking-skipped">
          {ranking.skipped.map(s => (
            <li key={s.model}>
              {s.model} skipped: {s.reason}
            </li>
          ))}
        </ul>
      )}
      <p className="jp-deepvre-meta">
        <small>Based on: {ranking.basis}</small>
      </p>
    </div>
  );
}

export function RankingJobView({ job }: { job: IRankingJob }): JSX.Element {
  const progress = rankingProgress(job);
  const live = job.state === 'starting' || job.state === 'running';
  return (
    <section className="jp-deepvre-job" data-testid="ranking-job" data-state={job.state} aria-busy={live}>
      {job.state === 'failed' ? (
        <div className="jp-deepvre-status jp-mod-error" role="alert" data-testid="ranking-error">
          Ranking on {job.data} failed: {job.error}
        </div>
      ) : (
        <div className={`jp-deepvre-status ${job.state === 'done' ? 'jp-mod-success' : 'jp-mod-loading'}`}>
          Ranking on {job.data}: {job.state === 'done' ? 'done' : progress.text} · {formatDuration(job.elapsed)}
        </div>
      )}
      {live && <progress max={1} value={progress.fraction ?? undefined} data-testid="ranking-progress" />}
      {job.result && <RankingTable ranking={job.result} />}
    </section>
  );
}

/** The clusters this server can start, as a select's options (Preprocess and the ranking offer them). */
export function ClusterChoices({ clusters }: { clusters: string[] }): JSX.Element {
  return (
    <>
      {clusters.map(c => (
        <option key={c} value={c}>
          {clusterLabel(c)}
        </option>
      ))}
    </>
  );
}

/** The form and the job it started (the fine-tune form asks the server for the latest finished one). */
export function RankForm(): JSX.Element {
  const [data, setData] = useState('');
  const [cluster, setCluster] = useState('local');
  const [clusters, setClusters] = useState<string[]>(['local']);
  const [job, setJob] = useState<IRankingJob | null>(null);
  const [error, setError] = useState('');
  useEffect(() => {
    requestAPI<{ clusters: string[] }>('rankings')
      .then(answer => setClusters(answer.clusters?.length ? answer.clusters : ['local']))
      .catch(err => setError((err as Error).message));
  }, []);
  usePolling('rankings', job, setJob);
  const start = async (event: React.FormEvent) => {
    event.preventDefault();
    setError('');
    try {
      setJob(await post<IRankingJob>('rankings', { data: data.trim(), cluster }));
    } catch (err) {
      setError((err as Error).message);
    }
  };
  return (
    <form className="jp-deepvre-form" onSubmit={start} aria-label="Rank base models">
      <label>
        Preprocessed data set (a Preprocess output folder in your workspace)
        <input type="text" value={data} onChange={e => setData(e.target.value)} placeholder="data/images-preprocessed" />
      </label>
      <label>
        Cluster
        <select aria-label="Ranking cluster" value={cluster} onChange={e => setCluster(e.target.value)}>
          <ClusterChoices clusters={clusters} />
        </select>
      </label>
      <button
        type="submit"
        className="jp-mod-styled jp-mod-accept"
        disabled={!data.trim() || job?.state === 'starting' || job?.state === 'running'}
      >
        Start ranking
      </button>
      {error && (
        <div className="jp-deepvre-status jp-mod-error" role="alert" data-testid="ranking-status">
          {error}
        </div>
      )}
      {job && <RankingJobView job={job} />}
    </form>
  );
}
