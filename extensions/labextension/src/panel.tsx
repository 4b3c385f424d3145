/**
 * The Models panel: search and filter the marketplace, read a model's card and description,
 * then Fine-tune, Run as batch job, Preprocess or Serve it; follow runs and publish their models.
 * "Rank base models for my data" scores the catalog on a preprocessed data set; the fine-tune form
 * then offers that ranking as the base-model choice.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { IRenderMimeRegistry } from '@jupyterlab/rendermime';
import { ReactWidget } from '@jupyterlab/ui-components';
import React, { useCallback, useEffect, useRef, useState } from 'react';

import { post, requestAPI } from './api';
import { IDLE, ILoadState, ITrustRequest, Loader, trustRequest } from './data';
import { emptyMessage, facetOptions, IFacets, ISeed } from './facets';
import { IPreprocessJob } from './jobs';
import { Markdown } from './markdown';
import { PreprocessJobView, usePolledJob } from './preprocess';
import { ClusterChoices, RankForm } from './rankform';
import { baseChoices, IRankingJob, latestRanking } from './rankings';
import { ServiceUrls } from './servicelinks';
import {
  changedValues,
  displayValue,
  fieldErrors,
  formatMetrics,
  IFilters,
  IModelCard,
  IModelDetails,
  IParameter,
  inputKind,
  IRun,
  isActive,
  isInternal,
  lineageText,
  progressText,
  searchQuery
} from './model';

export interface IPanelOptions {
  rendermime: IRenderMimeRegistry;
  openPath: (path: string) => void;
  /** Open the model page (main area); absent: no page links. */
  openModel?: (name: string, version: string) => void;
  /** Open the run page (main area). */
  openRun?: (id: string) => void;
  /** Open a preprocessing job's page (main area). */
  openJob?: (id: string) => void;
  /** Open the served models page (main area). */
  openServices?: () => void;
  /** Open the runs page (main area): the runs ``ids`` side by side, or the sweep ``sweep``'s table. */
  compareRuns?: (ids: string[], sweep?: string) => void;
}

export type Status = ILoadState<string>;

/** An action's state: loading text, success text or the server's message; nothing when idle or empty. */
export function StatusLine({ status, testid }: { status: Status; testid: string }): JSX.Element | null {
  if (!status.message) {
    return null;
  }
  return (
    <div
      className={`jp-deepvre-status jp-mod-${status.phase}`}
      role={status.phase === 'error' ? 'alert' : 'status'}
      data-testid={testid}
    >
      {status.message}
    </div>
  );
}

/**
 * Ask before running a notebook another user published (as Jupyter asks before trusting a
 * notebook): who published it, which version and the sha256 of exactly what would run.
 */
export async function confirmTrust(trust: ITrustRequest): Promise<boolean> {
  const body = (
    <div className="jp-deepvre-trust" data-testid="trust-dialog">
      <p>
        The training notebook of <b>{trust.model}</b> {trust.version} was published by <b>{trust.owner}</b>. Running it
        runs their code in your account, with your files and tokens.
      </p>
      <p>Read it first (Fine-tune writes a copy you can open). The run uses exactly this notebook:</p>
      <p>
        <code>{trust.notebook || 'notebook'}</code> sha256 <code data-testid="trust-sha256">{trust.sha256}</code>
      </p>
    </div>
  );
  const result = await showDialog({
    title: `Run ${trust.owner}'s notebook?`,
    body,
    buttons: [Dialog.cancelButton({ label: 'Cancel' }), Dialog.warnButton({ label: 'Run it' })],
    defaultButton: 0 // Enter (say, held from the form) cancels: running needs a deliberate click
  });
  return result.button.accept;
}

/** Run ``action`` through a Loader: loading, then its success text or the server's error message. */
export function useAction(): [Status, (loading: string, action: () => Promise<string>) => Promise<void>] {
  const [status, setStatus] = useState<Status>(IDLE);
  const [loader] = useState(() => new Loader<string>(setStatus));
  const run = useCallback(
    (loading: string, action: () => Promise<string>) => loader.load(loading, action, text => text),
    [loader]
  );
  return [status, run];
}

/** ``aria-busy`` of a region: true while one of its requests is in flight (tests wait on it). */
export function busy(...states: Status[]): boolean {
  return states.some(s => s.phase === 'loading');
}

function versionOf(v: unknown): string {
  if (typeof v === 'string') {
    return v;
  }
  return String((v as Record<string, unknown>)?.version ?? '');
}

function Card(props: { model: IModelCard; onOpen: () => void; onPage?: () => void; focus: boolean }): JSX.Element {
  const { model } = props;
  const metrics = formatMetrics(model.metrics);
  const lineage = lineageText(model.lineage);
  const ref = useRef<HTMLButtonElement>(null);
  useEffect(() => {
    if (props.focus) {
      ref.current?.focus(); // back from its details: focus returns to the card that opened them
    }
  }, [props.focus]);
  return (
    <li>
      <button
        ref={ref}
        className="jp-deepvre-card"
        onClick={props.onOpen}
        aria-label={`Open model ${model.title || model.name}`}
      >
        <div className="jp-deepvre-card-title">{model.title || model.name}</div>
        <div className="jp-deepvre-meta">
          <code>
            {model.name}:{model.version}
          </code>
        </div>
        <div>{model.summary}</div>
        <div className="jp-deepvre-meta">
          {[model.use_case, model.version && `v${model.version}`, model.owner && `by ${model.owner}`]
            .filter(Boolean)
            .join(' · ')}
        </div>
        {metrics && <div className="jp-deepvre-meta">{metrics}</div>}
        {lineage && <div className="jp-deepvre-meta">{lineage}</div>}
        <div>
          {model.tags.map(t => (
            <span className="jp-deepvre-tag" key={t}>
              {t}
            </span>
          ))}
        </div>
      </button>
      {props.onPage && (
        <button
          className="jp-deepvre-link jp-deepvre-card-page"
          onClick={props.onPage}
          aria-label={`Open the page of ${model.name}:${model.version}`}
        >
          Open page ↗
        </button>
      )}
    </li>
  );
}

function ParameterForm(props: {
  params: IParameter[];
  submitLabel: string;
  /** The notebook path the server picks when the user gives none; no path field when undefined. */
  defaultPath?: string;
  /** Send the form; resolves to the success text, rejects with the server's message. */
  onSubmit: (values: Record<string, unknown>, path: string) => Promise<string>;
  /** The user's latest ranking of base models: offered for a ``base_model`` parameter, best first. */
  ranking?: IRankingJob | null;
}): JSX.Element {
  const [texts, setTexts] = useState<Record<string, string>>({});
  const choices = baseChoices(props.ranking?.result);
  const hasVersion = props.params.some(p => p.name === 'base_version');
  const chosen = choices.findIndex(
    c => c.name === texts['base_model'] && (!hasVersion || c.version === texts['base_version'])
  );
  const [path, setPath] = useState('');
  const [status, act] = useAction();
  const errors = fieldErrors(props.params, texts);
  const submit = (event: React.FormEvent) => {
    event.preventDefault();
    void act('Sending…', async () => props.onSubmit(changedValues(props.params, texts), path.trim()));
  };
  /** One parameter's typed input (number, checkbox, choice or text), with its error beneath it. */
  const field = (p: IParameter) => {
    const text = texts[p.name] ?? displayValue(p);
    const set = (value: string) => setTexts({ ...texts, [p.name]: value });
    const error = errors[p.name];
    const common = {
      name: p.name,
      'aria-invalid': Boolean(error),
      'aria-describedby': error ? `deepvre-error-${p.name}` : undefined
    };
    const kind = inputKind(p);
    return (
      <label key={p.name}>
        <span>
          {p.name} <small>({p.type})</small>
        </span>
        {kind === 'checkbox' ? (
          <input type="checkbox" {...common} checked={text === 'true'} onChange={e => set(e.target.checked ? 'true' : 'false')} />
        ) : kind === 'select' ? (
          <select {...common} value={text} onChange={e => set(e.target.value)}>
            {(p.choices ?? []).map(c => (
              <option key={String(c)} value={String(c)}>
                {String(c)}
              </option>
            ))}
          </select>
        ) : kind === 'number' ? (
          <input type="number" step={p.kind === 'int' ? 1 : 'any'} {...common} value={text} onChange={e => set(e.target.value)} />
        ) : (
          <input type="text" {...common} value={text} onChange={e => set(e.target.value)} />
        )}
        {error && (
          <small className="jp-deepvre-field-error" id={`deepvre-error-${p.name}`} role="alert">
            {error}
          </small>
        )}
        {p.help && <small>{p.help}</small>}
        {p.name === 'base_model' && choices.length > 0 && (
          <select
            aria-label="Ranked base models"
            data-testid="ranked-bases"
            value={chosen < 0 ? '' : String(chosen)}
            onChange={e => {
              const c = choices[Number(e.target.value)];
              if (c) {
                setTexts({ ...texts, base_model: c.name, ...(hasVersion ? { base_version: c.version } : {}) });
              }
            }}
          >
            <option value="">ranked on {props.ranking?.data}: choose…</option>
            {choices.map((c, i) => (
              <option key={`${c.name}:${c.version}`} value={String(i)}>
                {c.label}
              </option>
            ))}
          </select>
        )}
      </label>
    );
  };
  return (
    <form className="jp-deepvre-form" onSubmit={submit} aria-label="Training parameters" aria-busy={busy(status)}>
      {props.defaultPath !== undefined && (
        <label>
          <span>Notebook path (in your workspace)</span>
          <input
            type="text"
            name="notebook-path"
            value={path}
            placeholder={props.defaultPath}
            onChange={e => setPath(e.target.value)}
          />
          <small>Leave empty for {props.defaultPath}</small>
        </label>
      )}
      {props.params.length === 0 && (
        <p className="jp-deepvre-empty">This notebook declares no parameters (no cell tagged "parameters").</p>
      )}
      {props.params.filter(p => !isInternal(p)).map(field)}
      {props.params.some(isInternal) && (
        <details className="jp-deepvre-internal">
          <summary>Internal parameters (the runner sets them; change only if you know why)</summary>
          {props.params.filter(isInternal).map(field)}
        </details>
      )}
      <button type="submit" className="jp-mod-styled jp-mod-accept" disabled={busy(status) || Object.keys(errors).length > 0}>
        {props.submitLabel}
      </button>
      <StatusLine status={status} testid="form-status" />
    </form>
  );
}

function PreprocessForm(props: {
  onStarted: (message: string) => void;
  openPath?: (path: string) => void;
  openJob?: (id: string) => void;
}): JSX.Element {
  const [kinds, setKinds] = useState<string[]>([]);
  const [kind, setKind] = useState('');
  const [input, setInput] = useState('');
  const [cluster, setCluster] = useState('local');
  const [clusters, setClusters] = useState<string[]>(['local']);
  const [address, setAddress] = useState('');
  const [job, setJob] = useState<IPreprocessJob | null>(null);
  const [status, act] = useAction();
  useEffect(() => {
    void act('Loading pipelines…', async () => {
      const data = await requestAPI<{ kinds: string[]; clusters?: string[] }>('preprocess');
      setKinds(data.kinds);
      setKind(data.kinds[0] ?? '');
      setClusters(data.clusters?.length ? data.clusters : ['local']); // only what can start from this server
      return '';
    });
  }, []);
  usePolledJob(job, setJob);
  const start = (event: React.FormEvent) => {
    event.preventDefault();
    void act('Starting the pipeline…', async () => {
      const started = await post<IPreprocessJob>('preprocess', {
        kind,
        input,
        cluster: cluster === 'address' ? address.trim() : cluster
      });
      setJob(started);
      props.onStarted(`Preprocessing ${input} into ${started.output}`);
      return ''; // the job's own view says how it goes (a failure in red, not under "Started")
    });
  };
  return (
    <form className="jp-deepvre-form" onSubmit={start} aria-label="Preprocess">
      <label>
        Pipeline
        <select value={kind} onChange={e => setKind(e.target.value)}>
          {kinds.map(k => (
            <option key={k}>{k}</option>
          ))}
        </select>
      </label>
      <label>
        Data folder (in your workspace)
        <input type="text" value={input} onChange={e => setInput(e.target.value)} placeholder="data/images" />
      </label>
      <label>
        Cluster
        <select aria-label="Cluster" value={cluster} onChange={e => setCluster(e.target.value)}>
          <ClusterChoices clusters={clusters} />
          <option value="address">a scheduler I started (address)</option>
        </select>
      </label>
      {cluster === 'address' && (
        <label>
          Scheduler address
          <input type="text" value={address} onChange={e => setAddress(e.target.value)} placeholder="tls://10.0.0.5:8786" />
        </label>
      )}
      <button
        type="submit"
        className="jp-mod-styled jp-mod-accept"
        disabled={!kind || !input || (cluster === 'address' && !address.trim())}
      >
        Start preprocessing
      </button>
      <StatusLine status={status} testid="preprocess-status" />
      {job && <PreprocessJobView job={job} openPath={props.openPath} openPage={props.openJob} />}
    </form>
  );
}

/**
 * A model's actions: Fine-tune, Run as batch job, Preprocess, Serve, with their forms and states.
 * The sidebar's details and the model page both show them; ``onBusy`` reports requests in flight.
 */
export function ModelActions(props: {
  details: IModelDetails;
  version: string;
  options: IPanelOptions;
  onRunStarted: () => void;
  onBusy?: (busy: boolean) => void;
}): JSX.Element {
  const { details, options, version } = props;
  const [mode, setMode] = useState<'' | 'finetune' | 'run' | 'preprocess' | 'serve'>('');
  const [params, setParams] = useState<IParameter[] | null>(null);
  const [defaultPath, setDefaultPath] = useState('');
  const [service, setService] = useState<any>(null);
  const [ranking, setRanking] = useState<IRankingJob | null>(null);
  const [status, act] = useAction();
  const [stopStatus, stopAct] = useAction();
  const name = encodeURIComponent(details.name);

  const openForm = (next: 'finetune' | 'run') => {
    setMode(next);
    setParams(null);
    void act('Reading the training notebook’s parameters…', async () => {
      const data = await requestAPI<{ parameters: IParameter[]; path: string }>(
        `models/${name}/parameters?${new URLSearchParams({ version })}`
      );
      setParams(data.parameters);
      setDefaultPath(data.path);
      if (data.parameters.some(p => p.name === 'base_model')) {
        // the user's latest ranking orders the base-model choice (none yet: the plain field)
        const rankings = await requestAPI<{ jobs: IRankingJob[] }>('rankings');
        setRanking(latestRanking(rankings.jobs));
      }
      return `${data.parameters.length} parameters`;
    });
  };
  const fineTune = async (parameters: Record<string, unknown>, path: string) => {
    const data = await post<{ path: string }>(`models/${name}/finetune`, { version, parameters, path });
    options.openPath(data.path);
    return `Wrote ${data.path}`;
  };
  const runBatch = async (parameters: Record<string, unknown>) => {
    const body = { model: details.name, version, parameters };
    let run: IRun;
    try {
      run = await post<IRun>('runs', body);
    } catch (error) {
      // another user's notebook: show who published it and its sha256, run it only if confirmed
      const trust = trustRequest(error);
      if (!trust) {
        throw error;
      }
      if (!(await confirmTrust(trust))) {
        return `Not started: ${trust.owner}'s notebook was not confirmed.`;
      }
      run = await post<IRun>('runs', { ...body, trust: { owner: trust.owner, sha256: trust.sha256 } });
    }
    props.onRunStarted();
    options.openRun?.(run.id);
    return `Started run ${run.id}; it goes on if you close the browser.`;
  };
  const serve = () => {
    setMode('serve');
    void act('Starting the DEEPaaS service…', async () => {
      const svc = await post<any>('serve', { model: details.name, version });
      setService(svc);
      return `Service ${svc.state}`;
    });
  };
  const stop = () =>
    stopAct(`Stopping ${service.ref}…`, async () => {
      const svc = await requestAPI<any>(`serve/${encodeURIComponent(service.ref)}`, { method: 'DELETE' });
      setService(svc);
      return `Stopped ${svc.ref}`;
    });
  const isBusy = busy(status, stopStatus);
  useEffect(() => props.onBusy?.(isBusy), [isBusy]);
  return (
    <>
      <div className="jp-deepvre-actions">
        <button className="jp-mod-styled" onClick={() => openForm('finetune')} disabled={!details.trainable}>
          Fine-tune
        </button>
        <button className="jp-mod-styled" onClick={() => openForm('run')} disabled={!details.trainable}>
          Run as batch job
        </button>
        <button className="jp-mod-styled" onClick={() => setMode('preprocess')}>
          Preprocess
        </button>
        <button className="jp-mod-styled" onClick={serve}>
          Serve
        </button>
      </div>
      {!details.trainable && <p className="jp-deepvre-empty">This model has no training notebook to fine-tune.</p>}
      <StatusLine status={status} testid="action-status" />
      {(mode === 'finetune' || mode === 'run') && params && (
        <ParameterForm
          key={mode}
          params={params}
          submitLabel={mode === 'finetune' ? 'Write notebook and open' : 'Start batch run'}
          defaultPath={mode === 'finetune' ? defaultPath : undefined}
          onSubmit={mode === 'finetune' ? fineTune : runBatch}
          ranking={ranking}
        />
      )}
      {mode === 'preprocess' && <PreprocessForm onStarted={() => undefined} openPath={options.openPath} openJob={options.openJob} />}
      {mode === 'serve' && service && (
        <dl className="jp-deepvre-service" data-testid="service" data-state={service.state}>
          <ServiceUrls url={service.url} swagger={service.swagger} />
          {service.error && <pre>{service.error}</pre>}
        </dl>
      )}
      {mode === 'serve' && service && options.openServices && (
        <button className="jp-mod-styled" onClick={options.openServices}>
          All services: logs and stop
        </button>
      )}
      {mode === 'serve' && service?.state === 'ready' && (
        <button className="jp-mod-styled jp-mod-warn" onClick={stop} disabled={busy(stopStatus)}>
          Stop service
        </button>
      )}
      <StatusLine status={stopStatus} testid="stop-status" />
    </>
  );
}

function Details(props: {
  details: IModelDetails;
  options: IPanelOptions;
  onBack: () => void;
  onRunStarted: () => void;
}): JSX.Element {
  const { details, options } = props;
  const versions = (details.versions ?? []).map(versionOf).filter(Boolean);
  const [version, setVersion] = useState(details.version);
  const [actionsBusy, setActionsBusy] = useState(false);
  const heading = useRef<HTMLHeadingElement>(null);
  useEffect(() => heading.current?.focus(), [details.name]);
  const escape = (event: React.KeyboardEvent) => {
    if (event.key === 'Escape') {
      event.stopPropagation();
      props.onBack();
    }
  };
  return (
    <section
      aria-label={`Model ${details.title || details.name}`}
      aria-busy={actionsBusy}
      onKeyDown={escape}
      className="jp-deepvre-details"
    >
      <button className="jp-deepvre-link" onClick={props.onBack}>
        ← All models
      </button>
      <h2 data-testid="model-title" tabIndex={-1} ref={heading}>
        {details.title || details.name}
      </h2>
      <div className="jp-deepvre-meta">
        <code>
          {details.name}:{version}
        </code>
        {' · '}
        {[details.use_case, details.owner && `by ${details.owner}`, lineageText(details.lineage)]
          .filter(Boolean)
          .join(' · ')}
      </div>
      {options.openModel && (
        <button className="jp-deepvre-link" onClick={() => options.openModel!(details.name, version)}>
          Open model page
        </button>
      )}
      {formatMetrics(details.metrics) && <div className="jp-deepvre-meta">{formatMetrics(details.metrics)}</div>}
      <label>
        Version{' '}
        <select value={version} onChange={e => setVersion(e.target.value)}>
          {(versions.length ? versions : [details.version]).map(v => (
            <option key={v}>{v}</option>
          ))}
        </select>
      </label>
      <h3>Description</h3>
      <Markdown source={details.description || details.summary || ''} rendermime={options.rendermime} />
      <ModelActions
        details={details}
        version={version}
        options={options}
        onRunStarted={props.onRunStarted}
        onBusy={setActionsBusy}
      />
    </section>
  );
}

function Runs(props: { options: IPanelOptions; refresh: number }): JSX.Element {
  const [runs, setRuns] = useState<IRun[] | null>(null);
  const [error, setError] = useState('');
  const [names, setNames] = useState<Record<string, string>>({});
  const [selected, setSelected] = useState<string[]>([]); // to compare on the runs page
  const [status, act] = useAction();
  const [tick, setTick] = useState(0);
  const sweeps = [...new Set((runs ?? []).map(r => r.sweep).filter((s): s is string => !!s))];
  const compare = props.options.compareRuns;
  useEffect(() => {
    requestAPI<{ runs: IRun[] }>('runs')
      .then(data => {
        setRuns(data.runs.slice().reverse());
        setError('');
      })
      .catch(err => setError(err.message));
  }, [props.refresh, tick]);
  useEffect(() => {
    if (!runs?.some(isActive)) {
      return;
    }
    const timer = setTimeout(() => setTick(t => t + 1), 2000);
    return () => clearTimeout(timer);
  }, [runs]);
  const cancel = (run: IRun) =>
    act(`Cancelling ${run.id}…`, async () => {
      await requestAPI(`runs/${encodeURIComponent(run.id)}`, { method: 'DELETE' });
      setTick(t => t + 1);
      return `Cancelled ${run.id}`;
    });
  const publish = (run: IRun) =>
    act(`Publishing ${run.id}…`, async () => {
      const card = await post<IModelCard>(`runs/${encodeURIComponent(run.id)}/publish`, {
        name: names[run.id]
      });
      return `Published ${card.name} ${card.version}`;
    });
  return (
    <section aria-label="Runs" aria-busy={busy(status)}>
      <h3>Runs</h3>
      {error && (
        <div className="jp-deepvre-status jp-mod-error" role="alert">
          {error}
        </div>
      )}
      <StatusLine status={status} testid="runs-status" />
      {runs && runs.length === 0 && (
        <p className="jp-deepvre-empty">No runs yet. Open a model and choose “Run as batch job”.</p>
      )}
      {compare && (runs?.length ?? 0) > 1 && (
        <div className="jp-deepvre-actions" aria-label="Compare runs">
          <button className="jp-mod-styled" disabled={selected.length < 2} onClick={() => compare(selected)}>
            Compare {selected.length > 1 ? `${selected.length} runs` : '(select runs)'}
          </button>
          {sweeps.map(sweep => (
            <button key={sweep} className="jp-deepvre-link" onClick={() => compare([], sweep)} title={`Open the table of ${sweep}`}>
              Sweep {sweep} ({(runs ?? []).filter(r => r.sweep === sweep).length} runs)
            </button>
          ))}
        </div>
      )}
      <ul className="jp-deepvre-runs">
        {(runs ?? []).map(run => (
          <li className="jp-deepvre-run" key={run.id} data-run-id={run.id} data-state={run.state}>
            <div>
              {compare && (
                <input
                  type="checkbox"
                  aria-label={`Select run ${run.id} to compare`}
                  checked={selected.includes(run.id)}
                  onChange={e =>
                    setSelected(e.target.checked ? [...selected, run.id] : selected.filter(id => id !== run.id))
                  }
                />
              )}
              <strong>{run.id}</strong> <span className="jp-deepvre-run-state">{progressText(run)}</span>
            </div>
            {run.waiting && <div className="jp-deepvre-status" data-testid="run-waiting">{run.waiting}</div>}
            {run.error && <div className="jp-deepvre-status jp-mod-error">{run.error}</div>}
            {formatMetrics(run.metrics) && <div className="jp-deepvre-meta">{formatMetrics(run.metrics)}</div>}
            <div className="jp-deepvre-actions">
              {props.options.openRun && (
                <button className="jp-deepvre-link" onClick={() => props.options.openRun!(run.id)}>
                  Run page
                </button>
              )}
              {run.output && (
                <button className="jp-deepvre-link" onClick={() => props.options.openPath(run.output!)}>
                  Output notebook
                </button>
              )}
              {run.metrics_file && (
                <button className="jp-deepvre-link" onClick={() => props.options.openPath(run.metrics_file!)}>
                  Metrics
                </button>
              )}
              {isActive(run) && (
                <button className="jp-mod-styled" onClick={() => cancel(run)}>
                  Cancel
                </button>
              )}
              {run.state === 'done' && (
                <>
                  <input
                    type="text"
                    aria-label={`Name to publish run ${run.id} as`}
                    placeholder="model name"
                    value={names[run.id] ?? ''}
                    onChange={e => setNames({ ...names, [run.id]: e.target.value })}
                  />
                  <button className="jp-mod-styled" onClick={() => publish(run)} disabled={!names[run.id]}>
                    Publish
                  </button>
                </>
              )}
            </div>
          </li>
        ))}
      </ul>
    </section>
  );
}

function Browser({ options }: { options: IPanelOptions }): JSX.Element {
  const [filters, setFilters] = useState<IFilters>({ q: '', use_case: '', task: '', category: '', trainable: false });
  const [models, setModels] = useState<IModelCard[] | null>(null);
  const [facets, setFacets] = useState<IFacets | null>(null);
  const [seed, setSeed] = useState<ISeed | null>(null);
  const [details, setDetails] = useState<IModelDetails | null>(null);
  const [opened, setOpened] = useState(''); // the card whose details were open last
  const [runsRefresh, setRunsRefresh] = useState(0);
  const [ranking, setRanking] = useState(false);
  const [status, act] = useAction();
  const latestSearch = useRef(0);
  const search = (event?: React.FormEvent) => {
    event?.preventDefault();
    setOpened('');
    const id = ++latestSearch.current;
    void act('Searching…', async () => {
      const data = await requestAPI<{ models: IModelCard[]; facets?: IFacets; seed?: ISeed }>(
        `models?${searchQuery(filters)}`
      );
      if (id === latestSearch.current) {
        setModels(data.models); // an older search answering late never replaces a newer one's cards
        setFacets(data.facets ?? null);
        setSeed(data.seed ?? null);
      }
      return `${data.models.length} model${data.models.length === 1 ? '' : 's'}`;
    });
  };
  useEffect(() => search(), []);
  const open = (model: IModelCard) =>
    act(`Opening ${model.name}…`, async () => {
      const params = new URLSearchParams(model.version ? { version: model.version } : {});
      setDetails(await requestAPI<IModelDetails>(`models/${encodeURIComponent(model.name)}?${params}`));
      setOpened(`${model.name}@${model.version}`);
      return '';
    });
  const set = (key: keyof IFilters) => (e: React.ChangeEvent<HTMLInputElement | HTMLSelectElement>) =>
    setFilters({ ...filters, [key]: key === 'trainable' ? (e.target as HTMLInputElement).checked : e.target.value });
  // the filters offer what the catalog has (its facets), with how many models have each value
  const facetSelect = (key: 'use_case' | 'task' | 'category', facet: string, label: string) => (
    <label>
      {label}{' '}
      <select aria-label={label} value={filters[key]} onChange={set(key)}>
        {facetOptions(facets, facet, filters[key]).map(o => (
          <option key={o.value} value={o.value}>
            {o.label}
          </option>
        ))}
      </select>
    </label>
  );
  const filtered = !!(filters.q.trim() || filters.use_case || filters.task || filters.category || filters.trainable);
  return (
    <>
      <h2>Models</h2>
      {options.openServices && (
        <button className="jp-mod-styled" onClick={options.openServices}>
          Model services
        </button>
      )}
      <button
        className="jp-mod-styled"
        style={{ height: 'auto', whiteSpace: 'normal' }}
        aria-expanded={ranking}
        onClick={() => setRanking(!ranking)}
      >
        Rank base models for my data
      </button>
      {ranking && <RankForm />}
      {details ? (
        <Details
          details={details}
          options={options}
          onBack={() => setDetails(null)}
          onRunStarted={() => setRunsRefresh(n => n + 1)}
        />
      ) : (
        <section aria-label="Model list" aria-busy={busy(status)}>
          <form className="jp-deepvre-search" role="search" onSubmit={search}>
            <input type="search" aria-label="Search models" placeholder="Search models" value={filters.q} onChange={set('q')} />
            <button type="submit" className="jp-mod-styled">
              Search
            </button>
            <div className="jp-deepvre-filters">
              {facetSelect('use_case', 'use_case', 'Use case')}
              {facetSelect('task', 'tasks', 'Task')}
              {facetSelect('category', 'categories', 'Category')}
              <label>
                <input type="checkbox" checked={filters.trainable} onChange={set('trainable')} /> trainable
              </label>
            </div>
          </form>
          <StatusLine status={status} testid="search-status" />
          {models && models.length === 0 && (
            <p className="jp-deepvre-empty" data-testid="search-empty">
              {emptyMessage(facets, filtered, seed)}
            </p>
          )}
          <ul className="jp-deepvre-cards">
            {(models ?? []).map(m => (
              <Card
                key={`${m.name}@${m.version}`}
                model={m}
                onOpen={() => open(m)}
                onPage={options.openModel && (() => options.openModel!(m.name, m.version))}
                focus={opened === `${m.name}@${m.version}`}
              />
            ))}
          </ul>
        </section>
      )}
      <Runs options={options} refresh={runsRefresh} />
    </>
  );
}

export class ModelsPanel extends ReactWidget {
  constructor(private options: IPanelOptions) {
    super();
    this.addClass('jp-deepvre-panel');
  }

  render(): JSX.Element {
    return <Browser options={this.options} />;
  }
}
