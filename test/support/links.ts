/**
 * In-process links between a client and a server: the SDKs' own InMemoryTransport
 * pairs, and a lossy link that loses a chosen response the way a dropped connection
 * would.
 */
import { InMemoryTransport as V2InMemoryTransport } from '@modelcontextprotocol/server';
import { InMemoryTransport as V1InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { JSONRPCMessage, JSONRPCRequest, JSONRPCResponse } from '#core/jsonrpc.ts';
import type { MessageExtraInfo, Transport, TransportSendOptions } from '#core/transport.ts';

/** A linked [client side, server side] pair of the given SDK's InMemoryTransport. */
export function linkedPair(sdk: 'v1' | 'v2'): [Transport, Transport] {
  return sdk === 'v1' ? V1InMemoryTransport.createLinkedPair() : V2InMemoryTransport.createLinkedPair();
}

/** Decides whether the link loses a response; `request` is the wire request it answers. */
export type DropRule = (response: JSONRPCResponse, request: JSONRPCRequest | undefined) => boolean;

/**
 * Sits between a wrapped transport and its inner transport. Records every message the
 * stack puts on the wire, and loses the responses `drop` selects: the response never
 * reaches the stack, and — like a reconnecting transport whose connection dropped —
 * the link then reports `onconnectionlost`, so the attempts in flight fail with a
 * retryable error instead of hanging.
 */
export class LossyLink implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage, extra?: MessageExtraInfo) => void;
  onconnectionlost?: (error: Error) => void;

  /** Every message written to the wire, in order. */
  readonly wire: JSONRPCMessage[] = [];
  /** The responses that were lost. */
  readonly dropped: JSONRPCResponse[] = [];
  /** Aborts (with the given reason) when the first response is lost. */
  readonly #lost = new AbortController();
  readonly #inner: Transport;
  readonly #drop: DropRule;
  readonly #reportLoss: boolean;

  constructor(inner: Transport, drop: DropRule, options: { reportLoss?: boolean } = {}) {
    this.#inner = inner;
    this.#drop = drop;
    this.#reportLoss = options.reportLoss ?? true;
  }

  /** Aborts when a response is lost: for layers that abandon an attempt on their own. */
  get lost(): AbortSignal {
    return this.#lost.signal;
  }

  async start(): Promise<void> {
    this.#inner.onmessage = (message, extra) => {
      if (!('method' in message) && this.#drop(message, this.#requestFor(message))) {
        this.dropped.push(message);
        this.#lost.abort(new Error(`the link lost the response to wire id ${String(message.id)}`));
        if (this.#reportLoss) this.onconnectionlost?.(new Error('the link dropped a response'));
        return;
      }
      this.onmessage?.(message, extra);
    };
    this.#inner.onerror = (error) => this.onerror?.(error);
    this.#inner.onclose = () => this.onclose?.();
    await this.#inner.start();
  }

  send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    this.wire.push(JSON.parse(JSON.stringify(message)) as JSONRPCMessage);
    return this.#inner.send(message, options);
  }

  close(): Promise<void> {
    return this.#inner.close();
  }

  #requestFor(response: JSONRPCResponse): JSONRPCRequest | undefined {
    return this.wire.find((m): m is JSONRPCRequest => 'method' in m && 'id' in m && m.id === response.id);
  }
}

/** Drops only the first response that `select` matches. */
export function firstMatching(select: DropRule): DropRule {
  let done = false;
  return (response, request) => {
    if (done || !select(response, request)) return false;
    done = true;
    return true;
  };
}

/** Selects responses to `tools/call` of the named tool. */
export function toolCall(name: string): DropRule {
  return (_response, request) => request?.method === 'tools/call' && request.params?.['name'] === name;
}
