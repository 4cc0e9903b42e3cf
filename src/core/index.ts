/** The core (docs/architecture.md): the exchange engine, and everything a layer or an application needs of it. */
export { compose, type ComposedLayer, type Terminal } from './compose.ts';
export { Context, type ContextInit, type ExchangeKind, type ProgressListener, type Session } from './context.ts';
export * from './errors.ts';
export { type Outcome, isTransient } from './failure.ts';
export { EventBus, type Direction, type EventListener, type LayerEvents } from './events.ts';
export { globMatcher, type NameMatcher } from './glob.ts';
export { Idempotency, type IdempotencyOptions } from './idempotency.ts';
export * from './jsonrpc.ts';
export { parseRetryAfter } from './retry-after.ts';
export { isLayer, toLayer, type Layer, type LayerHost, type LayerLike, type Middleware, type Next, type WireWrite } from './layer.ts';
export type { MessageExtraInfo, Transport, TransportSendOptions } from './transport.ts';
export { classify, type Classified } from './validate.ts';
export { compileMatch, when, type Match, type Matcher } from './when.ts';
export { LayeredTransport, wrap, type WrapOptions, type Wrapped } from './wrap.ts';
