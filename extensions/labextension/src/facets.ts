/**
 * The search filters' choices, from the marketplace's facets (GET models answers them with the
 * cards), and what an empty list says (pure helpers, tested with jest).
 */

export type IFacets = Record<string, Record<string, number>>;

export interface IFacetOption {
  value: string;
  label: string;
}

/** The choices of one filter: "any", then each value the catalog has with its count, most
 * frequent first; a value chosen earlier that the catalog no longer has stays selectable. */
export function facetOptions(facets: IFacets | null | undefined, facet: string, chosen = ''): IFacetOption[] {
  const values = Object.entries(facets?.[facet] ?? {});
  const options = [{ value: '', label: 'any' }, ...values.map(([value, n]) => ({ value, label: `${value} (${n})` }))];
  if (chosen && !values.some(([value]) => value === chosen)) {
    options.push({ value: chosen, label: `${chosen} (0)` });
  }
  return options;
}

/** Whether the catalog holds no model the user may see (every facet empty). */
export function catalogEmpty(facets: IFacets | null | undefined): boolean {
  return !!facets && Object.values(facets.owner ?? {}).length === 0;
}

export interface ISeed {
  state: 'seeding' | 'done' | 'failed' | 'off';
  message: string;
}

/** What an empty result says: the base model still seeding (or its seed failed), an empty
 * catalog, or filters that match nothing. */
export function emptyMessage(facets: IFacets | null | undefined, filtered: boolean, seed?: ISeed | null): string {
  if (catalogEmpty(facets) && seed?.state === 'seeding') {
    return `The hub is publishing its base model now: ${seed.message}. Search again in a minute.`;
  }
  if (catalogEmpty(facets) && seed?.state === 'failed') {
    return `The marketplace has no model you can see: ${seed.message}. Tell your hub's admin.`;
  }
  if (catalogEmpty(facets)) {
    return (
      'The marketplace has no model you can see yet. The hub publishes the ImageNet base model ' +
      'mobilenet-v2-imagenet at its first start (a minute); ask your admin if it does not appear, ' +
      'or publish one with `deepvre market publish FOLDER`.'
    );
  }
  return filtered
    ? 'No models match these words and filters. Clear the filters, or search for fewer words.'
    : 'No models match.';
}
