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

/** The API and Swagger rows of a service's ``<dl>``. */
export function ServiceUrls(props: { url: string; swagger: string }): JSX.Element {
  return (
    <>
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
