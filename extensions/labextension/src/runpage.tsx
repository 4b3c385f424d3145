/**
 * The run page in JupyterLab's main area: state, epoch N of M, elapsed time and an estimate of
 * what remains, live training curves, the cell executing, the log's tail, metrics, outputs, and
 * "publish this model" (which asks which model when the run wrote several).
 */
import React, { useEffect, useState } from 'react';

import { post, requestAPI } from './api';
import { curves, elapsedSeconds, formatBytes, formatDuration, formatNumber, IEpoch, ISeries, polyline } from './format';
import { IRun, isActive, progressText } from './model';
import { MetricsTable } from './modelpage';
import { busy, IPanelOptions, StatusLine, useAction } from './panel';

interface IRunModel {
  folder: string;
  path: string | null;
  files: string[];
  size: number;
  published: { name: string; version: string } | null;
  figures: string[];
}

export interface IRunPage extends IRun {
  parameters: Record<string, unknown>;
  now: number;
  training: {
    fit: string;
    fits: number;
    epoch: number;
    epochs: number | null;
    history: IEpoch[];
    remaining_seconds: number | null;
  } | null;
  executing: { index: number; source: string } | null;
  log_tail: string;
  log: string | null;
  folder: string | null;
  models: IRunModel[];
  published: { name: string; version: string }[];
}

const COLOURS = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b'];

/** A small line chart of per-epoch series (SVG; each series in its own colour, with a legend). */
export function Chart(props: { title: string; series: ISeries }): JSX.Element | null {
  const entries = Object.entries(props.series);
  if (!entries.length) {
    return null;
  }
  const all = entries.flatMap(([, pts]) => pts);
  const box = {
    x0: Math.min(...all.map(p => p[0])),
    x1: Math.max(...all.map(p => p[0])),
    y0: Math.min(...all.map(p => p[1])),
    y1: Math.max(...all.map(p => p[1]))
  };
  const [w, h] = [320, 140];
  return (
    <figure className="jp-deepvre-chart" data-testid={`chart-${props.title}`}>
      <figcaption>{props.title}</figcaption>
      <svg viewBox={`-64 -8 ${w + 74} ${h + 28}`} width={w + 74} height={h + 28} role="img" aria-label={`${props.title} per epoch`}>
        <rect x={0} y={0} width={w} height={h} className="jp-deepvre-chart-frame" />
        <text x={-4} y={6} textAnchor="end">{formatNumber(Number(box.y1.toPrecision(3)))}</text>
        <text x={-4} y={h} textAnchor="end">{formatNumber(Number(box.y0.toPrecision(3)))}</text>
        <text x={0} y={h + 16}>epoch {box.x0}</text>
        <text x={w} y={h + 16} textAnchor="end">{box.x1}</text>
        {entries.map(([name, pts], i) => (
          <g key={name} stroke={COLOURS[i % COLOURS.length]} fill={COLOURS[i % COLOURS.length]}>
            <polyline points={polyline(pts, box, w, h)} fill="none" strokeWidth={2} />
            {polyline(pts, box, w, h)
              .split(' ')
              .map((xy, j) => (
                <circle key={j} cx={xy.split(',')[0]} cy={xy.split(',')[1]} r={2.5} />
              ))}
          </g>
        ))}
      </svg>
      <div className="jp-deepvre-legend">
        {entries.map(([name, pts], i) => (
          <span key={name} style={{ color: COLOURS[i % COLOURS.length] }}>
            ■ {name} {pts.length ? Number(pts[pts.length - 1][1].toPrecision(4)) : ''}
          </span>
        ))}
      </div>
    </figure>
  );
}

/** Publish a done run's model (``POST runs/ID/publish``); the runs page uses it too. */
export function Publish(props: { run: IRunPage; options: IPanelOptions }): JSX.Element {
  const { run } = props;
  const [name, setName] = useState('');
  const [visibility, setVisibility] = useState('private');
  const [folder, setFolder] = useState(run.models.length === 1 ? run.models[0].folder : '');
  const [published, setPublished] = useState<any>(null);
  const [status, act] = useAction();
  if (!run.models.length) {
    return <p className="jp-deepvre-empty">This run wrote no model.keras, so there is nothing to publish.</p>;
  }
  const submit = (event: React.FormEvent) => {
    event.preventDefault();
    void act(`Publishing ${name}…`, async () => {
      const card = await post<any>(`runs/${encodeURIComponent(run.id)}/publish`, { name, visibility, folder: folder || undefined });
      setPublished(card);
      return `Published ${card.name}:${card.version} (${card.visibility}) from ${card.source} to ${card.market}`;
    });
  };
  return (
    <form className="jp-deepvre-form" aria-label="Publish this model" aria-busy={busy(status)} onSubmit={submit}>
      {run.models.length > 1 && (
        <fieldset>
          <legend>This run wrote {run.models.length} models: which one?</legend>
          {run.models.map(m => (
            <label key={m.folder} className="jp-deepvre-choice">
              <input type="radio" name="model-folder" value={m.folder} checked={folder === m.folder} onChange={() => setFolder(m.folder)} />
              {m.folder === '.' ? 'the run folder' : m.folder}/model.keras ({formatBytes(m.size)})
            </label>
          ))}
        </fieldset>
      )}
      {run.models.length === 1 && (
        <p className="jp-deepvre-meta">
          From <code>{run.models[0].path ?? run.models[0].folder}/model.keras</code>
        </p>
      )}
      <label>
        Name in the marketplace
        <input type="text" name="publish-name" value={name} onChange={e => setName(e.target.value)} placeholder="model name" />
      </label>
      <label>
        Visibility
        <select value={visibility} onChange={e => setVisibility(e.target.value)}>
          <option value="private">private (only you)</option>
          <option value="public">public (every hub user)</option>
        </select>
      </label>
      <button type="submit" className="jp-mod-styled jp-mod-accept" disabled={!name || !folder || busy(status)}>
        Publish this model
      </button>
      <StatusLine status={status} testid="publish-status" />
      {published && (
        <button type="button" className="jp-deepvre-link" onClick={() => props.options.openModel?.(published.name, published.version)}>
          Open {published.name}:{published.version}
        </button>
      )}
    </form>
  );
}

export function RunPage(props: { id: string; options: IPanelOptions }): JSX.Element {
  const { options } = props;
  const [run, setRun] = useState<IRunPage | null>(null);
  const [error, setError] = useState('');
  const [tick, setTick] = useState(0);
  const [cancelStatus, cancelAct] = useAction();
  useEffect(() => {
    requestAPI<IRunPage>(`runs/${encodeURIComponent(props.id)}`)
      .then(data => {
        setRun(data);
        setError('');
      })
      .catch(err => setError(err.message));
  }, [props.id, tick]);
  useEffect(() => {
    if (run && !isActive(run)) {
      return;
    }
    const timer = setTimeout(() => setTick(t => t + 1), 2000);
    return () => clearTimeout(timer);
  }, [run, error]);
  if (!run) {
    return (
      <div className="jp-deepvre-page">
        {error ? <div className="jp-deepvre-status jp-mod-error" role="alert">{error}</div> : <p>Loading run {props.id}…</p>}
      </div>
    );
  }
  const t = run.training;
  const elapsed = elapsedSeconds(run.started, run.finished, run.now);
  const { losses, others } = curves(t?.history);
  const cancel = () =>
    cancelAct(`Cancelling ${run.id}…`, async () => {
      await requestAPI(`runs/${encodeURIComponent(run.id)}`, { method: 'DELETE' });
      setTick(n => n + 1);
      return `Cancelled ${run.id}`;
    });
  return (
    <article className="jp-deepvre-page" aria-label={`Run ${run.id}`} data-testid="run-page" data-state={run.state}>
      <header>
        <h1>Run {run.id}</h1>
        <div className="jp-deepvre-badges">
          <span className={`jp-deepvre-badge jp-mod-${run.state}`} data-testid="run-state">
            {run.state}
          </span>
          <span className="jp-deepvre-badge">{progressText(run)}</span>
          {elapsed !== null && <span data-testid="run-elapsed">elapsed {formatDuration(elapsed)}</span>}
        </div>
      </header>
      {error && <div className="jp-deepvre-status jp-mod-error" role="alert">{error}</div>}
      {run.waiting && (
        <div className="jp-deepvre-status" role="status" data-testid="run-waiting">
          {run.waiting}
        </div>
      )}
      {run.error && <div className="jp-deepvre-status jp-mod-error">{run.error}</div>}
      {isActive(run) && (
        <button className="jp-mod-styled jp-mod-warn" onClick={cancel} disabled={busy(cancelStatus)}>
          Cancel run
        </button>
      )}
      <StatusLine status={cancelStatus} testid="cancel-status" />
      <div className="jp-deepvre-page-columns">
        <div>
          <section aria-label="Training">
            <h3>Training</h3>
            {t ? (
              <p data-testid="run-epochs">
                epoch {t.epoch} of {t.epochs ?? '?'} · fit <code>{t.fit}</code>
                {t.fits > 1 ? ` (fit ${t.fits} of this run)` : ''}
                {t.remaining_seconds !== null && t.remaining_seconds !== undefined && t.epoch < (t.epochs ?? 0)
                  ? ` · about ${formatDuration(t.remaining_seconds)} left in this fit`
                  : ''}
              </p>
            ) : (
              <p className="jp-deepvre-empty">No epochs reported (yet): the notebook trains with deepvre's training callbacks once it gets there.</p>
            )}
            <div className="jp-deepvre-charts">
              <Chart title="loss" series={losses} />
              <Chart title="metrics" series={others} />
            </div>
          </section>
          {run.executing && (
            <section aria-label="Executing">
              <h3>Executing cell {run.executing.index + 1}</h3>
              <pre className="jp-deepvre-code">{run.executing.source}</pre>
            </section>
          )}
          <section aria-label="Log">
            <h3>Log (last lines)</h3>
            <pre className="jp-deepvre-log" data-testid="run-log">{run.log_tail || '(empty)'}</pre>
          </section>
          <h3>Metrics</h3>
          <MetricsTable metrics={run.metrics} />
        </div>
        <aside>
          <section aria-label="Publish">
            <h3>Publish this model</h3>
            {run.published.length > 0 && (
              <p data-testid="run-published">
                The notebook published{' '}
                {run.published.map(p => (
                  <button key={`${p.name}:${p.version}`} className="jp-deepvre-link" onClick={() => options.openModel?.(p.name, p.version)}>
                    {p.name}:{p.version}
                  </button>
                ))}{' '}
                itself.
              </p>
            )}
            {run.state === 'done' ? (
              <Publish run={run} options={options} />
            ) : (
              <p className="jp-deepvre-empty">A run can be published once it is done.</p>
            )}
          </section>
          <section aria-label="Outputs">
            <h3>Outputs</h3>
            <ul className="jp-deepvre-outputs">
              {run.output && (
                <li>
                  <button className="jp-deepvre-link" onClick={() => options.openPath(run.output!)}>
                    executed notebook
                  </button>
                </li>
              )}
              {run.metrics_file && (
                <li>
                  <button className="jp-deepvre-link" onClick={() => options.openPath(run.metrics_file!)}>
                    metrics.json
                  </button>
                </li>
              )}
              {run.log && (
                <li>
                  <button className="jp-deepvre-link" onClick={() => options.openPath(run.log!)}>
                    run.log
                  </button>
                </li>
              )}
              {run.models.map(m => (
                <li key={m.folder}>
                  model in <code>{m.path ?? m.folder}</code>: {m.files.join(', ')}
                  {m.figures.length > 0 && (
                    <ul>
                      {m.figures.map(f => (
                        <li key={f}>
                          <button className="jp-deepvre-link" onClick={() => m.path && options.openPath(`${m.path}/${f}`)}>
                            {f}
                          </button>
                        </li>
                      ))}
                    </ul>
                  )}
                </li>
              ))}
            </ul>
          </section>
          <section aria-label="Parameters">
            <h3>Parameters</h3>
            <MetricsTable metrics={run.parameters} empty="The notebook's defaults, unchanged." testid="run-parameters" />
          </section>
        </aside>
      </div>
    </article>
  );
}
