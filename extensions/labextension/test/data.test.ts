import { APIError, fetchJSON, ILoadState, Loader, trustRequest } from '../src/data';

type Models = { models: string[] };

/** A fetch that answers each URL from ``routes`` (status, body); rejects unknown URLs like a dead network. */
function mockFetch(routes: Record<string, [number, string]>) {
  return jest.fn(async (url: string, _init?: RequestInit) => {
    if (!(url in routes)) {
      throw new TypeError('Failed to fetch');
    }
    const [status, body] = routes[url];
    return new Response(body, { status, statusText: status === 200 ? 'OK' : 'Conflict' });
  });
}

/** A loader of model searches that records every state it reports. */
function searchLoader() {
  const seen: ILoadState<Models>[] = [];
  const loader = new Loader<Models>(s => seen.push(s), data => data.models.length === 0);
  return { loader, seen, phases: () => seen.map(s => s.phase) };
}

const count = (data: Models) => `${data.models.length} models`;

describe('fetchJSON', () => {
  it('sends a JSON body and returns the JSON answer', async () => {
    const fetch = mockFetch({ '/runs': [201, '{"id": "r1"}'] });
    await expect(fetchJSON(fetch, '/runs', { method: 'POST' }, { epochs: 2 })).resolves.toEqual({ id: 'r1' });
    const init = fetch.mock.calls[0][1]!;
    expect(init.method).toBe('POST');
    expect(init.body).toBe('{"epochs":2}');
    expect(init.headers).toEqual({ 'Content-Type': 'application/json' });
  });
  it("throws the server's message, or the status when there is none", async () => {
    const fetch = mockFetch({
      '/taken': [409, '{"message": "\'a.ipynb\' already exists; choose another name"}'],
      '/html': [409, ''],
      '/text': [409, 'proxy error']
    });
    await expect(fetchJSON(fetch, '/taken')).rejects.toThrow("'a.ipynb' already exists; choose another name");
    await expect(fetchJSON(fetch, '/html')).rejects.toThrow('409 Conflict');
    await expect(fetchJSON(fetch, '/text')).rejects.toThrow('proxy error');
  });
});

describe('Loader', () => {
  it('goes loading -> success with the data and its summary', async () => {
    const fetch = mockFetch({ '/models': [200, '{"models": ["colours"]}'] });
    const { loader, seen, phases } = searchLoader();
    const done = loader.load('Searching…', () => fetchJSON<Models>(fetch, '/models'), count);
    expect(loader.busy).toBe(true);
    expect(seen[0]).toEqual({ phase: 'loading', message: 'Searching…' });
    await done;
    expect(phases()).toEqual(['loading', 'success']);
    expect(loader.state).toEqual({ phase: 'success', message: '1 models', data: { models: ['colours'] } });
    expect(loader.busy).toBe(false);
  });
  it('goes loading -> empty when nothing matches', async () => {
    const fetch = mockFetch({ '/models': [200, '{"models": []}'] });
    const { loader, phases } = searchLoader();
    await loader.load('Searching…', () => fetchJSON<Models>(fetch, '/models'), count);
    expect(phases()).toEqual(['loading', 'empty']);
    expect(loader.state.message).toBe('0 models');
  });
  it("goes loading -> error with the server's message, and the network's", async () => {
    const fetch = mockFetch({ '/models': [503, '{"message": "not available: the model marketplace"}'] });
    const { loader, seen, phases } = searchLoader();
    await loader.load('Searching…', () => fetchJSON<Models>(fetch, '/models'));
    await loader.load('Searching…', () => fetchJSON<Models>(fetch, '/elsewhere'));
    expect(phases()).toEqual(['loading', 'error', 'loading', 'error']);
    expect(seen[1].message).toBe('not available: the model marketplace');
    expect(seen[3].message).toBe('Failed to fetch');
    expect(loader.busy).toBe(false);
  });
  it('drops an answer that arrives after a newer request started', async () => {
    let answerOld: (r: Response) => void = () => undefined;
    const fetch = jest.fn((url: string) =>
      url === '/old'
        ? new Promise<Response>(resolve => (answerOld = resolve))
        : Promise.resolve(new Response('{"models": ["new"]}'))
    );
    const { loader, phases } = searchLoader();
    const old = loader.load('Searching…', () => fetchJSON<Models>(fetch, '/old'));
    await loader.load('Searching…', () => fetchJSON<Models>(fetch, '/new'));
    answerOld(new Response('{"models": ["old"]}'));
    await old;
    expect(phases()).toEqual(['loading', 'loading', 'success']);
    expect(loader.state.data).toEqual({ models: ['new'] });
  });
});

describe('trustRequest', () => {
  const provenance = {
    message: "colours:1.0.0's training notebook was published by 'ana'",
    trust_required: true,
    model: 'colours',
    version: '1.0.0',
    owner: 'ana',
    sha256: 'ab'.repeat(32),
    notebook: 'train.ipynb'
  };
  it("carries a 409's provenance from the server to the confirmation", async () => {
    const fetch = mockFetch({ '/runs': [409, JSON.stringify(provenance)] });
    const error = (await fetchJSON(fetch, '/runs', { method: 'POST' }, {}).catch(e => e)) as APIError;
    expect(error).toBeInstanceOf(APIError);
    expect(error.message).toBe(provenance.message);
    expect(trustRequest(error)).toEqual({
      model: 'colours',
      version: '1.0.0',
      owner: 'ana',
      sha256: 'ab'.repeat(32),
      notebook: 'train.ipynb'
    });
  });
  it('is null for every other error, so those are shown as they are', async () => {
    const fetch = mockFetch({
      '/exists': [409, '{"message": "exists"}'],
      '/bad': [400, JSON.stringify(provenance)],
      '/no-owner': [409, '{"message": "x", "trust_required": true}']
    });
    for (const url of ['/exists', '/bad', '/no-owner']) {
      expect(trustRequest(await fetchJSON(fetch, url).catch(e => e))).toBeNull();
    }
    expect(trustRequest(new Error('network'))).toBeNull();
  });
});
