import { describe, expect, it } from 'vitest';
import { compose } from '#core/compose.ts';
import type { Context } from '#core/context.ts';
import type { Middleware } from '#core/layer.ts';

// compose() only reads what layers do with ctx, so a plain object stands in for a Context.
const ctx = () => ({ trail: [] as string[] }) as unknown as Context & { trail: string[] };

describe('compose: order', () => {
  it('runs the first layer outermost, then the terminal, then unwinds', async () => {
    const c = ctx();
    const layer = (name: string): Middleware => async (x, next) => {
      (x as typeof c).trail.push(`${name}>`);
      await next();
      (x as typeof c).trail.push(`<${name}`);
    };
    await compose([layer('a'), layer('b')]).handle(c, async (x) => void (x as typeof c).trail.push('wire'));
    expect(c.trail).toEqual(['a>', 'b>', 'wire', '<b', '<a']);
  });

  it('accepts layer objects and nested stacks', async () => {
    const c = ctx();
    const inner = compose([{ name: 'x', handle: async (x, next) => { (x as typeof c).trail.push('x'); await next(); } }]);
    await compose([inner, (x, next) => { (x as typeof c).trail.push('y'); return next(); }]).handle(c, async () => {});
    expect(c.trail).toEqual(['x', 'y']);
  });
});

describe('compose: next() is re-invocable (each call is an attempt)', () => {
  it('runs the rest of the stack again on every call', async () => {
    const c = ctx();
    let terminalRuns = 0;
    const twice: Middleware = async (_x, next) => {
      await next();
      await next();
    };
    const below: Middleware = async (x, next) => {
      (x as typeof c).trail.push('below');
      await next();
    };
    await compose([twice, below]).handle(c, async () => void terminalRuns++);
    expect(terminalRuns).toBe(2);
    expect(c.trail).toEqual(['below', 'below']);
  });

  it('passes a forked context to the layers below', async () => {
    const c = ctx();
    const child = { trail: c.trail, forked: true } as unknown as Context;
    const seen: unknown[] = [];
    await compose([(_x, next) => next(child), (x, next) => { seen.push(x); return next(); }]).handle(c, async (x) => void seen.push(x));
    expect(seen).toEqual([child, child]);
  });
});

describe('compose: errors', () => {
  it('turns a synchronous throw into a rejection', async () => {
    const boom: Middleware = () => {
      throw new Error('sync boom');
    };
    await expect(compose([boom]).handle(ctx(), async () => {})).rejects.toThrow('sync boom');
  });

  it('propagates a terminal rejection through every layer', async () => {
    const seen: string[] = [];
    const watch: Middleware = async (_x, next) => {
      try {
        await next();
      } catch (error) {
        seen.push((error as Error).message);
        throw error;
      }
    };
    await expect(compose([watch, watch]).handle(ctx(), () => Promise.reject(new Error('wire down')))).rejects.toThrow('wire down');
    expect(seen).toEqual(['wire down', 'wire down']);
  });

  it('names the position of something that is not a layer', () => {
    expect(() => compose([async (_c, n) => n(), 42 as never])).toThrow(/layers\[1\] must be a layer .* got 42/);
    expect(() => compose('nope' as never)).toThrow(/layers must be an array/);
  });
});

describe('compose: attach', () => {
  it('attaches every layer in order and detaches in reverse', () => {
    const order: string[] = [];
    const layer = (name: string) => ({
      name,
      handle: (_c: Context, next: () => Promise<void>) => next(),
      attach: () => {
        order.push(`attach ${name}`);
        return () => order.push(`detach ${name}`);
      },
    });
    const detach = compose([layer('a'), compose([layer('b')]), layer('c')]).attach({} as never);
    detach();
    expect(order).toEqual(['attach a', 'attach b', 'attach c', 'detach c', 'detach b', 'detach a']);
  });

  it('undoes earlier attachments when a later layer refuses', () => {
    const order: string[] = [];
    const ok = { name: 'ok', handle: (_c: Context, next: () => Promise<void>) => next(), attach: () => () => order.push('detach ok') };
    const refuse = { name: 'refuse', handle: ok.handle, attach: () => { throw new Error('batching: stdio cannot carry arrays'); } };
    expect(() => compose([ok, refuse]).attach({} as never)).toThrow('stdio cannot carry arrays');
    expect(order).toEqual(['detach ok']);
  });
});
