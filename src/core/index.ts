/**
 * The core's public surface (docs/architecture.md): what an application or a layer author
 * needs of the exchange engine, named one by one so nothing leaks by accident
 * (test/package/surface.test.ts holds the list). The rest of src/core/ is the core's own.
 */
export { compose, type ComposedLayer, type Terminal } from './compose.ts';
export { Context, type ContextInit, type ExchangeKind, type ProgressListener, type Session } from './context.ts';
export {
  CancelledError,
  ConnectionClosedError,
  ErrorCode,
  type ErrorCodeValue,
  type ErrorData,
  InvalidMessageError,
  InvalidOptionError,
  LayerFaultError,
  McpLayersError,
  type McpLayersErrorOptions,
  SetupErrorCode,
  type SetupErrorCodeValue,
  StrayResponseError,
  TimeoutError,
  TransportError,
} from './errors.ts';
export { type Outcome, isTransient } from './failure.ts';
export { EventBus, type Direction, type EventListener, type LayerEvents } from './events.ts';
export type { Idempotency, IdempotencyOptions } from './idempotency.ts';
export {
  type JSONRPCErrorObject,
  type JSONRPCErrorResponse,
  type JSONRPCMessage,
  type JSONRPCNotification,
  type JSONRPCParams,
  type JSONRPCRequest,
  type JSONRPCResponse,
  type JSONRPCResultResponse,
  type RequestId,
  withMeta,
} from './jsonrpc.ts';
export { parseRetryAfter } from './retry-after.ts';
export type { Layer, LayerHost, LayerLike, Middleware, Next, WireWrite } from './layer.ts';
export type { MessageExtraInfo, Transport, TransportSendOptions } from './transport.ts';
export { type Match, type Matcher, when } from './when.ts';
export { type LayeredTransport, wrap, type WrapOptions, type Wrapped } from './wrap.ts';
