/**
 * The structural MCP Transport contract, as the SDKs (v1 1.32.x, v2 2.4.x) define it.
 *
 * Callbacks are declared with method syntax on purpose: TypeScript compares method
 * parameters bivariantly, so an SDK transport (whose `onmessage` takes the SDK's own
 * `MessageExtraInfo`) is accepted by `wrap()`, and a wrapped transport is accepted by
 * the SDK's `Client.connect()` / `McpServer.connect()`, without importing SDK types.
 */
import type { JSONRPCMessage, RequestId } from './jsonrpc.ts';

/**
 * The first protocol version whose requests stand alone: each carries its own context
 * (nothing to replay on a new connection) on its own stream, cancelled by closing it.
 * Versions are dates, so `version >= STATELESS_PROTOCOL_VERSION` compares them.
 */
export const STATELESS_PROTOCOL_VERSION = '2026-07-28';

/** Options for one outbound message. Every field is passed through to the inner transport. */
export interface TransportSendOptions {
  /** The inbound request this message belongs to (routes it to the right HTTP stream). */
  relatedRequestId?: RequestId | undefined;
  /** Resume a long-running request from this token (Streamable HTTP resumability). */
  resumptionToken?: string | undefined;
  /** Called when the resumption token changes. */
  onresumptiontoken?: ((token: string) => void) | undefined;
  /** Aborts this message's own HTTP request (2026-07-28 per-request streams). */
  requestSignal?: AbortSignal | undefined;
  /** Called when this message's per-request stream ends without being aborted. */
  onRequestStreamEnd?: (() => void) | undefined;
  /** Extra HTTP headers for this message's own request (per-request-stream transports). */
  headers?: Readonly<Record<string, string>> | undefined;
  /** Anything else a custom transport understands is passed through untouched. */
  [option: string]: unknown;
}

/** Out-of-band information a transport attaches to an inbound message. Passed through untouched. */
export interface MessageExtraInfo {
  /** v1: the HTTP request's headers and URL. */
  requestInfo?: unknown;
  /** v2: the original HTTP `Request`. */
  request?: unknown;
  /** Authentication information when the transport authenticated the message. */
  authInfo?: unknown;
  /** v2: protocol-era classification made at the edge. */
  classification?: unknown;
  closeSSEStream?: (() => void) | undefined;
  closeStandaloneSSEStream?: (() => void) | undefined;
}

export interface Transport {
  start(): Promise<void>;
  send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void>;
  close(): Promise<void>;
  onclose?(): void;
  onerror?(error: Error): void;
  onmessage?(message: JSONRPCMessage, extra?: MessageExtraInfo): void;
  sessionId?: string | undefined;
  setProtocolVersion?(version: string): void;
  setSupportedProtocolVersions?(versions: string[]): void;
  /** True when the transport opens one underlying request per outbound request (HTTP). */
  readonly hasPerRequestStream?: boolean | undefined;
  /**
   * mcp-layers extension, optional: a transport that reconnects on its own calls this when
   * the connection dropped and requests in flight on it will never be answered. The
   * wrapped transport fails those attempts with a retryable ConnectionClosedError (so
   * `retry` re-sends the idempotent ones) without ending the session.
   */
  onconnectionlost?(error: Error): void;
}
