/**
 * A scripted peer and a recording application for driving the core (and, through
 * layer-stack.ts, the layers) through exact interleavings. The peer is a test double on purpose: a real server cannot be made to
 * answer late, twice, or with ids it never received, and these tests need exactly that.
 */
import type { JSONRPCMessage, JSONRPCRequest, JSONRPCResponse } from '#core/jsonrpc.ts';
import type { MessageExtraInfo, Transport, TransportSendOptions } from '#core/transport.ts';

/** The far end of the wire, driven by the test. */
export class ScriptedPeer implements Transport {
  onmessage?: (message: JSONRPCMessage, extra?: MessageExtraInfo) => void;
  onerror?: (error: Error) => void;
  onclose?: () => void;
  onconnectionlost?: (error: Error) => void;
  /** Everything that reached the wire, in order. */
  readonly wire: JSONRPCMessage[] = [];
  readonly sendOptions: Array<TransportSendOptions | undefined> = [];
  /** Messages whose send() was made to fail. */
  readonly failedWrites: JSONRPCMessage[] = [];
  /** How many of the next sends reject (before anything is written). */
  failSends = 0;
  closed = false;
  started = false;

  async start(): Promise<void> {
    this.started = true;
  }

  async send(message: JSONRPCMessage, options?: TransportSendOptions): Promise<void> {
    if (this.closed) throw new Error('Not connected');
    if (this.failSends > 0) {
      this.failSends--;
      this.failedWrites.push(message);
      throw Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' });
    }
    this.wire.push(message);
    this.sendOptions.push(options);
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.onclose?.();
  }

  /** The peer sends something; whatever the stack does, it must not throw back at us. */
  deliver(message: unknown, extra?: MessageExtraInfo): void {
    this.onmessage?.(message as JSONRPCMessage, extra);
  }

  /** Requests (not notifications) the peer has received, in order. */
  requests(): JSONRPCRequest[] {
    return this.wire.filter((m): m is JSONRPCRequest => 'method' in m && 'id' in m && m.id !== undefined);
  }

  responses(): JSONRPCResponse[] {
    return this.wire.filter((m): m is JSONRPCResponse => !('method' in m));
  }
}

/** The application's side: records what it is given. */
export class RecordingApp {
  readonly received: JSONRPCMessage[] = [];
  readonly errors: Error[] = [];
  closes = 0;
  readonly transport: Transport;

  constructor(transport: Transport) {
    this.transport = transport;
    transport.onmessage = (message) => this.received.push(message);
    transport.onerror = (error) => this.errors.push(error);
    transport.onclose = () => this.closes++;
  }

  responsesFor(id: string | number): JSONRPCResponse[] {
    return this.received.filter((m): m is JSONRPCResponse => !('method' in m) && m.id === id);
  }

  inboundRequests(): JSONRPCRequest[] {
    return this.received.filter((m): m is JSONRPCRequest => 'method' in m && 'id' in m && m.id !== undefined);
  }
}

/** Lets every queued microtask and one turn of the event loop run. */
export const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));
