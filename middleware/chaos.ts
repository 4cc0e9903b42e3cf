/**
 * chaos: deterministic fault injection, for testing your own stack and application
 * against the failures production brings (Polly's chaos strategies, for MCP).
 *
 *   wrap(transport, [...standard(), chaos({ seed: 42, errorRate: 0.05, latency: { delayMs: [10, 200], rate: 0.2 } })])
 *
 * Each outbound request that reaches the layer (each attempt, when it sits below
 * retry) draws from a seeded PRNG, so the same seed and the same traffic give the same
 * faults, run after run. Faults, drawn in this order (at most one of the last three):
 * - `latency`: waits before sending (ends at once if the exchange is cancelled);
 * - `errorRate`: fails without sending — a ChaosFaultError (-32055), retryable and
 *   `neverSent`, like a refused connection;
 * - `dropRate`: sends, then loses the response — the exchange waits until something
 *   above ends it (a timeout, the application's cancel), like a lost packet. Pair it
 *   with `timeout()`;
 * - `disconnectRate`: sends, then fails as if the connection dropped before the answer
 *   (ConnectionClosedError, reason `connection-lost`): the request may have run.
 *
 * Inbound requests (a server's) get `latency` and `errorRate` when `direction` includes
 * them; drops and disconnects are never injected inbound, where they would leave the
 * peer without a response. Notifications pass untouched.
 */
import { uniformFloat64 } from 'pure-rand/distribution/uniformFloat64';
import { xoroshiro128plus } from 'pure-rand/generator/xoroshiro128plus';
import { brand } from '../src/core/brand.ts';
import type { Context } from '../src/core/context.ts';
import { ConnectionClosedError, ErrorCode, McpLayersError, type McpLayersErrorOptions } from '../src/core/errors.ts';
import type { Layer, Next } from '../src/core/layer.ts';
import { booleanOption, choiceOption, durationOption, integerOption, invalidOption, optionsObject, rateOption } from '../src/core/options.ts';
import { sleep } from '../src/layer-kit/sleep.ts';

export type ChaosFault = 'latency' | 'error' | 'drop' | 'disconnect';

declare module '../src/core/events.ts' {
  interface LayerEvents {
    /** chaos injected a fault into this exchange (`delayMs` for latency). */
    chaos: { ctx: Context; fault: ChaosFault; delayMs: number | undefined };
  }
}

export interface ChaosLatency {
  /** The added delay, ms: fixed, or uniform in [min, max]. */
  delayMs: number | readonly [number, number];
  /** The share of requests delayed (default 1). */
  rate?: number;
}

export interface ChaosOptions {
  /** Seed of the PRNG (default 1): the same seed and traffic give the same faults. */
  seed?: number;
  /** Added latency: `{ delayMs, rate }`. */
  latency?: ChaosLatency;
  /** Share of requests failed without sending (default 0). */
  errorRate?: number;
  /** Share of requests whose response is lost (default 0). */
  dropRate?: number;
  /** Share of requests failed as a lost connection after sending (default 0). */
  disconnectRate?: number;
  /** Which requests get faults (default `outbound`). */
  direction?: 'outbound' | 'inbound' | 'both';
  /** Turns injection on and off at run time (default true). */
  enabled?: boolean;
}

export interface ChaosLayer extends Layer {
  /** Switches injection on or off; the PRNG sequence continues where it was. */
  enabled: boolean;
}

/** A fault the chaos layer injected on purpose. */
export class ChaosFaultError extends McpLayersError<number> {
  static {
    brand(this, 'error.ChaosFaultError');
  }

  constructor(message: string, options: McpLayersErrorOptions = {}) {
    super(ErrorCode.ChaosFault, message, { layer: 'chaos', reason: 'chaos-error', retryable: true, neverSent: true, ...options });
  }
}

const KNOWN = ['seed', 'latency', 'errorRate', 'dropRate', 'disconnectRate', 'direction', 'enabled'] as const;

export function chaos(options?: ChaosOptions): ChaosLayer {
  const o = optionsObject(options, 'chaos', KNOWN);
  const seed = integerOption('chaos.seed', o.seed, 1, -0x8000_0000, 0x7fff_ffff);
  const latency = latencyOption(o.latency);
  const errorRate = rateOption('chaos.errorRate', o.errorRate, 0);
  const dropRate = rateOption('chaos.dropRate', o.dropRate, 0);
  const disconnectRate = rateOption('chaos.disconnectRate', o.disconnectRate, 0);
  if (errorRate + dropRate + disconnectRate > 1 + 1e-9) {
    throw invalidOption('chaos.errorRate + chaos.dropRate + chaos.disconnectRate', 'at most 1', errorRate + dropRate + disconnectRate);
  }
  const direction = choiceOption('chaos.direction', o.direction, 'outbound', ['outbound', 'inbound', 'both']);
  if (direction === 'inbound') {
    // A dropped inbound request would leave the peer without any response (invariant 2).
    if (dropRate > 0) throw invalidOption('chaos.dropRate', '0 with direction "inbound" (drops are injected into outbound requests only)', dropRate);
    if (disconnectRate > 0) throw invalidOption('chaos.disconnectRate', '0 with direction "inbound" (disconnects are injected into outbound requests only)', disconnectRate);
  }
  const rng = xoroshiro128plus(seed);
  const draw = (): number => uniformFloat64(rng);

  const inject = (ctx: Context, fault: ChaosFault, delayMs?: number): void => {
    if (ctx.events.has('chaos')) ctx.events.emit('chaos', { ctx, fault, delayMs });
  };

  const run = async (ctx: Context, next: Next): Promise<void> => {
    // Every draw happens up front, in a fixed order, so the sequence depends on the traffic only.
    const delayed = latency !== undefined && draw() < latency.rate;
    const delayMs = delayed ? latency.min + (latency.max - latency.min) * draw() : 0;
    const roll = draw();
    const outbound = ctx.direction === 'outbound';
    if (delayed) {
      inject(ctx, 'latency', delayMs);
      await sleep(delayMs, ctx.signal);
    }
    if (roll < errorRate) {
      inject(ctx, 'error');
      throw new ChaosFaultError(`Injected fault: ${ctx.method} failed before it was sent`);
    }
    if (!outbound) return next();
    if (roll < errorRate + dropRate) {
      inject(ctx, 'drop');
      const attempt = ctx.fork();
      await next(attempt);
      // The answer is lost: wait for whatever ends the exchange (timeout, cancel, close).
      await new Promise<never>((_, reject) => {
        if (ctx.signal.aborted) reject(ctx.signal.reason);
        else ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true });
      });
    }
    if (roll < errorRate + dropRate + disconnectRate) {
      inject(ctx, 'disconnect');
      const attempt = ctx.fork();
      await next(attempt);
      throw new ConnectionClosedError(`Injected fault: the connection dropped before the response to ${ctx.method} arrived`, {
        layer: 'chaos',
        reason: 'connection-lost',
      });
    }
    return next();
  };

  const layer: ChaosLayer = {
    name: 'chaos',
    enabled: booleanOption('chaos.enabled', o.enabled, true),
    handle: (ctx, next) => {
      if (!layer.enabled || ctx.kind !== 'request' || (direction !== 'both' && ctx.direction !== direction)) return next();
      return run(ctx, next);
    },
  };
  return layer;
}

function latencyOption(value: unknown): { min: number; max: number; rate: number } | undefined {
  if (value === undefined) return undefined;
  // A bare number names no unit: the delay is always given as `delayMs`.
  if (typeof value === 'number') throw invalidOption('chaos.latency', 'an object { delayMs, rate? }', value);
  const o = optionsObject(value as ChaosLatency, 'chaos.latency', ['delayMs', 'rate']);
  const rate = rateOption('chaos.latency.rate', o.rate, 1);
  if (Array.isArray(o.delayMs)) {
    if (o.delayMs.length !== 2) throw invalidOption('chaos.latency.delayMs', 'a duration or a [min, max] pair', o.delayMs);
    const min = durationOption('chaos.latency.delayMs[0]', o.delayMs[0], 0);
    const max = durationOption('chaos.latency.delayMs[1]', o.delayMs[1], 0);
    if (max < min) throw invalidOption('chaos.latency.delayMs[1]', `at least chaos.latency.delayMs[0] (${min})`, max);
    return { min, max, rate };
  }
  if (o.delayMs === undefined) throw invalidOption('chaos.latency.delayMs', 'a duration or a [min, max] pair', undefined);
  const ms = durationOption('chaos.latency.delayMs', o.delayMs, 0);
  return { min: ms, max: ms, rate };
}
