import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { classify } from '../../src/validate.ts';

describe('classify: the six shapes', () => {
  it('recognizes requests, notifications and responses', () => {
    expect(classify({ jsonrpc: '2.0', id: 1, method: 'ping' }).kind).toBe('request');
    expect(classify({ jsonrpc: '2.0', id: 'a', method: 'tools/call', params: { name: 'x' } }).kind).toBe('request');
    expect(classify({ jsonrpc: '2.0', method: 'notifications/initialized' }).kind).toBe('notification');
    expect(classify({ jsonrpc: '2.0', id: 1, result: {} }).kind).toBe('response');
    expect(classify({ jsonrpc: '2.0', id: 1, error: { code: -32600, message: 'bad' } }).kind).toBe('response');
    expect(classify({ jsonrpc: '2.0', id: null, error: { code: -32700, message: 'parse error' } }).kind).toBe('response');
  });
});

describe('classify: what is wrong, in words', () => {
  const cases: Array<[unknown, RegExp]> = [
    ['hello', /expected a JSON-RPC 2.0 message object, got a string/],
    [null, /got null/],
    [42, /got a number/],
    [{ jsonrpc: '1.0', id: 1, method: 'ping' }, /"jsonrpc" must be "2.0", got "1.0"/],
    [{ id: 1, method: 'ping' }, /"jsonrpc" must be "2.0", got nothing/],
    [{ jsonrpc: '2.0' }, /missing "method" and "id"/],
    [{ jsonrpc: '2.0', id: 3 }, /has no "method", "result" or "error"/],
    [{ jsonrpc: '2.0', id: {}, method: 'ping' }, /"id" must be a string or a finite number/],
    [{ jsonrpc: '2.0', id: 1, method: 7 }, /"method" must be a non-empty string, got 7/],
    [{ jsonrpc: '2.0', id: 1, method: '' }, /"method" must be a non-empty string/],
    [{ jsonrpc: '2.0', id: 1, method: 'x', params: 'str' }, /"params" of x must be an object/],
    [{ jsonrpc: '2.0', id: 1, result: {}, error: { code: 1, message: 'm' } }, /both "result" and "error"/],
    [{ jsonrpc: '2.0', id: 1, error: { code: 'x', message: 'm' } }, /integer "code" and a string "message"/],
    [{ jsonrpc: '2.0', id: 1, result: [1] }, /"result" must be an object, got an array/],
    [{ jsonrpc: '2.0', result: {} }, /must carry the request's "id"/],
  ];
  it.each(cases)('rejects %j', (value, problem) => {
    const c = classify(value);
    expect(c.kind).toBe('invalid');
    expect(c.kind === 'invalid' && c.problem).toMatch(problem);
  });

  it('keeps the id of a readable but invalid request so the peer can be answered', () => {
    const c = classify({ jsonrpc: '1.0', id: 9, method: 'ping' });
    expect(c).toMatchObject({ kind: 'invalid', id: 9 });
  });
});

describe('classify: __proto__ keys never travel', () => {
  it('finds them at any depth and says where', () => {
    const parsed = JSON.parse('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"arguments":{"list":[{"__proto__":{"polluted":true}}]}}}');
    const c = classify(parsed);
    expect(c.kind).toBe('invalid');
    expect(c.kind === 'invalid' && c.problem).toBe('contains a forbidden "__proto__" key at params.arguments.list[0]');
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('at the top level', () => {
    const c = classify(JSON.parse('{"jsonrpc":"2.0","method":"x","__proto__":{}}'));
    expect(c.kind === 'invalid' && c.problem).toMatch(/at the top level/);
  });

  it('accepts any JSON value that has no such key (property)', () => {
    fc.assert(
      fc.property(fc.jsonValue(), (params) => {
        const text = JSON.stringify(params);
        fc.pre(!text.includes('__proto__'));
        const c = classify({ jsonrpc: '2.0', id: 1, result: { value: params } });
        return c.kind === 'response';
      }),
    );
  });
});
