/**
 * A preprocessing job as the panel and its page in the main area (``lab?deepvre-job=ID``) show it:
 * its state (a failure in red with the error, never under a green banner), shards done of planned
 * with elapsed time, the output folder, counts per split, the bad records with their errors, and
 * the Dask dashboard link only while its cluster lives.
 */
import React, { useEffect, useState } from 'react';

import { requestAPI } from './api';
import { formatDuration } from './format';
import { badSummary, classNames, IPreprocessJob, jobProgress, splitRows } from './jobs';
import { usePolling } from './polling';
import { safeHref } from './servicelinks';

/** Poll a live job every 2 s until it is done or failed; a lost job (the server restarted) becomes failed. */
export function usePolledJob(job: IPreprocessJob | null, setJob: (job: IPreprocessJob) => void): void {
  usePolling('preprocess', job, setJob, { dashboard: '' });
}

/** A preprocessing job's page in the main area. */
export function PreprocessPage(props: { id: string; openPath?: (path: string) => void }): JSX.Element {
  const [job, setJob] = useState<IPreprocessJob | null>(null);
  const [error, setError] = useState('');
  useEffect(() => {
    requestAPI<IPreprocessJob>(`preprocess/${encodeURIComponent(props.id)}`).then(setJob, (err: Error) =>
      setError(`${err.message} (a server keeps its jobs while it runs)`)
    );
  }, [props.id]);
  usePolledJob(job, setJob);
  return (
    <div className="jp-deepvre-page" data-testid="preprocess-page">
      <h1>Preprocessing job {props.id}</h1>
      {error && (
        <div className="jp-deepvre-status jp-mod-error" role="alert">
          {error}
        </div>
      )}
      {job && <PreprocessJobView job={job} openPath={props.openPath} />}
    </div>
  );
}

export function PreprocessJobView(props: {
  job: IPreprocessJob;
  openPath?: (path: string) => void;
  openPage?: (id: string) => void;
}): JSX.Element {
  const { job } = props;
  const progress = jobProgress(job);
  const bad = badSummary(job);
  const rows = splitRows(job.splits, classNames(job));
  const href = job.dashboard ? safeHref(job.dashboard) : undefined;
  const live = job.state === 'starting' || job.state === 'running';
  return (
    <section className="jp-deepvre-job" data-testid="preprocess-job" data-state={job.state} aria-busy={live}>
      {job.state === 'failed' ? (
        <div className="jp-deepvre-status jp-mod-error" role="alert" data-testid="preprocess-error">
          {job.kind} of {job.input} failed: {job.error}
        </div>
      ) : (
        <div className={`jp-deepvre-status ${job.state === 'done' ? 'jp-mod-success' : 'jp-mod-loading'}`}>
          {job.kind} of {job.input}: {job.state === 'done' ? 'done' : progress.text} · {formatDuration(job.elapsed)}
        </div>
      )}
      {live && <progress max={1} value={progress.fraction ?? undefined} data-testid="preprocess-progress" />}
      <div className="jp-deepvre-meta">
        Output:{' '}
        {props.openPath && job.state === 'done' ? (
          <a href="#" onClick={e => (e.preventDefault(), props.openPath?.(job.output))}>
            {job.output}
          </a>
        ) : (
          <code>{job.output}</code>
        )}
        {' · '}cluster {job.cluster}
        {props.openPage && (
          <>
            {' · '}
            <a href="#" onClick={e => (e.preventDefault(), props.openPage?.(job.id))} data-testid="preprocess-open-page">
              Open job page
            </a>
          </>
        )}
        {href && live && (
          <>
            {' · '}
            <a href={href} target="_blank" rel="noopener noreferrer" data-testid="preprocess-dashboard">
              Dask dashboard
            </a>
          </>
        )}
      </div>
      {rows.length > 0 && (
        <table className="jp-deepvre-table" data-testid="preprocess-splits">
          <thead>
            <tr>
              <th>split</th>
              <th>items</th>
              <th>per label</th>
            </tr>
          </thead>
          <tbody>
            {rows.map(r => (
              <tr key={r.split}>
                <td>{r.split}</td>
                <td>{r.n}</td>
                <td>{r.counts}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      {bad.count > 0 && (
        <details data-testid="preprocess-bad" open={bad.shown <= 5}>
          <summary>
            {bad.count} bad record{bad.count === 1 ? '' : 's'} skipped
            {bad.shown < bad.count ? ` (${bad.shown} listed; all in manifest.json)` : ''}
          </summary>
          <ul>
            {job.bad_records.map((b, i) => (
              <li key={i}>
                <code>{b.record}</code>: {b.error}
              </li>
            ))}
          </ul>
        </details>
      )}
    </section>
  );
}
