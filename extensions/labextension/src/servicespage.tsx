/**
 * The served models page in JupyterLab's main area: every model service of this server, its state
 * ("starting" until its API answers, then "ready"; "exited (N)" with the reason), its API and
 * Swagger URLs, the tail of its log, and Stop. Opened from the panel, the command
 * ``deepvre:open-services`` or the link ``lab?deepvre-services``.
 */
import React, { useEffect, useState } from 'react';

import { requestAPI } from './api';
import { formatDuration } from './format';
import { busy, StatusLine, useAction } from './panel';
import { ServiceUrls } from './servicelinks';

export interface IService {
  ref: string;
  id: number;
  model: string;
  version: string;
  state: string;
  started: number;
  ready_at: number | null;
  url: string;
  swagger: string;
  error: string;
  try_url?: string;
  try_error?: string;
  log?: string;
}

const BADGES: Record<string, string> = { ready: 'done', starting: 'running', stopped: 'cancelled' };

function ServiceRow(props: { service: IService; onChanged: () => void }): JSX.Element {
  const { service } = props;
  const [log, setLog] = useState<string | null>(null);
  const [status, act] = useAction();
  const path = `serve/${encodeURIComponent(service.ref)}`;
  const showLog = () =>
    act('Reading the log…', async () => {
      // DEEPaaS colours its log lines: the escape sequences go, the text stays
      setLog(((await requestAPI<IService>(`${path}?tail=100`)).log ?? '').replace(/\x1b\[[0-9;]*[A-Za-z]/g, ''));
      return '';
    });
  const stop = () =>
    act(`Stopping ${service.ref}…`, async () => {
      await requestAPI(path, { method: 'DELETE' });
      props.onChanged();
      return `Stopped ${service.ref}`;
    });
  const live = service.state === 'starting' || service.state === 'ready';
  const now = Date.now() / 1000;
  return (
    <section className="jp-deepvre-service-row" data-testid="served-model" data-state={service.state} aria-busy={busy(status)}>
      <h3>
        {service.model}:{service.version}{' '}
        <span className={`jp-deepvre-badge jp-mod-${BADGES[service.state.split(' ')[0]] ?? 'failed'}`}>{service.state}</span>
      </h3>
      <dl className="jp-deepvre-service">
        <ServiceUrls url={service.url} swagger={service.swagger} tryUrl={service.try_url} />
        <dt>{service.ready_at ? 'Ready for' : 'Started'}</dt>
        <dd>{formatDuration(now - (service.ready_at ?? service.started))}{service.ready_at ? '' : ' ago'}</dd>
      </dl>
      {service.error && <pre className="jp-deepvre-status jp-mod-error">{service.error}</pre>}
      {service.try_error && <p className="jp-deepvre-status jp-mod-error">{service.try_error}</p>}
      <div className="jp-deepvre-actions">
        <button className="jp-mod-styled" onClick={showLog}>
          {log === null ? 'Show log' : 'Refresh log'}
        </button>
        {live && (
          <button className="jp-mod-styled jp-mod-warn" onClick={stop}>
            Stop
          </button>
        )}
      </div>
      <StatusLine status={status} testid="served-model-status" />
      {log !== null && (
        <pre className="jp-deepvre-log" data-testid="served-model-log">
          {log || '(the log is empty)'}
        </pre>
      )}
    </section>
  );
}

export function ServicesPage(): JSX.Element {
  const [services, setServices] = useState<IService[] | null>(null);
  const [tick, setTick] = useState(0);
  const [status, act] = useAction();
  useEffect(() => {
    void act(services === null ? 'Loading the served models…' : '', async () => {
      setServices((await requestAPI<{ services: IService[] }>('serve')).services);
      return '';
    });
  }, [tick]);
  useEffect(() => {
    // refresh while one is starting (it turns ready once its API answers), else now and then
    const starting = (services ?? []).some(s => s.state === 'starting');
    const timer = setTimeout(() => setTick(t => t + 1), starting ? 2000 : 10000);
    return () => clearTimeout(timer);
  }, [services]);
  return (
    <div className="jp-deepvre-page" data-testid="services-page" aria-busy={busy(status)}>
      <h1>Served models</h1>
      <StatusLine status={status} testid="services-status" />
      {services && services.length === 0 && (
        <p className="jp-deepvre-empty">
          No model is served from this server. Open a model (the Models panel) and press Serve: it answers through the
          DEEPaaS API here, behind your login.
        </p>
      )}
      {(services ?? []).map(s => (
        <ServiceRow key={`${s.ref}-${s.id}`} service={s} onChanged={() => setTick(t => t + 1)} />
      ))}
    </div>
  );
}
