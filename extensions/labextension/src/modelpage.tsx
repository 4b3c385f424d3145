/**
 * The model page in JupyterLab's main area, in the spirit of a Hugging Face model card: name,
 * version picker, badges (the verification's too), license and citation, description, metrics table,
 * the training notebook's plots, lineage as links, the environment it was trained in (and what
 * differs on this server), verification records, files, usage snippet and the actions.
 */
import React, { useEffect, useState } from 'react';

import { post, requestAPI } from './api';
import { trustRequest } from './data';
import { formatBytes, ILineage, lineageLinks, metricRows, pageSearch } from './format';
import { Markdown } from './markdown';
import { IModelDetails } from './model';
import { busy, confirmTrust, IPanelOptions, ModelActions, StatusLine, useAction } from './panel';

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

interface IEnvironment {
  python?: { implementation?: string; version?: string };
  platform?: { system?: string; release?: string; machine?: string };
  lock?: { file?: string; sha256: string; why?: string };
  packages?: Record<string, string>;
  container?: { in_container?: boolean; image?: string; image_digest?: string };
  gpus?: { name?: string; driver?: string }[];
  data_manifest?: string | null;
}

interface IDifferences {
  packages: { added: Record<string, string>; removed: Record<string, string>; changed: Record<string, [string, string]> };
  python: [string, string] | null;
  platform: [unknown, unknown] | null;
  lock: [string, string] | null;
  gpus: [unknown, unknown] | null;
  container?: [IImage | null, IImage | null] | null;
}

interface IImage {
  image?: string | null;
  image_digest?: string;
}

interface IVerification {
  id: number;
  verifier: string;
  time: string;
  result: string;
  reason?: string;
  valid: boolean;
}

/** What the server extension's models/NAME/environment answers. */
export interface IEnvironmentView {
  recorded: IEnvironment | null;
  current: IEnvironment;
  differences: IDifferences | null;
  verifications: IVerification[];
  badge: string;
  verifying: { state: string; result?: string; reason?: string; run?: string; error?: string } | null;
}

/** Start ``deepvre market verify`` in the server (another user's notebook: after the trust dialog). */
async function startVerify(name: string, version: string): Promise<string> {
  const endpoint = `models/${encodeURIComponent(name)}/verify`;
  try {
    await post(endpoint, { version });
  } catch (error) {
    const trust = trustRequest(error);
    if (!trust) {
      throw error;
    }
    if (!(await confirmTrust(trust))) {
      return `Not verified: ${trust.owner}'s notebook was not confirmed.`;
    }
    await post(endpoint, { version, trust: { owner: trust.owner, sha256: trust.sha256 } });
  }
  return 'Verifying: the lineage is re-running in your runs folder.';
}

function describePlatform(p: IEnvironment['platform']): string {
  return p ? [p.system, p.release, p.machine].filter(Boolean).join(' ') : 'unknown';
}

/** A container image as its name and the start of its digest; "no container" outside one. */
function describeImage(c: IImage | null | undefined): string {
  if (!c) {
    return 'no container';
  }
  const digest = c.image_digest && c.image_digest !== 'unknown' ? c.image_digest.slice(0, 19) : 'digest unknown';
  return `${c.image ?? 'unnamed image'} (${digest})`;
}

function PackageTable(props: { rows: [string, string][]; testid: string }): JSX.Element {
  return (
    <table className="jp-deepvre-table" data-testid={props.testid}>
      <tbody>
        {props.rows.map(([name, text]) => (
          <tr key={name}>
            <td>{name}</td>
            <td className="jp-deepvre-number">{text}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** The version's recorded environment, what differs on this server, and the verification records. */
function Environment(props: { view: IEnvironmentView | null; onVerify: () => void; status: string }): JSX.Element {
  const view = props.view;
  if (!view) {
    return (
      <section aria-label="Environment">
        <h3>Environment</h3>
        <p className="jp-deepvre-empty">Reading the environment…</p>
      </section>
    );
  }
  const env = view.recorded;
  const d = view.differences;
  const changed = d ? Object.entries(d.packages.changed).map(([n, [a, b]]) => [n, `${a} → ${b}`] as [string, string]) : [];
  const added = d ? Object.entries(d.packages.added).map(([n, v]) => [n, `${v} (only here)`] as [string, string]) : [];
  const removed = d ? Object.entries(d.packages.removed).map(([n, v]) => [n, `${v} (not here)`] as [string, string]) : [];
  const same =
    d && !changed.length && !added.length && !removed.length && !d.python && !d.platform && !d.lock && !d.gpus && !d.container;
  return (
    <section aria-label="Environment">
      <h3>Environment</h3>
      {!env ? (
        <p className="jp-deepvre-empty" data-testid="no-environment">
          No environment recorded: this version was published before deepvre recorded one.
        </p>
      ) : (
        <>
          <dl className="jp-deepvre-service" data-testid="environment">
            <dt>Python</dt>
            <dd>{env.python ? `${env.python.implementation ?? ''} ${env.python.version ?? ''}` : 'unknown'}</dd>
            <dt>Platform</dt>
            <dd>{describePlatform(env.platform)}</dd>
            <dt>Lock file</dt>
            <dd title={env.lock?.why ?? env.lock?.sha256}>
              <code>{env.lock?.sha256 === 'unknown' ? `unknown (${env.lock?.why ?? ''})` : (env.lock?.sha256 ?? 'unknown').slice(0, 16)}</code>
            </dd>
            <dt>Container</dt>
            <dd data-testid="environment-container">
              {env.container?.in_container ? `yes: ${describeImage(env.container)}` : 'no'}
            </dd>
            <dt>GPUs</dt>
            <dd>{env.gpus?.length ? env.gpus.map(g => `${g.name} (driver ${g.driver})`).join(', ') : 'none'}</dd>
            <dt>Data manifest</dt>
            <dd>
              <code>{env.data_manifest ? env.data_manifest.slice(0, 16) : 'none'}</code>
            </dd>
          </dl>
          <details>
            <summary>Installed packages ({Object.keys(env.packages ?? {}).length})</summary>
            <PackageTable rows={Object.entries(env.packages ?? {})} testid="environment-packages" />
          </details>
          <h4>Differences from this server</h4>
          {same ? (
            <p data-testid="environment-same">None: this server has the same packages, Python, platform, lock file, GPUs and container image.</p>
          ) : (
            <div data-testid="environment-differences">
              <ul>
                {d?.python && <li>Python {d.python[0]} here {d.python[1]}</li>}
                {d?.lock && <li>lock file differs ({String(d.lock[0]).slice(0, 12)} here {String(d.lock[1]).slice(0, 12)})</li>}
                {d?.platform && <li>platform {describePlatform(env.platform)} here {describePlatform(view.current.platform)}</li>}
                {d?.container && (
                  <li data-testid="environment-container-difference">
                    container {describeImage(d.container[0])} here {describeImage(d.container[1])}
                  </li>
                )}
                {d?.gpus && <li>GPUs differ (here: {view.current.gpus?.length ? view.current.gpus.map(g => g.name).join(', ') : 'none'})</li>}
                <li>
                  packages: {changed.length} changed, {added.length} only here, {removed.length} not here
                </li>
              </ul>
              {changed.length + added.length + removed.length > 0 && (
                <details>
                  <summary>Package differences</summary>
                  <PackageTable rows={[...changed, ...added, ...removed]} testid="environment-package-differences" />
                </details>
              )}
            </div>
          )}
        </>
      )}
      <h4>Verifications</h4>
      <button
        className="jp-deepvre-button"
        onClick={props.onVerify}
        disabled={view.verifying?.state === 'running'}
        title="Re-run its notebook with the same parameters, seed and data, and compare the metrics"
      >
        Verify: re-run its lineage
      </button>
      <p data-testid="verify-status" aria-live="polite">
        {view.verifying?.state === 'running'
          ? 'Verifying: the lineage is re-running…'
          : view.verifying?.state === 'failed'
            ? `Verification failed: ${view.verifying.error}`
            : view.verifying?.state === 'done'
              ? `Verified here: ${view.verifying.result}: ${view.verifying.reason}`
              : props.status}
      </p>
      {view.verifications.length ? (
        <ul data-testid="verifications">
          {view.verifications.map(v => (
            <li key={v.id}>
              <span className={`jp-deepvre-badge jp-mod-${v.result.replace(/ /g, '-')}`}>{v.result}</span> by {v.verifier} at{' '}
              {v.time}
              {v.reason ? `: ${v.reason}` : ''}
              {!v.valid && <strong> (signature does not check out: not the marketplace's record)</strong>}
            </li>
          ))}
        </ul>
      ) : (
        <p className="jp-deepvre-empty" data-testid="no-verifications">
          Not verified yet: <code>deepvre market verify NAME:VERSION</code> re-runs its lineage.
        </p>
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
  const [environment, setEnvironment] = useState<IEnvironmentView | null>(null);
  const [reload, setReload] = useState(0);
  const [verifyStatus, setVerifyStatus] = useState('');
  useEffect(() => {
    setEnvironment(null); // another version: its own environment and records
    setVerifyStatus('');
  }, [props.name, version]);
  useEffect(() => {
    const q = new URLSearchParams(version ? { version } : {});
    requestAPI<IEnvironmentView>(`models/${encodeURIComponent(props.name)}/environment?${q}`)
      .then(setEnvironment)
      .catch(() => setEnvironment(null));
  }, [props.name, version, reload]);
  useEffect(() => {
    if (environment?.verifying?.state !== 'running') {
      return;
    }
    const timer = window.setTimeout(() => setReload(n => n + 1), 3000); // until the re-run ends
    return () => window.clearTimeout(timer);
  }, [environment]);
  const verify = (): void => {
    setVerifyStatus('Starting the verification…');
    startVerify(props.name, page?.version ?? version)
      .then(message => {
        setVerifyStatus(message);
        setReload(n => n + 1);
      })
      .catch(error => setVerifyStatus(`Could not start: ${(error as Error).message}`));
  };
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
          {environment && (
            <span
              className={`jp-deepvre-badge jp-mod-${environment.badge.replace(/ /g, '-')}`}
              data-testid="verification-badge"
              title="The latest signed verification: `deepvre market verify` re-ran the lineage"
            >
              {environment.badge}
            </span>
          )}
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
          <Environment view={environment} onVerify={verify} status={verifyStatus} />
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
