import {
  changedValues,
  coerceValue,
  displayValue,
  fieldErrors,
  inputKind,
  isInternal,
  formatMetrics,
  IParameter,
  lineageText,
  progressText,
  searchQuery
} from '../src/model';

const param = (name: string, kind: IParameter['kind'], value: unknown): IParameter => ({
  name,
  kind,
  type: kind,
  value,
  default: JSON.stringify(value),
  help: ''
});

describe('searchQuery', () => {
  it('keeps only the filters that are set', () => {
    expect(searchQuery({ q: ' cells ', use_case: '', task: 'classification', category: '', trainable: true })).toBe(
      'q=cells&task=classification&trainable=true'
    );
    expect(searchQuery({ q: '', use_case: '', task: '', category: '', trainable: false })).toBe('');
  });
  it('escapes user text', () => {
    expect(searchQuery({ q: 'a&b=c', use_case: '', task: '', category: '', trainable: false })).toBe('q=a%26b%3Dc');
  });
});

describe('coerceValue', () => {
  it('parses by kind', () => {
    expect(coerceValue(param('epochs', 'int', 2), ' 5 ')).toBe(5);
    expect(coerceValue(param('lr', 'float', 0.1), '1e-3')).toBe(0.001);
    expect(coerceValue(param('aug', 'bool', false), 'True')).toBe(true);
    expect(coerceValue(param('label', 'str', 'x'), ' a b ')).toBe(' a b ');
    expect(coerceValue(param('layers', 'json', [1]), '[1, 2]')).toEqual([1, 2]);
  });
  it('names the parameter on bad input', () => {
    expect(() => coerceValue(param('epochs', 'int', 2), '2.5')).toThrow('epochs must be an integer');
    expect(() => coerceValue(param('lr', 'float', 0.1), 'fast')).toThrow('lr must be a number');
    expect(() => coerceValue(param('aug', 'bool', false), 'maybe')).toThrow('aug must be true or false');
    expect(() => coerceValue(param('layers', 'json', [1]), '[1,')).toThrow('layers must be JSON');
  });
});

describe('changedValues', () => {
  const params = [param('epochs', 'int', 2), param('lr', 'float', 0.01)];
  it('sends only what changed', () => {
    expect(changedValues(params, { epochs: '2', lr: '0.5' })).toEqual({ lr: 0.5 });
    expect(changedValues(params, {})).toEqual({});
  });
  it('lists every bad field', () => {
    expect(() => changedValues(params, { epochs: 'x', lr: 'y' })).toThrow(/epochs.*; lr/);
  });
  it('shows defaults as text', () => {
    expect(displayValue(params[1])).toBe('0.01');
    expect(displayValue({ ...params[0], value: null, default: 'os.cpu_count()' })).toBe('os.cpu_count()');
  });
});

describe('display helpers', () => {
  it('formats metrics, lineage and progress', () => {
    expect(formatMetrics({ accuracy: 0.912345, loss: 0.2, note: 'ok', nested: { a: 1 } })).toBe(
      'accuracy 0.912 · loss 0.2 · note ok'
    );
    expect(lineageText({ model: 'base', version: '1.0.0' })).toBe('fine-tuned from base 1.0.0');
    expect(lineageText(null)).toBe('');
    const run = { id: 'r', state: 'running', progress: { done: 3, total: 10 } } as any;
    expect(progressText(run)).toBe('running · 3/10 cells');
    expect(progressText({ ...run, progress: { done: 0, total: null } })).toBe('running');
  });
});

describe('typed form', () => {
  const choice: IParameter = {
    name: 'cluster',
    kind: 'choice',
    type: 'str',
    value: 'local',
    default: '"local"',
    help: 'one of: local, slurm',
    choices: ['local', 'slurm']
  };
  const size: IParameter = { ...choice, name: 'size', type: 'int', value: 32, default: '32', choices: [32, 64] };
  it('gives each kind its input and keeps internal parameters apart', () => {
    expect(inputKind(param('epochs', 'int', 2))).toBe('number');
    expect(inputKind(param('lr', 'float', 0.1))).toBe('number');
    expect(inputKind(param('smoke', 'bool', false))).toBe('checkbox');
    expect(inputKind(param('label', 'str', 'x'))).toBe('text');
    expect(inputKind(choice)).toBe('select');
    expect(inputKind({ ...choice, choices: [] })).toBe('text');
    expect(isInternal(param('executed_notebook', 'str', ''))).toBe(true);
    expect(isInternal(param('output_dir', 'str', 'out'))).toBe(true);
    expect(isInternal(param('_seed_offset', 'int', 0))).toBe(true);
    expect(isInternal(param('epochs', 'int', 2))).toBe(false);
  });
  it('parses a choice to its typed value and refuses others', () => {
    expect(coerceValue(choice, 'slurm')).toBe('slurm');
    expect(coerceValue(size, '64')).toBe(64);
    expect(() => coerceValue(choice, 'k8s')).toThrow('cluster must be one of local, slurm, not "k8s"');
  });
  it('puts each error at its field', () => {
    const params = [param('epochs', 'int', 2), param('lr', 'float', 0.1), param('label', 'str', 'x')];
    expect(fieldErrors(params, { epochs: 'two', lr: '0.5', label: 'y' })).toEqual({
      epochs: 'epochs must be an integer, not "two"'
    });
    expect(fieldErrors(params, { epochs: '2' })).toEqual({});
  });
});
