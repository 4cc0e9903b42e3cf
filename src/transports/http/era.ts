/**
 * Which protocol era one HTTP request to the MCP endpoint belongs to, decided once, when
 * its body has been parsed: a 2025-era session's (`initialize`, an `Mcp-Session-Id`, or
 * no 2026 claim at all — served exactly as before), a self-contained 2026-07-28 exchange
 * (no session: the request carries its own context in `params._meta`), or a request
 * refused for what its headers and body say.
 *
 * The body decides, the headers cross-check, as the 2026-07-28 Streamable HTTP binding
 * says and as the SDK's own endpoint does (v2 `classifyInboundRequest` and
 * `validateStandardRequestHeaders`): a request whose `_meta` names
 * `io.modelcontextprotocol/protocolVersion` 2026-07-28 (or later) must also carry it in
 * `MCP-Protocol-Version`, its method in `Mcp-Method`, and — for the methods that name a
 * tool, prompt, resource or task — that name in `Mcp-Name` (Base64 in `=?base64?…?=` when
 * it is not plain ASCII). A disagreement is HTTP 400 with `-32020` (the spec's
 * HEADER_MISMATCH), naming the header and what the body says: intermediaries route by
 * these headers without reading bodies, so a request whose headers lie must not pass.
 * The era has no GET stream and no session to DELETE: those are 405.
 */
import type { IncomingHttpHeaders } from 'node:http';
import { ErrorCode } from '../../core/errors.ts';
import type { JSONRPCNotification, JSONRPCRequest, RequestId } from '../../core/jsonrpc.ts';
import { STATELESS_PROTOCOL_VERSION } from '../../core/transport.ts';

/** The `_meta` key of a 2026-07-28 request that names its protocol version. */
export const PROTOCOL_VERSION_META_KEY = 'io.modelcontextprotocol/protocolVersion';

/** The spec's HEADER_MISMATCH: a standard header disagrees with the body (HTTP 400). */
export const HEADER_MISMATCH = -32020;
/** JSON-RPC invalid params: the envelope is missing or malformed (HTTP 400, as the SDK's endpoint answers). */
const INVALID_PARAMS = -32602;

/** The methods whose `Mcp-Name` header must carry a body field, and which. */
const NAME_SOURCE: Readonly<Record<string, string>> = {
  'tools/call': 'name',
  'prompts/get': 'name',
  'resources/read': 'uri',
  'tasks/get': 'taskId',
  'tasks/update': 'taskId',
  'tasks/cancel': 'taskId',
};

export interface EraRefusal {
  readonly status: number;
  readonly code: number;
  readonly message: string;
  /** The request's id when it has one: an SDK client delivers the error as that request's answer. */
  readonly id: RequestId | null;
  readonly data?: Record<string, unknown>;
  readonly headers?: Record<string, string>;
}

export type EraRoute =
  | { readonly era: 'session' }
  | { readonly era: 'stateless'; readonly message: JSONRPCRequest | JSONRPCNotification }
  | ({ readonly era: 'refused' } & EraRefusal);

const SESSION: EraRoute = { era: 'session' };

/** Whether a protocol version string names the 2026-07-28 era or a later one (versions are dates). */
export function isStatelessVersion(version: unknown): version is string {
  return typeof version === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(version) && version >= STATELESS_PROTOCOL_VERSION;
}

/** Whether the request's headers alone say it is a 2026-07-28 exchange (before its body is read). */
export function headersNameStatelessEra(headers: IncomingHttpHeaders): boolean {
  const session = headers['mcp-session-id'];
  return (session === undefined || session === '') && isStatelessVersion(header(headers, 'mcp-protocol-version'));
}

/** The era of one request: `body` is the parsed JSON of a POST, undefined for other methods. */
export function routeEra(method: string | undefined, headers: IncomingHttpHeaders, body: unknown): EraRoute {
  const session = headers['mcp-session-id'];
  if (session !== undefined && session !== '') return SESSION;
  const version = header(headers, 'mcp-protocol-version');
  const headerModern = isStatelessVersion(version);
  if (method !== 'POST') {
    if (!headerModern) return SESSION;
    return refused(405, -32000, `Method Not Allowed: protocol version ${version} has no session and no GET stream; every request is a POST of its own`, null, undefined, { allow: 'POST' });
  }
  if (Array.isArray(body)) {
    const modern = headerModern || body.some((item) => claimOf(item) !== undefined);
    return modern ? refused(400, ErrorCode.InvalidRequest, 'Invalid Request: a JSON-RPC batch cannot carry 2026-07-28 requests; send each request in a POST of its own', null) : SESSION;
  }
  const message = body as { id?: RequestId; method?: unknown; params?: unknown };
  if (typeof message.method !== 'string') return SESSION; // a response: the 2025 eras' (server requests)
  const id = message.id ?? null;
  const claim = claimOf(message);
  const methodName = message.method;
  if (claim === undefined) {
    if (!headerModern) return SESSION;
    if (methodName === 'initialize') {
      return mismatch('MCP-Protocol-Version', version, 'an initialize request (the 2025 handshake) was sent with a 2026-07-28 MCP-Protocol-Version header', id);
    }
    if (message.id === undefined) return methodHeaderCheck(headers, methodName, null) ?? { era: 'stateless', message: message as JSONRPCNotification };
    return refused(400, INVALID_PARAMS, `Invalid params: the MCP-Protocol-Version header names ${version}, but params._meta has no "${PROTOCOL_VERSION_META_KEY}" (the per-request envelope every 2026-07-28 request carries)`, id, {
      envelope: { missing: [PROTOCOL_VERSION_META_KEY] },
    });
  }
  if (typeof claim !== 'string') {
    return refused(400, INVALID_PARAMS, `Invalid params: params._meta["${PROTOCOL_VERSION_META_KEY}"] must be a protocol version string, not ${JSON.stringify(claim) ?? typeof claim}`, id, {
      envelope: { key: PROTOCOL_VERSION_META_KEY },
    });
  }
  if (version !== undefined && version !== claim) {
    return mismatch('MCP-Protocol-Version', version, `params._meta["${PROTOCOL_VERSION_META_KEY}"] names ${claim}`, id);
  }
  // An envelope naming a 2025 version is a 2025-era request that says so.
  if (!isStatelessVersion(claim)) return SESSION;
  if (message.id === undefined) return methodHeaderCheck(headers, methodName, null) ?? { era: 'stateless', message: message as JSONRPCNotification };
  if (version === undefined) return mismatch('MCP-Protocol-Version', undefined, `params._meta["${PROTOCOL_VERSION_META_KEY}"] names ${claim}`, id);
  const methodRefusal = methodHeaderCheck(headers, methodName, id, true);
  if (methodRefusal !== undefined) return methodRefusal;
  const field = Object.hasOwn(NAME_SOURCE, methodName) ? NAME_SOURCE[methodName] : undefined;
  if (field !== undefined) {
    const params = message.params as Record<string, unknown>;
    const bodyValue = params[field];
    const named = header(headers, 'mcp-name');
    if (typeof bodyValue === 'string') {
      const says = `params.${field} is ${JSON.stringify(bodyValue)}`;
      if (named === undefined) return mismatch('Mcp-Name', undefined, says, id);
      const decoded = decodeHeaderValue(named);
      if (decoded === undefined) return mismatch('Mcp-Name', named, `${says}, and the header's =?base64?…?= value is not valid Base64 of UTF-8`, id);
      if (decoded !== bodyValue) return mismatch('Mcp-Name', decoded, says, id);
    }
  }
  return { era: 'stateless', message: message as JSONRPCRequest };
}

/** `Mcp-Method` against the body's method (`required`: a request's must be there). */
function methodHeaderCheck(headers: IncomingHttpHeaders, method: string, id: RequestId | null, required = false): EraRoute | undefined {
  const named = header(headers, 'mcp-method');
  if (named === undefined) return required ? mismatch('Mcp-Method', undefined, `the method is ${method}`, id) : undefined;
  return named === method ? undefined : mismatch('Mcp-Method', named, `the method is ${method}`, id);
}

/** A header, trimmed (the first of a repeated one). */
function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  const first = Array.isArray(value) ? value[0] : value;
  return first === undefined ? undefined : first.trim();
}

/** What `params._meta` claims as the protocol version: undefined when it claims nothing. */
function claimOf(message: unknown): unknown {
  if (typeof message !== 'object' || message === null) return undefined;
  const params = (message as { params?: unknown }).params;
  if (typeof params !== 'object' || params === null) return undefined;
  const meta = (params as { _meta?: unknown })._meta;
  if (typeof meta !== 'object' || meta === null || !Object.hasOwn(meta, PROTOCOL_VERSION_META_KEY)) return undefined;
  return (meta as Record<string, unknown>)[PROTOCOL_VERSION_META_KEY];
}

const SENTINEL_PREFIX = '=?base64?';
const SENTINEL_SUFFIX = '?=';

/** A header value as the client meant it: `=?base64?…?=` is canonical Base64 of UTF-8; undefined when it is not. */
function decodeHeaderValue(value: string): string | undefined {
  if (!value.startsWith(SENTINEL_PREFIX) || !value.endsWith(SENTINEL_SUFFIX) || value.length < SENTINEL_PREFIX.length + SENTINEL_SUFFIX.length) return value;
  const b64 = value.slice(SENTINEL_PREFIX.length, value.length - SENTINEL_SUFFIX.length);
  if (b64.length % 4 !== 0 || !/^[A-Za-z0-9+/]*={0,2}$/.test(b64)) return undefined;
  const bytes = Buffer.from(b64, 'base64');
  if (bytes.toString('base64') !== b64) return undefined;
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
}

function mismatch(name: string, sent: string | undefined, body: string, id: RequestId | null): EraRoute {
  const what = sent === undefined ? `the required ${name} header is absent` : `the ${name} header says ${JSON.stringify(sent)}`;
  return refused(400, HEADER_MISMATCH, `Bad Request: the request headers and body disagree: ${what}, but ${body}`, id, { mismatch: { header: name, sent: sent ?? null, body } });
}

function refused(status: number, code: number, message: string, id: RequestId | null, data?: Record<string, unknown>, headers?: Record<string, string>): EraRoute {
  return { era: 'refused', status, code, message, id, ...(data === undefined ? {} : { data }), ...(headers === undefined ? {} : { headers }) };
}
