/**
 * Reads a peer's (or the application's) message and says what it is, or exactly what
 * is wrong with it. Checks only what correlation depends on and what is unsafe to
 * pass on; MCP-level validation stays with the SDK, so the stack stays transparent.
 */
import type {
  JSONRPCNotification,
  JSONRPCRequest,
  JSONRPCResponse,
  RequestId,
} from './jsonrpc.ts';

export type Classified =
  | { kind: 'request'; message: JSONRPCRequest }
  | { kind: 'notification'; message: JSONRPCNotification }
  | { kind: 'response'; message: JSONRPCResponse }
  /** `id` is set when the message carried a usable request id (the peer can be answered). */
  | { kind: 'invalid'; problem: string; id: RequestId | undefined };

/** How deep `__proto__` keys are searched for; deeper structures are rejected as too deep. */
const MAX_DEPTH = 64;

/**
 * `deep` (the default, for the peer's bytes) also searches the whole message for
 * `__proto__` keys; the application's own messages get the shallow checks only.
 */
export function classify(value: unknown, deep = true): Classified {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return invalid(`expected a JSON-RPC 2.0 message object, got ${kindOf(value)}`);
  }
  const message = value as Record<string, unknown>;
  const rawId = message['id'];
  const hasId = rawId !== undefined && rawId !== null;
  const id = isRequestId(rawId) ? rawId : undefined;
  if (message['jsonrpc'] !== '2.0') {
    return invalid(`"jsonrpc" must be "2.0", got ${kindOf(message['jsonrpc'], true)}`, id);
  }
  if (hasId && id === undefined) {
    return invalid(`"id" must be a string or a finite number, got ${kindOf(rawId, true)}`);
  }
  const poisoned = deep ? findProtoKey(message) : undefined;
  if (poisoned !== undefined) return invalid(`contains a forbidden "__proto__" key at ${poisoned}`, id);

  if ('method' in message) {
    const method = message['method'];
    if (typeof method !== 'string' || method === '') {
      return invalid(`"method" must be a non-empty string, got ${kindOf(method, true)}`, id);
    }
    const params = message['params'];
    if (params !== undefined && (typeof params !== 'object' || params === null)) {
      return invalid(`"params" of ${method} must be an object, got ${kindOf(params, true)}`, id);
    }
    if (id !== undefined) return { kind: 'request', message: message as unknown as JSONRPCRequest };
    return { kind: 'notification', message: message as unknown as JSONRPCNotification };
  }

  const hasResult = 'result' in message;
  const hasError = 'error' in message;
  if (!hasResult && !hasError) {
    return invalid(hasId ? `a message with "id" ${kindOf(rawId, true)} has no "method", "result" or "error"` : 'missing "method" and "id"', undefined);
  }
  if (hasResult && hasError) return invalid('a response must not carry both "result" and "error"', undefined);
  if (hasResult) {
    if (id === undefined) return invalid('a result response must carry the request\'s "id"', undefined);
    const result = message['result'];
    if (typeof result !== 'object' || result === null || Array.isArray(result)) {
      return invalid(`"result" must be an object, got ${kindOf(result, true)}`, undefined);
    }
    return { kind: 'response', message: message as unknown as JSONRPCResponse };
  }
  const error = message['error'] as Record<string, unknown> | null;
  if (typeof error !== 'object' || error === null || !Number.isInteger(error['code']) || typeof error['message'] !== 'string') {
    return invalid('"error" must be an object with an integer "code" and a string "message"', undefined);
  }
  return { kind: 'response', message: message as unknown as JSONRPCResponse };
}

function invalid(problem: string, id?: RequestId): Classified {
  return { kind: 'invalid', problem, id };
}

function isRequestId(value: unknown): value is RequestId {
  return typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value));
}

/**
 * Finds an own `__proto__` key anywhere in the message. JSON.parse creates such keys as
 * plain properties; they turn into prototype assignments the moment any code copies
 * the object with assignment semantics, so they never travel further.
 */
function findProtoKey(root: object): string | undefined {
  const path = protoKeyPath(root, 0);
  return path === undefined ? undefined : path === '' ? 'the top level' : path;
}

/**
 * Depth-first search for the object that holds a `__proto__` key; returns its path
 * ('' for `value` itself). The path string is only built on the way back from a hit.
 */
function protoKeyPath(value: object, depth: number): string | undefined {
  if (Object.hasOwn(value, '__proto__')) return '';
  if (depth >= MAX_DEPTH) return `(nested deeper than ${MAX_DEPTH} levels)`;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const item: unknown = value[i];
      if (typeof item !== 'object' || item === null) continue;
      const hit = protoKeyPath(item, depth + 1);
      if (hit !== undefined) return join(`[${i}]`, hit);
    }
    return undefined;
  }
  for (const key in value) {
    const item: unknown = (value as Record<string, unknown>)[key];
    if (typeof item !== 'object' || item === null) continue;
    const hit = protoKeyPath(item, depth + 1);
    if (hit !== undefined) return join(key, hit);
  }
  return undefined;
}

function join(head: string, tail: string): string {
  if (tail === '') return head;
  return tail.startsWith('[') || tail.startsWith('(') ? `${head}${tail}` : `${head}.${tail}`;
}

function kindOf(value: unknown, quote = false): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return quote ? JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value) : 'a string';
  if (typeof value === 'number' || typeof value === 'boolean') return quote ? String(value) : `a ${typeof value}`;
  if (value === undefined) return 'nothing';
  return `a${typeof value === 'object' ? 'n' : ''} ${typeof value}`;
}
