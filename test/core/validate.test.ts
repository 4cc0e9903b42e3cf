import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { classify, DEFAULT_MAX_DEPTH } from '#core/validate.ts';

/** An object exactly `levels` levels deep: `{ a: { a: … { leaf: 1 } } }`. */
function nest(levels: number): Record<string, unknown> {
  let value: Record<string, unknown> = { leaf: 1 };
  for (let i = 1; i < levels; i++) value = { a: value };
  return value;
}

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
    expect(c.kind === 'invalid' && c.problem).toBe('forbidden "__proto__" key at $.params.arguments.list[0]');
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('at the top level', () => {
    const c = classify(JSON.parse('{"jsonrpc":"2.0","method":"x","__proto__":{}}'));
    expect(c.kind === 'invalid' && c.problem).toBe('forbidden "__proto__" key at $');
  });

  it('quotes a key that is not an identifier in the path', () => {
    const c = classify(JSON.parse('{"jsonrpc":"2.0","id":1,"result":{"a b":{"__proto__":1}}}'));
    expect(c.kind === 'invalid' && c.problem).toBe('forbidden "__proto__" key at $.result["a b"]');
  });

  it('is found deep down, within the limit, and named as such, not as depth', () => {
    const message = { jsonrpc: '2.0', id: 1, result: nest(DEFAULT_MAX_DEPTH - 2) };
    let innermost = message.result;
    while (innermost['a'] !== undefined) innermost = innermost['a'] as Record<string, unknown>;
    Object.defineProperty(innermost, '__proto__', { value: {}, enumerable: true });
    const c = classify(message);
    expect(c.kind === 'invalid' && c.problem).toMatch(/^forbidden "__proto__" key at \$\.result\.a\.a/);
  });

  it('is found at every level, in objects and in arrays, on both sides of where the walk stops recursing', () => {
    // The key's holder at levels 4…143 (past the recursion's 64), its parents arrays, objects or mixed.
    const parents = [() => false, () => true, (i: number) => i % 2 === 0] as const;
    for (const isArray of parents) {
      for (let levels = 1; levels <= 140; levels++) {
        let text = '{"__proto__":{"polluted":true}}';
        for (let i = levels - 1; i >= 0; i--) text = isArray(i) ? `[${text}]` : `{"k":${text}}`;
        const c = classify(JSON.parse(`{"jsonrpc":"2.0","id":1,"result":{"v":${text}}}`));
        expect(c.kind === 'invalid' && c.problem.startsWith('forbidden "__proto__" key at $.result.v'), `${levels} levels: ${JSON.stringify(c)}`).toBe(true);
      }
    }
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

describe('classify: depth', () => {
  /** A response `levels` levels deep in all, the message itself being level 1. */
  const response = (levels: number) => ({ jsonrpc: '2.0', id: 1, result: nest(levels - 1) });

  it('accepts exactly the limit and refuses one level more, by default', () => {
    expect(classify(response(DEFAULT_MAX_DEPTH)).kind).toBe('response');
    const c = classify(response(DEFAULT_MAX_DEPTH + 1));
    expect(c.kind === 'invalid' && c.problem).toMatch(new RegExp(`^too deep \\(${DEFAULT_MAX_DEPTH + 1} levels, limit ${DEFAULT_MAX_DEPTH}\\) at \\$\\.result\\.a\\.a`));
  });

  it('accepts exactly a given limit and refuses one level more', () => {
    expect(classify(response(64), 64).kind).toBe('response');
    expect(classify(response(65), 64)).toMatchObject({ kind: 'invalid', id: 1, problem: expect.stringMatching(/^too deep \(65 levels, limit 64\) at /) });
    expect(classify(response(3), 3).kind).toBe('response');
    expect(classify(response(4), 3)).toEqual({ kind: 'invalid', id: 1, problem: 'too deep (4 levels, limit 3) at $.result.a.a' });
  });

  it('counts arrays as levels and says which item', () => {
    const c = classify({ jsonrpc: '2.0', id: 1, result: { list: [1, [2, [3]]] } }, 4);
    expect(c.kind === 'invalid' && c.problem).toBe('too deep (5 levels, limit 4) at $.result.list[1][1]');
  });

  it('passes the 62-level payloads real servers send, inside their envelope, with room to spare', () => {
    expect(classify({ jsonrpc: '2.0', id: 1, result: { content: [], structuredContent: nest(62) } }).kind).toBe('response');
    expect(classify({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 't', arguments: { x: nest(62) } } }).kind).toBe('request');
  });

  it('says how deep the message really is, and bounds the path it prints', () => {
    const c = classify({ jsonrpc: '2.0', id: 1, result: { content: [], structuredContent: nest(78) } }, 64);
    expect(c.kind).toBe('invalid');
    const problem = c.kind === 'invalid' ? c.problem : '';
    expect(problem).toMatch(/^too deep \(80 levels, limit 64\) at \$\.result\.structuredContent\.a\.a\.a/);
    expect(problem.endsWith('…')).toBe(true);
    expect(problem.length).toBeLessThan(200);
  });

  it('walks 100 000 levels without overflowing the stack', () => {
    const text = `{"jsonrpc":"2.0","id":1,"result":{"a":${'['.repeat(100_000)}${']'.repeat(100_000)}}}`;
    const c = classify(JSON.parse(text));
    expect(c.kind === 'invalid' && c.problem).toMatch(/^too deep \(100002 levels, limit 1000\) at \$\.result\.a\[0\]\[0\]/);
  });

  it('leaves the application\'s own messages to the shallow checks', () => {
    expect(classify(response(DEFAULT_MAX_DEPTH + 5), false).kind).toBe('response');
  });

  it('keeps the id of an invalid response so the request it answers can be ended', () => {
    expect(classify({ jsonrpc: '2.0', id: 4, result: 'yes' })).toMatchObject({ kind: 'invalid', id: 4 });
    expect(classify({ jsonrpc: '2.0', id: 4, result: {}, error: { code: 1, message: 'm' } })).toMatchObject({ kind: 'invalid', id: 4 });
    expect(classify({ jsonrpc: '2.0', id: 4, error: { code: 'x' } })).toMatchObject({ kind: 'invalid', id: 4 });
    expect(classify({ jsonrpc: '2.0', id: 4 })).toMatchObject({ kind: 'invalid', id: 4 });
  });
});
