/**
 * JSON-RPC 2.0 message types, structurally compatible with the official MCP SDKs
 * (v1 `@modelcontextprotocol/sdk`, v2 `@modelcontextprotocol/client` / `server`).
 * Nothing here imports SDK code: the shapes are what the SDKs put on the wire.
 */

export type RequestId = string | number;

export type JSONRPCParams = { [key: string]: unknown; _meta?: { [key: string]: unknown } | undefined };

export interface JSONRPCRequest {
  jsonrpc: '2.0';
  id: RequestId;
  method: string;
  params?: JSONRPCParams | undefined;
}

export interface JSONRPCNotification {
  jsonrpc: '2.0';
  method: string;
  params?: JSONRPCParams | undefined;
}

export interface JSONRPCResultResponse {
  jsonrpc: '2.0';
  id: RequestId;
  result: { [key: string]: unknown };
}

export interface JSONRPCErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

export interface JSONRPCErrorResponse {
  jsonrpc: '2.0';
  /** Absent (or null on the wire) only when the peer could not read the request's id. */
  id?: RequestId | undefined;
  error: JSONRPCErrorObject;
}

export type JSONRPCResponse = JSONRPCResultResponse | JSONRPCErrorResponse;
export type JSONRPCMessage = JSONRPCRequest | JSONRPCNotification | JSONRPCResponse;

export function isRequest(message: JSONRPCMessage): message is JSONRPCRequest {
  return 'method' in message && 'id' in message && message.id !== undefined;
}

export function isResponse(message: JSONRPCMessage): message is JSONRPCResponse {
  return !('method' in message) && ('result' in message || 'error' in message);
}

/** `notifications/cancelled`: the requester gives up on a request it sent. */
export const CANCELLED = 'notifications/cancelled';
/** `notifications/progress`: progress of a request, keyed by its `_meta.progressToken`. */
export const PROGRESS = 'notifications/progress';
/**
 * 2026-07-28 subscriptions (`subscriptions/listen`) name their request in this `_meta` key
 * of every notification and of the final result; it holds the request id on the wire.
 */
export const SUBSCRIPTION_ID_META_KEY = 'io.modelcontextprotocol/subscriptionId';

/**
 * A copy of `message` with `entries` added to `params._meta` (the application's object
 * is never touched). Layers use it to change what goes on the wire:
 * `ctx.message = withMeta(ctx.message, { traceparent })`.
 */
export function withMeta<M extends JSONRPCRequest | JSONRPCNotification>(message: M, entries: Readonly<Record<string, unknown>>): M {
  const params = message.params;
  return { ...message, params: { ...params, _meta: { ...params?._meta, ...entries } } };
}
