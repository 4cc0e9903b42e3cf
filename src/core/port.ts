/**
 * What the exchange tables need from the wrapped transport: a way to the wire, a way
 * to the application, and a place to report. Keeps outbound.ts and inbound.ts free of
 * lifecycle concerns.
 */
import type { Session } from './context.ts';
import type { Order, Slot } from './order.ts';
import type { JSONRPCMessage } from './jsonrpc.ts';
import type { WireWrite } from './layer.ts';
import type { MessageExtraInfo } from './transport.ts';

export interface Port {
  readonly session: Session;
  /** Keeps what the peer sent in wire order on its way to the application. */
  readonly inbound: Order;
  /** Keeps what the application sent in send() order on its way to the wire. */
  readonly outbound: Order;
  /** Writes to the inner transport through every wire decoration. */
  readonly write: WireWrite;
  /** Writes when `slot`'s turn in the outbound order comes; settles with the write. */
  writeInOrder(slot: Slot, ...args: Parameters<WireWrite>): Promise<void>;
  /** Hands a message to the application's `onmessage` (errors it throws go to onerror). */
  deliver(message: JSONRPCMessage, extra: MessageExtraInfo | undefined): void;
  /**
   * True when a notification reached the application in this run of the microtask queue.
   * The SDKs handle a notification one microtask after they receive it but a response at
   * once: a response delivered right behind its progress would overtake it there.
   */
  notifiedThisTurn(): boolean;
  /** Reports to the application's `onerror`. */
  report(error: unknown): void;
  /** True when cancelling means closing the request's own stream, not sending `notifications/cancelled`. */
  cancelsByClosingStream(): boolean;
}
