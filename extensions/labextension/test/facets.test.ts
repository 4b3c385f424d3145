import { catalogEmpty, emptyMessage, facetOptions } from '../src/facets';

const facets = {
  use_case: { biology: 2, base: 1 },
  tasks: {},
  owner: { deepvre: 1, ana: 2 }
};

describe('facetOptions', () => {
  it('offers any, then the values with their counts in the order given', () => {
    expect(facetOptions(facets, 'use_case')).toEqual([
      { value: '', label: 'any' },
      { value: 'biology', label: 'biology (2)' },
      { value: 'base', label: 'base (1)' }
    ]);
    expect(facetOptions(facets, 'tasks')).toEqual([{ value: '', label: 'any' }]);
    expect(facetOptions(null, 'use_case')).toEqual([{ value: '', label: 'any' }]);
  });
  it('keeps a chosen value the catalog no longer has', () => {
    expect(facetOptions(facets, 'use_case', 'satellite').pop()).toEqual({ value: 'satellite', label: 'satellite (0)' });
  });
});

describe('empty states', () => {
  it('tells an empty catalog from filters that match nothing', () => {
    expect(catalogEmpty({ owner: {} })).toBe(true);
    expect(catalogEmpty(facets)).toBe(false);
    expect(catalogEmpty(null)).toBe(false); // not known yet
    expect(emptyMessage({ owner: {} }, false)).toContain('publishes the ImageNet base model');
    expect(emptyMessage(facets, true)).toContain('Clear the filters');
  });
});
