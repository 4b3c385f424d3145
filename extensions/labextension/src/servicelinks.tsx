/** A model service's URLs, shown in full (to copy into a client) and opened in a new tab: the
 * sidebar's service and the served models page both show them. */
import React from 'react';

/** A link from the server (dashboard, service): only http(s) or same-origin paths. */
export function safeHref(url: string): string | undefined {
  return /^(https?:\/\/|\/)/.test(url) ? url : undefined;
}

export function ServiceLink({ url }: { url: string }): JSX.Element {
  const href = safeHref(url);
  const full = href ? new URL(href, window.location.href).href : url;
  return href ? (
    <a href={href} target="_blank" rel="noopener noreferrer">
      {full}
    </a>
  ) : (
    <code>{url}</code>
  );
}

/** The API and Swagger rows of a service's ``<dl>``, and its try-it page (the hub's marketplace) when
 * the service is offered there: any hub user who may see the model can try it, without a server. */
export function ServiceUrls(props: { url: string; swagger: string; tryUrl?: string }): JSX.Element {
  const tryHref = props.tryUrl ? safeHref(props.tryUrl) : undefined;
  return (
    <>
      {tryHref && (
        <>
          <dt>Try it</dt>
          <dd>
            <a href={tryHref} target="_blank" rel="noopener noreferrer" data-testid="service-try-it">
              Try it
            </a>{' '}
            (the marketplace's page: any hub user who may see this model can try it)
          </dd>
        </>
      )}
      <dt>API</dt>
      <dd>
        <ServiceLink url={props.url} />
      </dd>
      <dt>Swagger page</dt>
      <dd>
        <ServiceLink url={props.swagger} />
      </dd>
    </>
  );
}
