import { describe, expect, it } from 'vitest';
import type { Context } from '#core/context.ts';
import { compileMatch, when } from '#core/when.ts';

const exchange = (method: string, params: Record<string, unknown> = {}, direction = 'outbound', kind = 'request') =>
  ({
    method,
    direction,
    kind,
    get target() {
      return typeof params['name'] === 'string' ? params['name'] : typeof params['uri'] === 'string' ? params['uri'] : undefined;
    },
  }) as unknown as Context;

describe('when: matching', () => {
  it('matches tools by glob, only for tools/call', () => {
    const m = compileMatch({ method: 'tools/call', tool: 'search_*' });
    expect(m(exchange('tools/call', { name: 'search_docs' }))).toBe(true);
    expect(m(exchange('tools/call', { name: 'delete_docs' }))).toBe(false);
    expect(m(exchange('prompts/get', { name: 'search_docs' }))).toBe(false);
  });

  it('matches any pattern of a list, and every field given', () => {
    const m = compileMatch({ method: ['resources/*', 'prompts/get'], direction: 'outbound' });
    expect(m(exchange('resources/read', { uri: 'file://a' }))).toBe(true);
    expect(m(exchange('prompts/get'))).toBe(true);
    expect(m(exchange('prompts/get', {}, 'inbound'))).toBe(false);
    expect(m(exchange('tools/call'))).toBe(false);
  });

  it('treats regex characters in patterns literally', () => {
    const m = compileMatch({ resource: 'file://docs/(a).md' });
    expect(m(exchange('resources/read', { uri: 'file://docs/(a).md' }))).toBe(true);
    expect(m(exchange('resources/read', { uri: 'file://docs/a.md' }))).toBe(false);
  });

  it('rejects unknown fields, empty matches and bad values with the option named', () => {
    expect(() => compileMatch({ methods: 'x' } as never)).toThrow(/unknown field "methods"/);
    expect(() => compileMatch({})).toThrow(/selects everything/);
    expect(() => compileMatch({ direction: 'up' } as never)).toThrow(/when\(match\)\.direction: expected "outbound" or "inbound", got "up"/);
    expect(() => compileMatch({ tool: [''] })).toThrow(/when\(match\)\.tool\[0\]: expected a non-empty name pattern/);
  });
});

describe('when: running', () => {
  it('runs its layers for matching exchanges and skips them otherwise', async () => {
    const ran: string[] = [];
    const layer = when({ method: 'tools/call' }, async (ctx, next) => {
      ran.push(ctx.method);
      await next();
    });
    let terminal = 0;
    await layer.handle(exchange('tools/call', { name: 'a' }), async () => void terminal++);
    await layer.handle(exchange('ping'), async () => void terminal++);
    expect(ran).toEqual(['tools/call']);
    expect(terminal).toBe(2);
  });
});
