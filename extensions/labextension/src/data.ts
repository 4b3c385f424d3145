/**
 * The panel's data layer: JSON requests and their observable states (loading, success, empty,
 * error). No JupyterLab imports, so the unit tests run it in plain Node with a mocked fetch.
 */

export type Fetch = (url: string, init?: RequestInit) => Promise<Response>;

/** The server said no: its message, HTTP status and whole JSON answer (a 409's details, say). */
export class APIError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly data: Record<string, any>
  ) {
    super(message);
  }
}

/** What a run of another user's notebook needs confirmed (the server's 409 ``trust_required``). */
export interface ITrustRequest {
  model: string;
  version: string;
  owner: string;
  sha256: string;
  notebook?: string;
}

/** The trust request inside ``error``, or null when it is some other error. */
export function trustRequest(error: unknown): ITrustRequest | null {
  if (!(error instanceof APIError) || error.status !== 409 || !error.data.trust_required) {
    return null;
  }
  const { model, version, owner, sha256, notebook } = error.data;
  return typeof owner === 'string' && typeof sha256 === 'string' ? { model, version, owner, sha256, notebook } : null;
}

/** Request ``url`` and return its JSON; an :class:`APIError` carrying the server's message otherwise. */
export async function fetchJSON<T>(fetch: Fetch, url: string, init: RequestInit = {}, body?: unknown): Promise<T> {
  if (body !== undefined) {
    init = { ...init, body: JSON.stringify(body), headers: { 'Content-Type': 'application/json' } };
  }
  const response = await fetch(url, init);
  const text = await response.text();
  let data: any = {};
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    data = { message: text };
  }
  if (!response.ok) {
    throw new APIError(data.message || `${response.status} ${response.statusText}`, response.status, data);
  }
  return data as T;
}

export type Phase = 'idle' | 'loading' | 'success' | 'empty' | 'error';

export interface ILoadState<T> {
  phase: Phase;
  /** What the user reads: the loading text, the result's summary or the server's error message. */
  message: string;
  data?: T;
}

export const IDLE: ILoadState<never> = { phase: 'idle', message: '' };

/**
 * One kind of request of the panel (a search, an action). ``load`` moves its state through
 * loading -> success | empty | error and reports each state; a response that arrives after a
 * newer request started is dropped, so a slow old search never overwrites a newer one.
 */
export class Loader<T> {
  state: ILoadState<T> = IDLE;
  private seq = 0;

  constructor(
    private onChange: (state: ILoadState<T>) => void,
    private isEmpty: (data: T) => boolean = () => false
  ) {}

  get busy(): boolean {
    return this.state.phase === 'loading';
  }

  async load(loading: string, request: () => Promise<T>, describe: (data: T) => string = () => ''): Promise<void> {
    const id = ++this.seq;
    this.set({ phase: 'loading', message: loading });
    let next: ILoadState<T>;
    try {
      const data = await request();
      next = { phase: this.isEmpty(data) ? 'empty' : 'success', message: describe(data), data };
    } catch (err) {
      next = { phase: 'error', message: (err as Error).message || String(err) };
    }
    if (id === this.seq) {
      this.set(next);
    }
  }

  private set(state: ILoadState<T>): void {
    this.state = state;
    this.onChange(state);
  }
}
