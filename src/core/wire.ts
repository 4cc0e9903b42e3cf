/**
 * What wire-level layers (batching, compression) may learn about, and ask of, the
 * transport they wrap, without importing it.
 *
 * Our transports (mcp-layers/ws, and the `fetch` from mcp-layers/http's createFetch)
 * expose a WireControl under the WIRE_CONTROL symbol. The SDK's Streamable HTTP client
 * transport is recognized structurally: it sends a JSON-RPC array as one POST, and its
 * `fetch` (when it came from createFetch) carries the control.
 */
import zlib from 'node:zlib';

import { EventBus, type LayerEvents } from './events.ts';
import type { Transport } from './transport.ts';
import { invalidOption } from './options.ts';

/** Where a transport keeps its WireControl. `Symbol.for` so that two copies of the package agree. */
export const WIRE_CONTROL: unique symbol = Symbol.for('mcp-layers.wire-control') as never;

/** A content coding: `deflate` is permessage-deflate on WebSocket, the others are HTTP Content-Encodings. */
export type Encoding = 'zstd' | 'br' | 'gzip' | 'deflate';

/** Encodings Node's zlib provides here, best first (zstd exists from Node 22.15 / 23.8). */
export const AVAILABLE_ENCODINGS: readonly Encoding[] = [
  ...(typeof zlib.createZstdCompress === 'function' ? (['zstd'] as const) : []),
  'br',
  'gzip',
  'deflate',
];

/** Every coding an option may name, whether or not this Node has it. */
export const ENCODINGS: readonly Encoding[] = ['zstd', 'br', 'gzip', 'deflate'];

/** Validates a list of encodings; those Node lacks are dropped (so configs port across versions). */
export function encodingsOption(name: string, value: unknown, fallback: readonly Encoding[]): readonly Encoding[] {
  if (value === undefined) return fallback.filter((e) => AVAILABLE_ENCODINGS.includes(e));
  if (!Array.isArray(value) || value.some((e) => !ENCODINGS.includes(e as Encoding))) {
    throw invalidOption(name, `an array of ${ENCODINGS.map((e) => `"${e}"`).join(', ')}`, value);
  }
  return (value as Encoding[]).filter((e, i, all) => AVAILABLE_ENCODINGS.includes(e) && all.indexOf(e) === i);
}

export function isEncoding(value: string): value is Encoding {
  return (ENCODINGS as readonly string[]).includes(value);
}

export interface CompressionSettings {
  /** Encodings allowed, most preferred first. */
  readonly encodings: readonly Encoding[];
  /** Messages (or bodies) smaller than this many bytes go uncompressed. */
  readonly minBytes: number;
}

export interface WireControl {
  /** A label for error messages: `websocket`, `http-client`... */
  readonly kind: string;
  /** True when send() may be given a JSON-RPC array (one frame / one POST). */
  readonly acceptsBatches: boolean;
  /** Turns on (and tunes) the transport's own compression. */
  compress(settings: CompressionSettings): void;
  /** Also publishes the transport's events on `bus`; returns the function that stops it. */
  observe(bus: EventBus): () => void;
}

export interface WireCapabilities {
  /** The inner transport's name, for messages. */
  readonly transport: string;
  readonly acceptsBatches: boolean;
  /** The most messages a peer accepts in one array, when it is known to be bounded. */
  readonly maxBatch: number | undefined;
  /** Native compression and events, when the transport is one of ours. */
  readonly control: WireControl | undefined;
}

/** The SDK's Streamable HTTP server transports reject arrays longer than this. */
export const SDK_HTTP_MAX_BATCH = 100;

export function wireCapabilities(transport: Transport): WireCapabilities {
  const name = transportName(transport);
  const own = controlOf(transport);
  if (own !== undefined) return { transport: name, acceptsBatches: own.acceptsBatches, maxBatch: undefined, control: own };
  if (typeof (transport as { handleRequest?: unknown }).handleRequest === 'function') {
    // An HTTP server transport: McpHttpServer compresses its responses and reads the settings from here.
    return { transport: name, acceptsBatches: false, maxBatch: undefined, control: httpServerControl(innermost(transport)) };
  }
  if (isSdkStreamableHttpClient(transport)) {
    // v1 and v2 keep the `fetch` they were given as `_fetch` (an implementation detail:
    // without it, compression is simply not available through this layer).
    const fetchControl = controlOf((transport as { _fetch?: unknown })._fetch);
    return { transport: name, acceptsBatches: true, maxBatch: SDK_HTTP_MAX_BATCH, control: fetchControl };
  }
  return { transport: name, acceptsBatches: false, maxBatch: undefined, control: undefined };
}

/** Per HTTP server transport: what the compression layer asked for, and where to publish. */
export const httpServerWire = new WeakMap<object, { settings: CompressionSettings | undefined; fanout: EventFanout }>();

function httpServerControl(transport: object): WireControl {
  let wire = httpServerWire.get(transport);
  if (wire === undefined) {
    wire = { settings: undefined, fanout: new EventFanout(new EventBus()) };
    httpServerWire.set(transport, wire);
  }
  const entry = wire;
  return {
    kind: 'http-server',
    acceptsBatches: false,
    compress: (settings) => void (entry.settings = settings),
    observe: (bus) => entry.fanout.add(bus),
  };
}

/** The transport under any number of wrap() layers (they expose it as `inner`). */
export function innermost(transport: object): object {
  let current = transport as { inner?: unknown };
  while (typeof current.inner === 'object' && current.inner !== null) current = current.inner as { inner?: unknown };
  return current;
}

export function controlOf(value: unknown): WireControl | undefined {
  if ((typeof value !== 'object' && typeof value !== 'function') || value === null) return undefined;
  const control = (value as { [WIRE_CONTROL]?: unknown })[WIRE_CONTROL];
  return typeof control === 'object' && control !== null ? (control as WireControl) : undefined;
}

/**
 * The SDK's StreamableHTTPClientTransport (v1 and v2), recognized by shape: it POSTs
 * whatever send() is given as one JSON body (an array included) and has a session to
 * terminate. The SSE client transport posts single messages and has no terminateSession.
 */
function isSdkStreamableHttpClient(transport: Transport): boolean {
  const t = transport as unknown as Record<string, unknown>;
  return typeof t['terminateSession'] === 'function' && typeof t['finishAuth'] === 'function' && typeof t['handleRequest'] !== 'function';
}

export function transportName(transport: unknown): string {
  const name = (transport as { constructor?: { name?: unknown } } | null)?.constructor?.name;
  return typeof name === 'string' && name !== '' && name !== 'Object' ? name : 'a custom transport';
}

/**
 * Publishes events on a transport's own bus and on every bus that observes it (the
 * wrapped transports' buses, via wire layers), each at most once.
 */
export class EventFanout {
  /** The transport's own bus (`transport.events`). */
  readonly primary: EventBus;
  readonly #buses = new Set<EventBus>();

  constructor(primary: EventBus) {
    this.primary = primary;
    this.#buses.add(primary);
  }

  includes(bus: EventBus): boolean {
    return this.#buses.has(bus);
  }

  add(bus: EventBus): () => void {
    if (this.#buses.has(bus)) return () => {};
    this.#buses.add(bus);
    return () => void this.#buses.delete(bus);
  }

  has(type: keyof LayerEvents): boolean {
    for (const bus of this.#buses) if (bus.has(type)) return true;
    return false;
  }

  emit<K extends keyof LayerEvents>(type: K, event: LayerEvents[K]): void {
    for (const bus of this.#buses) bus.emit(type, event);
  }
}
