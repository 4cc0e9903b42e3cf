/**
 * compose(layers): one layer that runs `layers` in order, first = outermost
 * (Koa/Tower order), then whatever `next` the caller passes.
 *
 * Where we differ from koa-compose: `next()` may be called more than once. For an
 * outbound request each call is a new attempt that runs the rest of the stack again;
 * that is how retry and hedging work. koa-compose forbids it because its `next()`
 * runs side effects once; ours runs an attempt, and attempts are meant to repeat.
 */
import type { Context } from './context.ts';
import type { Layer, LayerHost, LayerLike, Middleware } from './layer.ts';
import { toLayer } from './layer.ts';

/** What runs after the last layer: the wire (outbound) or the application (inbound). */
export type Terminal = (ctx: Context) => Promise<void>;

/** A composed stack is itself a layer, so stacks nest (`when()` is one). */
export interface ComposedLayer extends Layer {
  readonly handle: (ctx: Context, next?: Terminal) => Promise<void>;
  readonly attach: (host: LayerHost) => () => void;
}

const done: Terminal = () => Promise.resolve();

export function compose(layers: readonly LayerLike[], name = 'compose'): ComposedLayer {
  if (!Array.isArray(layers)) throw new TypeError(`compose(layers): layers must be an array, got ${typeof layers}`);
  const stack = layers.map((layer, i) => toLayer(layer, `layers[${i}]`));
  const handlers: Middleware[] = stack.map((layer) => layer.handle);

  const last = handlers.length;
  // One dispatcher per stack, not per exchange: each call allocates only its `next`.
  function dispatch(i: number, current: Context, terminal: Terminal): Promise<void> {
    if (i === last) return terminal(current);
    const handler = handlers[i] as Middleware;
    try {
      // A synchronous throw becomes a rejection, as in koa-compose.
      return Promise.resolve(handler(current, (child) => dispatch(i + 1, child ?? current, terminal)));
    } catch (error) {
      return Promise.reject(error);
    }
  }

  function handle(ctx: Context, next: Terminal = done): Promise<void> {
    return dispatch(0, ctx, next);
  }

  function attach(host: LayerHost): () => void {
    const detaches: Array<() => void> = [];
    try {
      for (const layer of stack) {
        const detach = layer.attach?.(host);
        if (typeof detach === 'function') detaches.push(detach);
      }
    } catch (error) {
      for (const detach of detaches.reverse()) detach();
      throw error;
    }
    return () => {
      for (const detach of detaches.reverse()) detach();
    };
  }

  return { name, handle, attach };
}
