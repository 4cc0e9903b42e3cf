/**
 * createFetch(): a `fetch` for the SDK's StreamableHTTPClientTransport (v1 and v2) on an
 * undici Agent — pooled keep-alive connections, optional pipelining and HTTP/2 — that
 *
 *   - turns retryable HTTP failures (408, 429, 5xx) into a TransportError carrying the
 *     status and Retry-After, which the SDK passes through `send()` unchanged, so the
 *     stack's `retry` sees them (and honours Retry-After);
 *   - accepts compressed responses (undici decodes zstd, br, gzip, deflate);
 *   - compresses request bodies once the server has said it accepts them: a server
 *     lists the codings it can read in an `Accept-Encoding` response header (RFC 7694),
 *     as mcp-layers/http's server does. Until then, and for servers that never say so,
 *     bodies go as identity; a 415 to a compressed body makes it retry uncompressed
 *     (a 415 means the body was not processed) and stop compressing for that origin.
 *
 *   const fetch = createFetch({ connections: 16 });
 *   new StreamableHTTPClientTransport(url, { fetch });
 */
import { Agent, type Dispatcher, fetch as undiciFetch } from 'undici';

import { EventBus } from '../../core/events.ts';
import { AVAILABLE_ENCODINGS, encodingsOption } from '../../core/wire.ts';
import { acceptedEncodings, compressBuffer } from '../encoding.ts';
import { booleanOption, durationOption, integerOption, invalidOption, optionsObject, settingsObject } from '../../core/options.ts';
import { type CompressionSettings, type Encoding, EventFanout, WIRE_CONTROL, type WireControl } from '../../core/wire.ts';
import { httpStatusError, isRetryableStatus } from './status.ts';

export interface FetchCompressionOptions {
  /** Codings for request bodies, most preferred first. Default: zstd, br, gzip (those this Node has). */
  encodings?: readonly Encoding[];
  /** Bodies smaller than this many bytes go uncompressed. Default 1024. */
  minBytes?: number;
  /** Compress request bodies (when the server accepts it). Default true. */
  requests?: boolean;
  /** Ask for compressed responses. Default true. */
  responses?: boolean;
}

export interface CreateFetchOptions {
  /** Most connections per origin. Default 64 (each in-flight SSE response holds one). */
  connections?: number;
  /** Requests pipelined per connection. Default 1: an SSE response would block what is pipelined behind it. */
  pipelining?: number;
  /** How long an idle connection is kept (servers' Keep-Alive hints win when shorter). Default 4000 ms. */
  keepAliveTimeoutMs?: number;
  /** Negotiate HTTP/2 over TLS (ALPN). Default false. */
  allowH2?: boolean;
  /** Time to the response headers. Default 300 000 ms. */
  headersTimeoutMs?: number;
  /** Longest silence inside a body. Default 0 (none): SSE streams are quiet for long stretches. */
  bodyTimeoutMs?: number;
  /** `true`/`false`, or settings. Default on: responses always, request bodies once the server accepts them. */
  compression?: boolean | FetchCompressionOptions;
  /** Throw a TransportError (status, Retry-After) for 408, 429 and retryable 5xx. Default true. */
  statusErrors?: boolean;
  /** TLS options for new connections (`ca`, `cert`, `key`...); verification stays on unless `rejectUnauthorized: false`. */
  connect?: Agent.Options['connect'];
  /** Use this undici dispatcher instead of creating an Agent (then the pool options above must be left out). */
  dispatcher?: Dispatcher;
  /** Where `wire` and `bytes-compressed` are published (the compression layer adds the wrapped transport's bus). */
  events?: EventBus;
}

export type FetchInput = string | URL | Request;

export interface McpFetch {
  (input: FetchInput, init?: RequestInit): Promise<Response>;
  /** The undici dispatcher behind it. */
  readonly dispatcher: Dispatcher;
  readonly events: EventBus;
  /** Closes the Agent's connections (only when createFetch created it). */
  close(): Promise<void>;
  readonly [WIRE_CONTROL]: WireControl;
}

const DEFAULT_REQUEST_ENCODINGS: readonly Encoding[] = ['zstd', 'br', 'gzip'];
const RESPONSE_CODINGS = AVAILABLE_ENCODINGS.join(', ');

export function createFetch(options?: CreateFetchOptions): McpFetch {
  const o = optionsObject(options, 'createFetch', [
    'connections',
    'pipelining',
    'keepAliveTimeoutMs',
    'allowH2',
    'headersTimeoutMs',
    'bodyTimeoutMs',
    'compression',
    'statusErrors',
    'connect',
    'dispatcher',
    'events',
  ]);
  const ownAgent = o.dispatcher === undefined;
  if (!ownAgent) {
    for (const key of ['connections', 'pipelining', 'keepAliveTimeoutMs', 'allowH2', 'headersTimeoutMs', 'bodyTimeoutMs', 'connect'] as const) {
      if (o[key] !== undefined) throw invalidOption(`createFetch.${key}`, 'to be left out when createFetch.dispatcher is given (configure your dispatcher)', o[key]);
    }
  }
  const dispatcher: Dispatcher =
    o.dispatcher ??
    new Agent({
      connections: integerOption('createFetch.connections', o.connections, 64, 1),
      pipelining: integerOption('createFetch.pipelining', o.pipelining, 1, 0, 128),
      keepAliveTimeout: durationOption('createFetch.keepAliveTimeoutMs', o.keepAliveTimeoutMs, 4000, 1),
      allowH2: booleanOption('createFetch.allowH2', o.allowH2, false),
      headersTimeout: durationOption('createFetch.headersTimeoutMs', o.headersTimeoutMs, 300_000, 0),
      bodyTimeout: durationOption('createFetch.bodyTimeoutMs', o.bodyTimeoutMs, 0, 0),
      ...(o.connect === undefined ? {} : { connect: o.connect }),
    });
  const statusErrors = booleanOption('createFetch.statusErrors', o.statusErrors, true);
  let requestCompression: CompressionSettings | undefined = { encodings: DEFAULT_REQUEST_ENCODINGS.filter((e) => AVAILABLE_ENCODINGS.includes(e)), minBytes: 1024 };
  let responseCompression = true;
  if (o.compression === false) {
    requestCompression = undefined;
    responseCompression = false;
  } else if (o.compression !== undefined && o.compression !== true) {
    const c = settingsObject('createFetch.compression', o.compression, ['encodings', 'minBytes', 'requests', 'responses']);
    const settings = {
      encodings: encodingsOption('createFetch.compression.encodings', c['encodings'], DEFAULT_REQUEST_ENCODINGS),
      minBytes: integerOption('createFetch.compression.minBytes', c['minBytes'], 1024, 0),
    };
    requestCompression = booleanOption('createFetch.compression.requests', c['requests'], true) ? settings : undefined;
    responseCompression = booleanOption('createFetch.compression.responses', c['responses'], true);
  }
  if (o.events !== undefined && !(o.events instanceof EventBus)) throw invalidOption('createFetch.events', 'an EventBus', o.events);
  const events = o.events ?? new EventBus();
  const fanout = new EventFanout(events);
  /** origin → codings the server said it reads (learned from its responses). */
  const accepted = new Map<string, Set<Encoding>>();
  /** Origins that answered 415 to a compressed body. */
  const refused = new Set<string>();

  const mcpFetch = async (input: FetchInput, init: RequestInit = {}): Promise<Response> => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const method = (init.method ?? (input instanceof Request ? input.method : 'GET')).toUpperCase();
    const origin = originOf(url);
    const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined));
    // undici only offers gzip/deflate over plain http; it decodes zstd and br just as well.
    if (!headers.has('accept-encoding')) headers.set('accept-encoding', responseCompression ? RESPONSE_CODINGS : 'identity');
    const body = init.body;
    let sent: string | Buffer | undefined = typeof body === 'string' ? body : undefined;
    let encoding: Encoding | undefined;
    if (requestCompression !== undefined && typeof body === 'string' && body.length >= requestCompression.minBytes && !headers.has('content-encoding') && !refused.has(origin)) {
      const peer = accepted.get(origin);
      encoding = peer === undefined ? undefined : requestCompression.encodings.find((e) => peer.has(e));
      if (encoding !== undefined) {
        const plain = Buffer.from(body);
        const packed = await compressBuffer(encoding, plain);
        if (packed.length < plain.length) {
          headers.set('content-encoding', encoding);
          sent = packed;
          if (fanout.has('bytes-compressed')) fanout.emit('bytes-compressed', { encoding, direction: 'outbound', before: plain.length, after: packed.length });
        } else {
          encoding = undefined;
        }
      }
    }
    const request = (payload: RequestInit["body"], requestHeaders: Headers) =>
      undiciFetch(input instanceof Request ? input.url : url, {
        ...(init as object),
        method,
        headers: requestHeaders,
        ...(payload === undefined ? {} : { body: payload }),
        dispatcher,
      } as Parameters<typeof undiciFetch>[1]) as unknown as Promise<Response>;

    let response = await request(sent ?? body, headers);
    if (encoding !== undefined && response.status === 415) {
      // The server did not read the body: safe to send it again, as identity, and stop compressing for it.
      refused.add(origin);
      await response.body?.cancel().catch(() => {});
      headers.delete('content-encoding');
      sent = body as string;
      encoding = undefined;
      response = await request(sent, headers);
    }
    learn(origin, response.headers.get('accept-encoding'));
    if (fanout.has('wire')) {
      if (sent !== undefined) fanout.emit('wire', { direction: 'outbound', bytes: Buffer.byteLength(sent), encoding: encoding ?? 'identity' });
      const length = Number(response.headers.get('content-length'));
      if (Number.isFinite(length) && length > 0) fanout.emit('wire', { direction: 'inbound', bytes: length, encoding: response.headers.get('content-encoding') ?? 'identity' });
    }
    if (statusErrors && isRetryableStatus(response.status)) {
      const text = await readSnippet(response);
      throw httpStatusError(method, url, response.status, response.statusText, response.headers.get('retry-after'), text);
    }
    return response;
  };

  function learn(origin: string, header: string | null): void {
    if (header === null) return;
    const codings = acceptedEncodings(header);
    if (codings.size > 0) accepted.set(origin, codings);
    else accepted.delete(origin);
  }

  const control: WireControl = {
    kind: 'http-client',
    acceptsBatches: true,
    compress(settings) {
      // Responses stay negotiated by Accept-Encoding; the layer tunes request bodies.
      const encodings = settings.encodings.filter((e) => AVAILABLE_ENCODINGS.includes(e));
      requestCompression = encodings.length === 0 ? undefined : { encodings, minBytes: settings.minBytes };
    },
    observe: (bus) => fanout.add(bus),
  };
  return Object.assign(mcpFetch, {
    dispatcher,
    events,
    close: async () => {
      if (ownAgent) await dispatcher.close();
    },
    [WIRE_CONTROL]: control,
  }) as McpFetch;
}

function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url;
  }
}

/** At most a few KiB of an error body, for the message; the rest is discarded. */
async function readSnippet(response: Response): Promise<string> {
  const reader = response.body?.getReader();
  if (reader === undefined) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    while (size < 4096) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
      size += value.length;
    }
  } catch {
    // a broken error body still leaves the status to report
  } finally {
    reader.cancel().catch(() => {});
  }
  return Buffer.concat(chunks).toString('utf8');
}
