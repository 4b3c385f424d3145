/**
 * The runs page in JupyterLab's main area: several runs, or one sweep's runs, side by side. A table
 * sorted by any metric (click its header; the best run is marked), the parameters with those that
 * differ highlighted, the training curves of every run (one chart per metric, one line per run),
 * and the step from the best run to publishing it (the run page's own publish form).
 */
import React, { useEffect, useMemo, useState } from 'react';

import { requestAPI } from './api';
import {
  bestRun,
  compareQuery,
  formatParameter,
  IComparison,
  laterFits,
  ICompareMetric,
  ISort,
  metricSeries,
  nextSort,
  bestFirst,
  runLabel,
  sortRuns
} from './compare';
import { formatNumber } from './format';
import { ACTIVE_STATES } from './model';
import { IPanelOptions } from './panel';
import { Chart, IRunPage, Publish } from './runpage';

function SortHeader(props: { metric: ICompareMetric; sort: ISort | null; onSort: () => void }): JSX.Element {
  const { metric, sort } = props;
  const active = sort?.metric === metric.name;
  const arrow = active ? (sort!.order === 'asc' ? ' ▲' : ' ▼') : '';
  return (
    <th aria-sort={active ? (sort!.order === 'asc' ? 'ascending' : 'descending') : 'none'} className="jp-deepvre-number">
      <button
        className="jp-deepvre-link"
        onClick={props.onSort}
        title={`Sort by ${metric.name} (${metric.better} is better)`}
        data-testid={`sort-${metric.name}`}
      >
        {metric.name}
        {arrow}
      </button>
    </th>
  );
}

/** The run's publish form (the run page's), for the run chosen in the table. */
function PublishRun(props: { id: string; options: IPanelOptions }): JSX.Element {
  const [run, setRun] = useState<IRunPage | null>(null);
  const [error, setError] = useState('');
  useEffect(() => {
    setRun(null);
    requestAPI<IRunPage>(`runs/${encodeURIComponent(props.id)}`)
      .then(data => {
        setRun(data);
        setError('');
      })
      .catch(err => setError(err.message));
  }, [props.id]);
  if (error) {
    return <div className="jp-deepvre-status jp-mod-error" role="alert">{error}</div>;
  }
  if (!run) {
    return <p>Loading run {props.id}…</p>;
  }
  return run.state === 'done' ? (
    <Publish key={run.id} run={run} options={props.options} />
  ) : (
    <p className="jp-deepvre-empty">Run {run.id} is {run.state}: a run can be published once it is done.</p>
  );
}

export function RunsPage(props: { ids: string[]; sweep: string; options: IPanelOptions }): JSX.Element {
  const { options } = props;
  const [data, setData] = useState<IComparison | null>(null);
  const [error, setError] = useState('');
  const [tick, setTick] = useState(0);
  const [sort, setSort] = useState<ISort | null>(null);
  const [chosen, setChosen] = useState('');
  const query = compareQuery(props);
  useEffect(() => {
    requestAPI<IComparison>(`compare?${query}`)
      .then(answer => {
        setData(answer);
        setError('');
      })
      .catch(err => setError(err.message));
  }, [query, tick]);
  const active = data?.runs.some(r => ACTIVE_STATES.includes(r.state));
  useEffect(() => {
    if (!active) {
      return;
    }
    const timer = setTimeout(() => setTick(t => t + 1), 3000); // runs still going: follow them
    return () => clearTimeout(timer);
  }, [data, active]);
  const labels = useMemo(
    () => Object.fromEntries((data?.runs ?? []).map(r => [r.id, runLabel(r, data!.parameters.differ)])),
    [data]
  );
  if (!data) {
    return (
      <div className="jp-deepvre-page">
        {error ? <div className="jp-deepvre-status jp-mod-error" role="alert">{error}</div> : <p>Loading runs…</p>}
      </div>
    );
  }
  const shownSort = sort ?? (data.metrics.length ? bestFirst(data.metrics[0]) : null);
  const sortMetric = data.metrics.find(m => m.name === shownSort?.metric);
  const best = bestRun(data.runs, sortMetric);
  const rows = sortRuns(data.runs, shownSort);
  const publishing = chosen || best || '';
  const { differ, same } = data.parameters;
  const title = data.sweep ? `Sweep ${data.sweep.id}` : `${data.runs.length} runs side by side`;
  return (
    <article className="jp-deepvre-page" aria-label={title} data-testid="runs-page">
      <header>
        <h1>{title}</h1>
        <div className="jp-deepvre-badges">
          <span className="jp-deepvre-badge">{data.runs.length} runs</span>
          {data.sweep && <span className="jp-deepvre-badge">swept: {data.sweep.axes.join(', ') || '–'}</span>}
          {active && <span className="jp-deepvre-badge jp-mod-running">runs still going: following them</span>}
        </div>
      </header>
      {error && <div className="jp-deepvre-status jp-mod-error" role="alert">{error}</div>}
      <section aria-label="Runs table">
        <h3>Runs{sortMetric ? `, by ${sortMetric.name} (${sortMetric.better} is better)` : ''}</h3>
        <div className="jp-deepvre-scroll">
          <table className="jp-deepvre-table jp-deepvre-runs-table" data-testid="runs-table">
            <thead>
              <tr>
                <th>run</th>
                <th>state</th>
                {differ.map(name => (
                  <th key={name} className="jp-deepvre-differs">
                    {name}
                  </th>
                ))}
                {data.metrics.map(metric => (
                  <SortHeader key={metric.name} metric={metric} sort={shownSort} onSort={() => setSort(nextSort(shownSort, metric))} />
                ))}
                <th>publish</th>
              </tr>
            </thead>
            <tbody>
              {rows.map(run => (
                <tr
                  key={run.id}
                  data-run-id={run.id}
                  data-best={run.id === best ? 'true' : undefined}
                  className={run.id === best ? 'jp-deepvre-best' : undefined}
                >
                  <td>
                    <button className="jp-deepvre-link" onClick={() => options.openRun?.(run.id)} title="Open the run page">
                      {run.id}
                    </button>
                    {run.id === best && (
                      <span className="jp-deepvre-badge jp-mod-done" data-testid="best-run">
                        ★ best {sortMetric?.name}
                      </span>
                    )}
                  </td>
                  <td>{run.state}</td>
                  {differ.map(name => (
                    <td key={name} className="jp-deepvre-differs">
                      {formatParameter(run.parameters[name])}
                    </td>
                  ))}
                  {data.metrics.map(metric => (
                    <td key={metric.name} className="jp-deepvre-number" data-metric={metric.name} title={String(run.metrics[metric.name] ?? '')}>
                      {typeof run.metrics[metric.name] === 'number' ? formatNumber(run.metrics[metric.name]) : '–'}
                    </td>
                  ))}
                  <td>
                    <label className="jp-deepvre-choice">
                      <input
                        type="radio"
                        name="publish-run"
                        aria-label={`Publish run ${run.id}`}
                        checked={publishing === run.id}
                        disabled={run.state !== 'done'}
                        onChange={() => setChosen(run.id)}
                      />
                    </label>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      </section>
      <section aria-label="Training curves">
        <h3>Training curves</h3>
        {laterFits(rows, labels).length > 0 && (
          <p className="jp-deepvre-meta" data-testid="later-fits">
            These runs fitted more than once; their curves are the last fit's: {laterFits(rows, labels).join('; ')}.
          </p>
        )}
        {data.curves.length ? (
          <div className="jp-deepvre-charts">
            {data.curves.map(metric => (
              <Chart key={metric} title={metric} series={metricSeries(rows, metric, labels)} />
            ))}
          </div>
        ) : (
          <p className="jp-deepvre-empty">No epochs reported: the notebooks train with deepvre's training callbacks to draw curves.</p>
        )}
      </section>
      <div className="jp-deepvre-page-columns">
        <div>
          <section aria-label="Parameters">
            <h3>Parameters</h3>
            <table className="jp-deepvre-table" data-testid="runs-parameters">
              <thead>
                <tr>
                  <th>parameter</th>
                  {rows.map(run => (
                    <th key={run.id}>{labels[run.id]}</th>
                  ))}
                </tr>
              </thead>
              <tbody>
                {differ.map(name => (
                  <tr key={name} className="jp-deepvre-differs" data-differs="true">
                    <td>{name}</td>
                    {rows.map(run => (
                      <td key={run.id}>{formatParameter(run.parameters[name])}</td>
                    ))}
                  </tr>
                ))}
                {Object.entries(same).map(([name, value]) => (
                  <tr key={name}>
                    <td>{name}</td>
                    <td colSpan={rows.length}>{formatParameter(value)} (all runs)</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </section>
        </div>
        <aside>
          <section aria-label="Publish the best run">
            <h3>Publish {publishing === best && best ? 'the best run' : 'a run'}</h3>
            {publishing ? (
              <>
                <p className="jp-deepvre-meta" data-testid="publishing-run">
                  Run <code>{publishing}</code>
                  {publishing === best && sortMetric ? `: the best ${sortMetric.name}` : ''} ({labels[publishing]})
                </p>
                <PublishRun id={publishing} options={options} />
              </>
            ) : (
              <p className="jp-deepvre-empty">No run is done yet.</p>
            )}
          </section>
        </aside>
      </div>
    </article>
  );
}
