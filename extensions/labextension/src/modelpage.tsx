/**
 * The model page in JupyterLab's main area, in the spirit of a Hugging Face model card: name,
 * version picker, badges, license and citation, description, metrics table, the training
 * notebook's plots, lineage as links, files, usage snippet and the actions.
 */
import React, { useEffect, useState } from 'react';

import { requestAPI } from './api';
import { formatBytes, ILineage, lineageLinks, metricRows, pageSearch } from './format';
import { Markdown } from './markdown';
import { IModelDetails } from './model';
import { busy, IPanelOptions, ModelActions, StatusLine, useAction } from './panel';

export interface IModelPage extends IModelDetails {
  visibility: string;
  groups: string[];
  published: string;
  published_by: string;
  license: string;
  citation: string;
  links: Record<string, string>;
  files: { name: string; size: number | null; sha256: string | null }[];
  provenance: ILineage;
  usage: { cli: string; python: string };
}

/** A table of metrics, grouped by their first key, numbers at full precision (the stored value on hover). */
export function MetricsTable(props: {
  metrics: Record<string, unknown> | null | undefined;
  empty?: string;
  testid?: string;
}): JSX.Element {
  const rows = metricRows(props.metrics);
  if (!rows.length) {
    return <p className="jp-deepvre-empty">{props.empty ?? 'No metrics recorded.'}</p>;
  }
  let group: string | null = null;
  return (
    <table className="jp-deepvre-table" data-testid={props.testid ?? 'metrics-table'}>
      <tbody>
        {rows.flatMap(r => {
          const head =
            r.group !== group && r.group ? (
              <tr key={`g-${r.group}`}>
                <th colSpan={2} className="jp-deepvre-table-group">
                  {r.group}
                </th>
              </tr>
            ) : null;
          group = r.group;
          const row = (
            <tr key={`${r.group}.${r.name}`}>
              <td>{r.name}</td>
              <td className="jp-deepvre-number" title={r.exact}>
                {r.value}
              </td>
            </tr>
          );
          return head ? [head, row] : [row];
        })}
      </tbody>
    </table>
  );
}

function Figures(props: { name: string; version: string }): JSX.Element | null {
  const [figures, setFigures] = useState<{ cell: number; png: string }[]>([]);
  useEffect(() => {
    setFigures([]);
    const q = new URLSearchParams({ version: props.version });
    requestAPI<{ figures: { cell: number; png: string }[] }>(`models/${encodeURIComponent(props.name)}/figures?${q}`)
      .then(data => setFigures(data.figures))
      .catch(() => setFigures([]));
  }, [props.name, props.version]);
  if (!figures.length) {
    return null;
  }
  return (
    <section aria-label="Plots">
      <h3>Plots from the training notebook</h3>
      <div className="jp-deepvre-figures">
        {figures.map((f, i) => (
          <img key={i} alt={`plot ${i + 1} (cell ${f.cell})`} src={`data:image/png;base64,${f.png}`} />
        ))}
      </div>
    </section>
  );
}

function Lineage(props: { page: IModelPage; options: IPanelOptions }): JSX.Element {
  const links = lineageLinks(props.page.provenance);
  const parameters = Object.entries(props.page.provenance?.parameters ?? {});
  return (
    <section aria-label="Lineage">
      <h3>Lineage</h3>
      {!props.page.provenance?.base && (
        <p className="jp-deepvre-empty" data-testid="no-base">No base model: this model was not fine-tuned from one in the catalog.</p>
      )}
      <dl className="jp-deepvre-service" data-testid="lineage">
        {links.map(l => (
          <React.Fragment key={l.label + l.text}>
            <dt>{l.label}</dt>
            <dd>
              {l.model ? (
                <button className="jp-deepvre-link" onClick={() => props.options.openModel?.(l.model!.name, l.model!.version)}>
                  {l.text}
                </button>
              ) : l.run ? (
                <button className="jp-deepvre-link" onClick={() => props.options.openRun?.(l.run!)}>
                  {l.text}
                </button>
              ) : (
                <code>{l.text}</code>
              )}
            </dd>
          </React.Fragment>
        ))}
      </dl>
      {parameters.length > 0 && (
        <details>
          <summary>Training parameters ({parameters.length})</summary>
          <table className="jp-deepvre-table">
            <tbody>
              {parameters.map(([k, v]) => (
                <tr key={k}>
                  <td>{k}</td>
                  <td className="jp-deepvre-number">{typeof v === 'string' ? v : JSON.stringify(v)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </details>
      )}
    </section>
  );
}

export function ModelPage(props: { name: string; version: string; options: IPanelOptions }): JSX.Element {
  const { options } = props;
  const [version, setVersion] = useState(props.version);
  const [page, setPage] = useState<IModelPage | null>(null);
  const [status, act] = useAction();
  const [actionsBusy, setActionsBusy] = useState(false);
  useEffect(() => {
    void act(`Loading ${props.name}…`, async () => {
      const q = new URLSearchParams(version ? { version } : {});
      const data = await requestAPI<IModelPage>(`models/${encodeURIComponent(props.name)}?${q}`);
      setPage(data);
      return '';
    });
  }, [props.name, version]);
  if (!page) {
    return (
      <div className="jp-deepvre-page">
        <StatusLine status={status} testid="page-status" />
      </div>
    );
  }
  const versions = (page.versions ?? []).map(v => (typeof v === 'string' ? v : String((v as any)?.version ?? '')));
  const ref = `${page.name}:${page.version}`;
  const link = `${window.location.origin}${window.location.pathname}${pageSearch({ kind: 'model', name: page.name, version: page.version })}`;
  return (
    <article className="jp-deepvre-page" aria-label={`Model page ${ref}`} aria-busy={busy(status) || actionsBusy} data-testid="model-page">
      <header>
        <h1>{page.title || page.name}</h1>
        <div className="jp-deepvre-badges">
          <code data-testid="model-ref">{ref}</code>
          {page.owner && <span className="jp-deepvre-badge">owner {page.owner}</span>}
          {page.visibility && (
            <span className={`jp-deepvre-badge jp-mod-${page.visibility}`} data-testid="visibility">
              {page.visibility}
              {page.groups?.length ? `: ${page.groups.join(', ')}` : ''}
            </span>
          )}
          {page.use_case && <span className="jp-deepvre-badge">{page.use_case}</span>}
          {page.trainable && <span className="jp-deepvre-badge">trainable</span>}
        </div>
        <label>
          Version{' '}
          <select aria-label="Version" value={page.version} onChange={e => setVersion(e.target.value)}>
            {(versions.length ? versions : [page.version]).map(v => (
              <option key={v}>{v}</option>
            ))}
          </select>
        </label>{' '}
        <span className="jp-deepvre-meta">
          published {page.published?.slice(0, 10)} by {page.published_by}
        </span>
      </header>
      <StatusLine status={status} testid="page-status" />
      <div className="jp-deepvre-page-columns">
        <div>
          <p>{page.summary}</p>
          <Markdown source={page.description || ''} rendermime={options.rendermime} />
          <h3>Metrics</h3>
          <MetricsTable metrics={page.metrics} />
          <Figures name={page.name} version={page.version} />
        </div>
        <aside>
          <section aria-label="Use this model">
            <h3>Use this model</h3>
            <ModelActions
              details={page}
              version={page.version}
              options={options}
              onRunStarted={() => undefined}
              onBusy={setActionsBusy}
            />
            <h4>Pull it</h4>
            <pre data-testid="usage-cli">{page.usage.cli}</pre>
            <pre data-testid="usage-python">{page.usage.python}</pre>
            <h4>Link to this page</h4>
            <code className="jp-deepvre-wrap">{link}</code>
          </section>
          <h3>About</h3>
          <dl className="jp-deepvre-service">
            <dt>License</dt>
            <dd>{page.license || 'not stated'}</dd>
            <dt>Citation</dt>
            <dd>{page.citation || 'not stated'}</dd>
            {Object.entries(page.links ?? {}).map(([k, v]) => (
              <React.Fragment key={k}>
                <dt>{k.replace(/_/g, ' ')}</dt>
                <dd>{/^https?:\/\//.test(v) ? <a href={v} target="_blank" rel="noopener noreferrer">{v}</a> : v}</dd>
              </React.Fragment>
            ))}
          </dl>
          <Lineage page={page} options={options} />
          <section aria-label="Files">
            <h3>Files</h3>
            <table className="jp-deepvre-table" data-testid="files">
              <tbody>
                {page.files.map(f => (
                  <tr key={f.name}>
                    <td>{f.name}</td>
                    <td className="jp-deepvre-number">{formatBytes(f.size)}</td>
                    <td title={f.sha256 ?? ''}>
                      <code>{(f.sha256 ?? '').slice(0, 12)}</code>
                    </td>
                  </tr>
                ))}
              </tbody>
            </table>
          </section>
        </aside>
      </div>
    </article>
  );
}
