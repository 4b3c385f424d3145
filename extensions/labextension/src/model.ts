/**
 * What the Models panel shows and sends: types of the server's JSON and pure functions
 * (no JupyterLab imports, so the unit tests run in plain Node).
 */

export interface IModelCard {
  name: string;
  title: string;
  summary: string;
  use_case: string;
  tasks: string[];
  categories: string[];
  tags: string[];
  metrics: Record<string, number | string>;
  version: string;
  owner: string;
  lineage: unknown;
  trainable: boolean;
}

export interface IModelDetails extends IModelCard {
  description: string;
  versions: unknown[];
}

export type Kind = 'int' | 'float' | 'bool' | 'str' | 'json' | 'any' | 'choice';

export interface IParameter {
  name: string;
  type: string;
  kind: Kind;
  default: string | null;
  value: unknown;
  help: string;
  /** The values a ``choice`` takes (the notebook's help lists them as "one of: a, b, c"). */
  choices?: unknown[];
}

/** Parameters the runner or the platform sets (the executed copy's path, the output folder): not in the form's main part. */
export const INTERNAL_PARAMETERS = ['executed_notebook', 'output_dir', 'run_dir', 'kernel_name'];

export function isInternal(p: IParameter): boolean {
  return INTERNAL_PARAMETERS.includes(p.name) || p.name.startsWith('_');
}

/** The form input a parameter gets: a checkbox, a number box, a choice or a text box. */
export function inputKind(p: IParameter): 'checkbox' | 'number' | 'select' | 'text' {
  if (p.kind === 'choice' && p.choices?.length) {
    return 'select';
  }
  return p.kind === 'bool' ? 'checkbox' : p.kind === 'int' || p.kind === 'float' ? 'number' : 'text';
}

/** ``{name: message}`` of the fields whose text does not parse to their type (empty: all good). */
export function fieldErrors(params: IParameter[], texts: Record<string, string>): Record<string, string> {
  const errors: Record<string, string> = {};
  for (const p of params) {
    const text = texts[p.name];
    if (text === undefined || text === displayValue(p)) {
      continue;
    }
    try {
      coerceValue(p, text);
    } catch (err) {
      errors[p.name] = (err as Error).message;
    }
  }
  return errors;
}

export interface IRun {
  id: string;
  state: string;
  progress: { done: number; total: number | null };
  started: string | null;
  finished: string | null;
  error: string;
  notebook: string | null;
  output: string | null;
  metrics_file: string | null;
  metrics: Record<string, unknown>;
  /** The sweep (``deepvre run --sweep``) the run belongs to, or null. */
  sweep?: string | null;
  /** Why a queued run waits: its place in the hub's GPU queue, or Slurm's reason and estimated start. */
  waiting?: string;
}

export interface IFilters {
  q: string;
  use_case: string;
  task: string;
  category: string;
  trainable: boolean;
}

export const ACTIVE_STATES = ['queued', 'running', 'starting'];

/** The query string of a search: only the filters that are set. */
export function searchQuery(filters: IFilters): string {
  const params = new URLSearchParams();
  for (const key of ['q', 'use_case', 'task', 'category'] as const) {
    const value = filters[key].trim();
    if (value) {
      params.set(key, value);
    }
  }
  if (filters.trainable) {
    params.set('trainable', 'true');
  }
  return params.toString();
}

/** The text shown in a form input for a parameter's value. */
export function displayValue(p: IParameter): string {
  if (p.value === null || p.value === undefined) {
    return p.default ?? '';
  }
  if (p.kind === 'json' || typeof p.value === 'object') {
    return JSON.stringify(p.value);
  }
  return String(p.value);
}

/** A form input's text parsed to the parameter's type; throws an Error naming the parameter. */
export function coerceValue(p: IParameter, text: string): unknown {
  const t = text.trim();
  const fail = (what: string): never => {
    throw new Error(`${p.name} must be ${what}, not "${text}"`);
  };
  switch (p.kind) {
    case 'int':
      return /^[-+]?\d+$/.test(t) ? parseInt(t, 10) : fail('an integer');
    case 'float': {
      const n = Number(t);
      return t !== '' && Number.isFinite(n) ? n : fail('a number');
    }
    case 'bool':
      return ['true', 'yes', '1'].includes(t.toLowerCase())
        ? true
        : ['false', 'no', '0'].includes(t.toLowerCase())
          ? false
          : fail('true or false');
    case 'str':
      return text;
    case 'choice': {
      const found = (p.choices ?? []).find(c => String(c) === text);
      return found !== undefined ? found : fail(`one of ${(p.choices ?? []).map(String).join(', ')}`);
    }
    default:
      try {
        return JSON.parse(t);
      } catch {
        return p.kind === 'json' ? fail('JSON') : text;
      }
  }
}

/** The parameters that differ from their defaults, parsed; errors list every bad field. */
export function changedValues(
  params: IParameter[],
  texts: Record<string, string>
): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  const errors: string[] = [];
  for (const p of params) {
    const text = texts[p.name];
    if (text === undefined || text === displayValue(p)) {
      continue;
    }
    try {
      out[p.name] = coerceValue(p, text);
    } catch (err) {
      errors.push((err as Error).message);
    }
  }
  if (errors.length) {
    throw new Error(errors.join('; '));
  }
  return out;
}

/** "accuracy 0.91 · loss 0.23": numbers rounded to 3 significant digits. */
export function formatMetrics(metrics: Record<string, unknown> | null | undefined): string {
  return Object.entries(metrics ?? {})
    .filter(([, v]) => typeof v === 'number' || typeof v === 'string')
    .map(([k, v]) => `${k} ${typeof v === 'number' ? Number(v.toPrecision(3)) : v}`)
    .join(' · ');
}

/** "fine-tuned from NAME VERSION", or '' for a base model. */
export function lineageText(lineage: unknown): string {
  if (!lineage) {
    return '';
  }
  if (typeof lineage === 'string') {
    return `fine-tuned from ${lineage}`;
  }
  const l = lineage as Record<string, unknown>;
  const name = l.model ?? l.name ?? l.parent;
  return name ? `fine-tuned from ${name}${l.version ? ' ' + l.version : ''}` : '';
}

/** "3/10 cells" or the state alone when the total is unknown. */
export function progressText(run: IRun): string {
  const { done, total } = run.progress ?? { done: 0, total: null };
  return total ? `${run.state} · ${done}/${total} cells` : run.state;
}

export function isActive(run: IRun): boolean {
  return ACTIVE_STATES.includes(run.state);
}
