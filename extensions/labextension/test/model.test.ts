import {
  changedValues,
  coerceValue,
  displayValue,
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
