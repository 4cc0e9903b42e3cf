/**
 * Each layer declares its events in its own module, by declaration merging; whoever
 * imports the package root sees all of them in `LayerEvents`, typed. Checked by
 * `npm run typecheck`: the `@ts-expect-error` line fails to compile if the map grows too
 * loose, the others if a layer's events went missing. The runtime check is what the
 * types promise at run time.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import { type BreakerState, type ChaosFault, type Context, EventBus, type LayerEvents } from '#mcp-layers';

describe('LayerEvents seen from the package root', () => {
  it('holds every layer’s events, typed', () => {
    expectTypeOf<LayerEvents['retry']>().toEqualTypeOf<{ ctx: Context; attempt: number; delayMs: number; reason: string; serverDirected: boolean; error: Error | undefined }>();
    expectTypeOf<LayerEvents['give-up']['attempts']>().toEqualTypeOf<number>();
    expectTypeOf<LayerEvents['timeout']['scope']>().toEqualTypeOf<'attempt' | 'total'>();
    expectTypeOf<LayerEvents['breaker-state']['to']>().toEqualTypeOf<BreakerState>();
    expectTypeOf<LayerEvents['shed']['inFlight']>().toEqualTypeOf<number>();
    expectTypeOf<LayerEvents['hedge-outcome']['winner']>().toEqualTypeOf<number>();
    expectTypeOf<LayerEvents['chaos']['fault']>().toEqualTypeOf<ChaosFault>();
    expectTypeOf<LayerEvents['token-refresh']['outcome']>().toEqualTypeOf<'ok' | 'failed'>();
    expectTypeOf<LayerEvents['batch-flushed']['size']>().toEqualTypeOf<number>();
    // The core's and the transports' stay in the core.
    expectTypeOf<LayerEvents['attempt']['attempt']>().toEqualTypeOf<number>();
    expectTypeOf<LayerEvents['reconnect']['outcome']>().toEqualTypeOf<'scheduled' | 'connected' | 'failed' | 'gave-up'>();
    // @ts-expect-error An event nobody declared is not in the map.
    expectTypeOf<LayerEvents['no-such-event']>().toBeObject();
  });

  it('a layer’s event goes through the bus as declared', () => {
    const bus = new EventBus();
    const seen: Array<LayerEvents['batch-flushed']> = [];
    bus.on('batch-flushed', (event) => seen.push(event));
    // @ts-expect-error `size` is a number.
    bus.emit('batch-flushed', { size: 'two' });
    bus.emit('batch-flushed', { size: 2, bytes: 80 });
    expect(seen).toEqual([{ size: 'two' }, { size: 2, bytes: 80 }]);
  });

});
