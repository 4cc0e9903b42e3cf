/**
 * batching({ maxMessages, maxDelayMs }): coalesces outbound messages into JSON-RPC arrays.
 *
 * Messages written within `maxDelayMs` of each other (by default, within the same turn
 * of the event loop) go to the peer as one array of at most `maxMessages`: one WebSocket
 * frame, one HTTP POST. Each message's write resolves when its array was written.
 *
 * Where it applies — be exact, peers reject what the protocol does not allow:
 *   - the transport must carry arrays: mcp-layers/ws transports, the SDK's Streamable
 *     HTTP client transport (the SDK's HTTP servers accept up to 100 per array). Any
 *     other transport (stdio, SSE, an HTTP server transport) is refused at wrap() time;
 *   - the negotiated protocol must have batching: JSON-RPC batches exist in MCP
 *     2025-03-26 only (added there, removed in 2025-06-18; not in 2024-11-05 nor in
 *     2026-07-28). Until a version is negotiated, and in every other version, messages
 *     pass through one by one. `initialize` is never batched (the spec forbids it).
 * Messages with send options other than `relatedRequestId` (resumption tokens, headers) go
 * alone, after whatever was pending, so order is kept. Per-request stream options (the v2
 * HTTP client's `requestSignal` / `onRequestStreamEnd`) are era-dependent: in 2025-03-26
 * cancellation is `notifications/cancelled`, so a batched request does not abort its
 * shared POST; when the batch's response stream ends, every request in it still waiting
 * is told (each fails with a retryable stream-ended error, as it would alone).
 */
import { ConnectionClosedError } from '../src/core/errors.ts';
import type { JSONRPCMessage } from '../src/core/jsonrpc.ts';
import type { Layer, LayerHost, WireWrite } from '../src/core/layer.ts';
import { durationOption, integerOption, invalidOption, optionsObject } from '../src/core/options.ts';
import type { TransportSendOptions } from '../src/core/transport.ts';
import { wireCapabilities } from '../src/core/wire.ts';

declare module '../src/core/events.ts' {
  interface LayerEvents {
    /** batching wrote `size` messages as one JSON-RPC array (`bytes` when the transport counts them). */
    'batch-flushed': { size: number; bytes?: number };
  }
}

export interface BatchingOptions {
  /** Most messages in one array. Default 32. */
  maxMessages?: number;
  /** How long a message may wait for company, in ms. 0 (default): until the end of the current turn of the event loop. */
  maxDelayMs?: number;
}

/** The protocol versions whose peers must accept JSON-RPC batches. */
const BATCHING_PROTOCOL_VERSIONS: readonly string[] = ['2025-03-26'];

export function batching(options?: BatchingOptions): Layer {
  const o = optionsObject(options, 'batching', ['maxMessages', 'maxDelayMs']);
  const maxBatch = integerOption('batching.maxMessages', o.maxMessages, 32, 1);
  const maxDelayMs = durationOption('batching.maxDelayMs', o.maxDelayMs, 0);
  return {
    name: 'batching',
    handle: (_ctx, next) => next(),
    attach(host: LayerHost) {
      const caps = wireCapabilities(host.inner);
      if (!caps.acceptsBatches) {
        throw new TypeError(
          `batching: ${caps.transport} cannot carry JSON-RPC batches (its peer reads one message at a time); batching works over mcp-layers/ws transports and the SDK's Streamable HTTP client transport`,
        );
      }
      if (caps.maxBatch !== undefined && maxBatch > caps.maxBatch) {
        throw invalidOption('batching.maxMessages', `at most ${caps.maxBatch} over ${caps.transport} (the SDK's HTTP servers refuse longer batches)`, maxBatch);
      }
      const batcher = new Batcher(host, maxBatch, maxDelayMs);
      host.decorateWrite((write) => batcher.decorate(write));
      return () => batcher.stop();
    },
  };
}

/** Send options a batched message may carry (see the header comment). */
const BATCHABLE_OPTIONS = new Set(['relatedRequestId', 'requestSignal', 'onRequestStreamEnd']);

interface Pending {
  readonly message: JSONRPCMessage;
  readonly onStreamEnd: (() => void) | undefined;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

class Batcher {
  readonly #host: LayerHost;
  readonly #maxBatch: number;
  readonly #maxDelayMs: number;
  #pending: Pending[] = [];
  #cancelTimer: (() => void) | undefined;
  #write: WireWrite | undefined;
  #stopped = false;

  constructor(host: LayerHost, maxBatch: number, maxDelayMs: number) {
    this.#host = host;
    this.#maxBatch = maxBatch;
    this.#maxDelayMs = maxDelayMs;
  }

  decorate(write: WireWrite): WireWrite {
    this.#write = write;
    return (message, sendOptions) => {
      if (this.#stopped || Array.isArray(message) || !this.#batchable(message, sendOptions)) {
        this.#flush();
        return write(message, sendOptions);
      }
      const onStreamEnd = sendOptions?.onRequestStreamEnd;
      return new Promise<void>((resolve, reject) => {
        this.#pending.push({ message, onStreamEnd: typeof onStreamEnd === 'function' ? (onStreamEnd as () => void) : undefined, resolve, reject });
        if (this.#pending.length >= this.#maxBatch) this.#flush();
        else this.#arm();
      });
    };
  }

  stop(): void {
    this.#stopped = true;
    this.#disarm();
    const pending = this.#pending;
    this.#pending = [];
    const error = new ConnectionClosedError('batching: the transport closed before the batch was written', { neverSent: true, layer: 'batching' });
    for (const p of pending) p.reject(error);
  }

  #batchable(message: JSONRPCMessage, options: TransportSendOptions | undefined): boolean {
    const version = this.#host.session.protocolVersion;
    if (version === undefined || !BATCHING_PROTOCOL_VERSIONS.includes(version)) return false;
    if ('method' in message && message.method === 'initialize') return false;
    if (options !== undefined) {
      for (const key in options) if (!BATCHABLE_OPTIONS.has(key) && options[key] !== undefined) return false;
    }
    return true;
  }

  #arm(): void {
    if (this.#cancelTimer !== undefined) return;
    if (this.#maxDelayMs === 0) {
      const immediate = setImmediate(() => this.#flush());
      immediate.unref();
      this.#cancelTimer = () => clearImmediate(immediate);
    } else {
      const timeout = setTimeout(() => this.#flush(), this.#maxDelayMs);
      timeout.unref();
      this.#cancelTimer = () => clearTimeout(timeout);
    }
  }

  #disarm(): void {
    const cancel = this.#cancelTimer;
    this.#cancelTimer = undefined;
    cancel?.();
  }

  #flush(): void {
    this.#disarm();
    const batch = this.#pending;
    if (batch.length === 0) return;
    this.#pending = [];
    const write = this.#write as WireWrite;
    const payload = batch.length === 1 ? (batch[0] as Pending).message : batch.map((p) => p.message);
    const events = this.#host.events;
    if (events.has('batch-flushed')) events.emit('batch-flushed', { size: batch.length });
    const streamEnds = batch.flatMap((p) => (p.onStreamEnd === undefined ? [] : [p.onStreamEnd]));
    const options =
      streamEnds.length === 0
        ? undefined
        : {
            onRequestStreamEnd: () => {
              for (const end of streamEnds) end();
            },
          };
    let written: Promise<void>;
    try {
      written = write(payload, options);
    } catch (error) {
      written = Promise.reject(error);
    }
    written.then(
      () => {
        for (const p of batch) p.resolve();
      },
      (error: unknown) => {
        for (const p of batch) p.reject(error);
      },
    );
  }
}
