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
    const seeding = { state: 'seeding' as const, message: 'seeding base model mobilenet-v2-imagenet 1.0.0' };
    expect(emptyMessage({ owner: {} }, false, seeding)).toContain('publishing its base model now');
    expect(emptyMessage(facets, true, seeding)).toContain('Clear the filters'); // models exist: not about the seed
    expect(emptyMessage({ owner: {} }, false, { state: 'failed', message: 'no TensorFlow' })).toContain('no TensorFlow');
  });
});
