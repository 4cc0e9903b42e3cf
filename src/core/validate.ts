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
  /** `id` is set when the message carried a usable id: a request can be answered, a response correlated. */
  | { kind: 'invalid'; problem: string; id: RequestId | undefined };

/**
 * How many levels of nesting a peer's message may have by default, the message object
 * itself being level 1 (`{"result":{"structuredContent":{…}}}` spends three levels on
 * the envelope). The SDKs' schemas set no bound at all, and a plain JSON.parse reads far
 * deeper; what bounds depth in practice is the peers' own JSON libraries (a default
 * Python recursion limit of 1000, serde_json's 128) and our own JSON.stringify, which
 * must still re-encode whatever we pass on (a gateway forwards it) without running out
 * of stack. 1000 passes anything those produce and stays far below that point.
 */
export const DEFAULT_MAX_DEPTH = 1000;

/** Longest path printed in a problem, in characters, before it is cut with `…`. */
const MAX_PATH_CHARS = 120;

/**
 * `deep` (the default, for the peer's bytes) also walks the whole message, refusing
 * `__proto__` keys and nesting deeper than `DEFAULT_MAX_DEPTH` levels (or the number
 * given); `false` is for the application's own messages: the shallow checks only.
 *
 * An invalid message keeps its `id` whenever it had a usable one, so that a refused
 * request can be answered and a refused response can still end the request it answers.
 */
export function classify(value: unknown, deep: boolean | number = true): Classified {
  const kind = messageKind(value, deep);
  if (typeof kind !== 'string') return kind;
  return { kind, message: value } as Classified;
}

export type Invalid = Extract<Classified, { kind: 'invalid' }>;

/**
 * `classify` without the wrapper object, for the core's hot path: the kind of a valid
 * message (the message itself is then of that type), or what is wrong with it.
 */
export function messageKind(value: unknown, deep: boolean | number = true): 'request' | 'notification' | 'response' | Invalid {
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
  if (deep !== false) {
    const unsafe = walk(message, deep === true ? DEFAULT_MAX_DEPTH : deep);
    if (unsafe !== undefined) return invalid(unsafe, id);
  }

  if ('method' in message) {
    const method = message['method'];
    if (typeof method !== 'string' || method === '') {
      return invalid(`"method" must be a non-empty string, got ${kindOf(method, true)}`, id);
    }
    const params = message['params'];
    if (params !== undefined && (typeof params !== 'object' || params === null)) {
      return invalid(`"params" of ${method} must be an object, got ${kindOf(params, true)}`, id);
    }
    return id !== undefined ? 'request' : 'notification';
  }

  const hasResult = 'result' in message;
  const hasError = 'error' in message;
  if (!hasResult && !hasError) {
    return invalid(hasId ? `a message with "id" ${kindOf(rawId, true)} has no "method", "result" or "error"` : 'missing "method" and "id"', id);
  }
  if (hasResult && hasError) return invalid('a response must not carry both "result" and "error"', id);
  if (hasResult) {
    if (id === undefined) return invalid('a result response must carry the request\'s "id"', undefined);
    const result = message['result'];
    if (typeof result !== 'object' || result === null || Array.isArray(result)) {
      return invalid(`"result" must be an object, got ${kindOf(result, true)}`, id);
    }
    return 'response';
  }
  const error = message['error'] as Record<string, unknown> | null;
  if (typeof error !== 'object' || error === null || !Number.isInteger(error['code']) || typeof error['message'] !== 'string') {
    return invalid('"error" must be an object with an integer "code" and a string "message"', id);
  }
  return 'response';
}

function invalid(problem: string, id?: RequestId): Invalid {
  return { kind: 'invalid', problem, id };
}

function isRequestId(value: unknown): value is RequestId {
  return typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value));
}

/** What the walk found: the offending object and how deep it sits. */
interface Finding {
  readonly problem: 'proto' | 'depth';
  readonly at: object;
  readonly level: number;
}

/**
 * Levels the walk goes down by recursion, which is the cheapest way for the shallow
 * messages of real traffic; a subtree below that is walked with a stack of its own, so
 * no depth a peer chooses can overflow ours.
 */
const RECURSION_LEVELS = 64;

/**
 * One walk over the whole message: says what makes it unsafe to pass on, or undefined.
 *
 * - An own `__proto__` key anywhere: JSON.parse creates such keys as plain properties;
 *   they turn into prototype assignments the moment any code copies the object with
 *   assignment semantics, so they never travel further.
 * - Nesting deeper than `maxDepth` levels.
 *
 * The walk keeps no paths (it runs on every message); for a refused message, the path
 * and the real depth are looked up afterwards.
 */
function walk(root: object, maxDepth: number): string | undefined {
  if (Object.hasOwn(root, '__proto__')) return `forbidden "__proto__" key at $`;
  const found = findRecursively(root, 1, maxDepth);
  if (found === undefined) return undefined;
  const path = pathTo(root, found.at, found.level);
  return found.problem === 'proto' ? `forbidden "__proto__" key at ${path}` : `too deep (${depthOf(root)} levels, limit ${maxDepth}) at ${path}`;
}

/** The first finding in or below `container`, which sits `level` levels deep. */
function findRecursively(container: object, level: number, maxDepth: number): Finding | undefined {
  // The iterative walk checks what it finds below `container`, not `container` itself.
  if (level >= RECURSION_LEVELS) return check(container, level, maxDepth) ?? findIteratively(container, level, maxDepth);
  const below = level + 1;
  if (Array.isArray(container)) {
    for (let i = 0; i < container.length; i++) {
      const item: unknown = container[i];
      if (typeof item !== 'object' || item === null) continue;
      if (below > maxDepth) return { problem: 'depth', at: item, level: below };
      const found = (Array.isArray(item) ? check(item, below, maxDepth) : undefined) ?? findRecursively(item, below, maxDepth);
      if (found !== undefined) return found;
    }
    return undefined;
  }
  for (const key in container) {
    // Seen while enumerating: cheaper than asking each object for an own `__proto__`.
    if (key === '__proto__' && Object.hasOwn(container, key)) return { problem: 'proto', at: container, level };
    const item: unknown = (container as Record<string, unknown>)[key];
    if (typeof item !== 'object' || item === null) continue;
    if (below > maxDepth) return { problem: 'depth', at: item, level: below };
    // An array's own non-index keys are not enumerated below: look for one here.
    const found = (Array.isArray(item) ? check(item, below, maxDepth) : undefined) ?? findRecursively(item, below, maxDepth);
    if (found !== undefined) return found;
  }
  return undefined;
}

/** The same walk with a stack of its own, for what lies below RECURSION_LEVELS. */
function findIteratively(start: object, startLevel: number, maxDepth: number): Finding | undefined {
  const pending: object[] = [start];
  const levels: number[] = [startLevel];
  while (pending.length > 0) {
    const container = pending.pop() as Record<string, unknown>;
    const below = (levels.pop() as number) + 1;
    const items: unknown[] = Array.isArray(container) ? container : Object.values(container);
    for (const item of items) {
      if (typeof item !== 'object' || item === null) continue;
      const found = check(item, below, maxDepth);
      if (found !== undefined) return found;
      pending.push(item);
      levels.push(below);
    }
  }
  return undefined;
}

function check(item: object, level: number, maxDepth: number): Finding | undefined {
  if (level > maxDepth) return { problem: 'depth', at: item, level };
  if (Object.hasOwn(item, '__proto__')) return { problem: 'proto', at: item, level };
  return undefined;
}

/** How many levels deep `root` really is (only for a refused message's text). */
function depthOf(root: object): number {
  const pending: object[] = [root];
  const levels: number[] = [1];
  let deepest = 1;
  while (pending.length > 0) {
    const container = pending.pop() as object;
    const level = levels.pop() as number;
    if (level > deepest) deepest = level;
    const items: unknown[] = Array.isArray(container) ? container : Object.values(container);
    for (const item of items) {
      if (typeof item !== 'object' || item === null) continue;
      pending.push(item);
      levels.push(level + 1);
    }
  }
  return deepest;
}

/**
 * The path from `root` to `target`, which sits `level` levels deep (`$.result.list[3]`),
 * cut at MAX_PATH_CHARS. Only for a problem's text: it keeps the path of every open
 * container, which the walk itself does not pay for.
 */
function pathTo(root: object, target: object, level: number): string {
  const containers: object[] = [root];
  // The keys of each open object (undefined for an array) and the next position in it.
  const keyLists: Array<string[] | undefined> = [Array.isArray(root) ? undefined : Object.keys(root)];
  const positions: number[] = [0];
  while (containers.length > 0) {
    const top = containers.length - 1;
    const container = containers[top] as Record<string, unknown>;
    const keys = keyLists[top];
    const position = positions[top] as number;
    if (position >= (keys === undefined ? (container as unknown as unknown[]).length : keys.length)) {
      containers.pop();
      keyLists.pop();
      positions.pop();
      continue;
    }
    positions[top] = position + 1;
    const item = keys === undefined ? (container as unknown as unknown[])[position] : container[keys[position] as string];
    if (item === target) return formatPath(containers.length, keyLists, positions);
    // The target is no deeper than `level`: nothing below that needs a look.
    if (typeof item !== 'object' || item === null || containers.length + 1 >= level) continue;
    containers.push(item);
    keyLists.push(Array.isArray(item) ? undefined : Object.keys(item));
    positions.push(0);
  }
  return '(unknown path)';
}

function formatPath(open: number, keyLists: Array<string[] | undefined>, positions: number[]): string {
  let path = '$';
  for (let i = 0; i < open; i++) {
    const keys = keyLists[i];
    const position = (positions[i] as number) - 1;
    path += keys === undefined ? `[${position}]` : segment(keys[position] as string);
    if (path.length > MAX_PATH_CHARS) return `${path.slice(0, MAX_PATH_CHARS)}…`;
  }
  return path;
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** `.key`, or `["a key"]` when it is not an identifier; a peer's long key is shortened. */
function segment(key: string): string {
  if (IDENTIFIER.test(key)) return `.${key}`;
  return `[${JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}…` : key)}]`;
}

function kindOf(value: unknown, quote = false): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return quote ? JSON.stringify(value.length > 40 ? `${value.slice(0, 40)}…` : value) : 'a string';
  if (typeof value === 'number' || typeof value === 'boolean') return quote ? String(value) : `a ${typeof value}`;
  if (value === undefined) return 'nothing';
  return `a${typeof value === 'object' ? 'n' : ''} ${typeof value}`;
}
