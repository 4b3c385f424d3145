/**
 * The panel's data layer: JSON requests and their observable states (loading, success, empty,
 * error). No JupyterLab imports, so the unit tests run it in plain Node with a mocked fetch.
 */

export type Fetch = (url: string, init?: RequestInit) => Promise<Response>;

/** Request ``url`` and return its JSON; an Error carrying the server's message otherwise. */
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
    throw new Error(data.message || `${response.status} ${response.statusText}`);
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
