/** Calls to the deepvre server extension (/deepvre/api/...), with Jupyter's auth and xsrf. */
import { URLExt } from '@jupyterlab/coreutils';
import { ServerConnection } from '@jupyterlab/services';

import { fetchJSON } from './data';

/** Request ``endpoint`` and return its JSON; an Error carrying the server's message otherwise. */
export function requestAPI<T>(endpoint: string, init: RequestInit = {}, body?: unknown): Promise<T> {
  const settings = ServerConnection.makeSettings();
  const url = URLExt.join(settings.baseUrl, 'deepvre', 'api', endpoint);
  const fetch = async (url: string, init?: RequestInit) => {
    try {
      return await ServerConnection.makeRequest(url, init ?? {}, settings);
    } catch (error) {
      throw new ServerConnection.NetworkError(error as TypeError);
    }
  };
  return fetchJSON<T>(fetch, url, init, body);
}

export function post<T>(endpoint: string, body: unknown): Promise<T> {
  return requestAPI<T>(endpoint, { method: 'POST' }, body);
}
