/**
 * Keeping a connection's credentials fresh when the token travels only in its opening
 * handshake (WebSocket). A server that ends connections whose token expired (close
 * code 4401) would otherwise cut requests in flight at every expiry.
 *
 * Before the token the connection was opened with expires (at its `refreshAt`), the
 * renewal gets a newer token, stops new exchanges from starting, waits for the ones in
 * flight to finish (until the old token's `usableUntil` at most: past that the server
 * would cut them anyway), asks the transport to reconnect — it sends the new token in
 * the new handshake — and lets the held exchanges go.
 *
 * Timers are unref'd and cleared on close; everything runs under fake timers.
 */
import type { AccessToken } from './access-token.ts';
import { untilAborted } from '../../src/layer-kit/sleep.ts';
import type { TokenSource } from './token-source.ts';

/** A transport that can replace its connection (mcp-layers/ws WebSocketClientTransport). */
export interface Reconnectable {
  reconnect(reason?: string): Promise<void>;
}

export function isReconnectable(value: unknown): value is Reconnectable {
  return typeof (value as Reconnectable | null)?.reconnect === 'function';
}

export class ConnectionRenewal {
  readonly #source: TokenSource;
  readonly #transport: Reconnectable;
  #connectedWith: AccessToken | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #inflight = 0;
  #idle: (() => void) | undefined;
  /** Set while renewing: exchanges wait for it before they start. */
  #gate: Promise<void> | undefined;
  #closed = false;

  constructor(source: TokenSource, transport: Reconnectable) {
    this.#source = source;
    this.#transport = transport;
  }

  /** The transport opened a connection with `token` in its handshake. */
  opened(token: AccessToken | undefined): void {
    this.#connectedWith = token;
    this.#clearTimer();
    if (this.#closed || token?.refreshAt === undefined) return;
    const delay = Math.max(0, token.refreshAt - Date.now());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      void this.#renew(token);
    }, delay);
    this.#timer.unref?.();
  }

  /** Before an exchange starts: waits while a renewal holds exchanges back. */
  async enter(signal: AbortSignal | undefined): Promise<void> {
    while (this.#gate !== undefined) {
      await (signal === undefined ? this.#gate : untilAborted(this.#gate, signal));
    }
    this.#inflight++;
  }

  /** An exchange that must finish on the current connection but is never held (an inbound request). */
  track(): void {
    this.#inflight++;
  }

  leave(): void {
    this.#inflight--;
    if (this.#inflight === 0) this.#idle?.();
  }

  close(): void {
    this.#closed = true;
    this.#clearTimer();
    this.#idle?.();
  }

  async #renew(old: AccessToken): Promise<void> {
    if (this.#closed || this.#connectedWith !== old || this.#gate !== undefined) return;
    let open!: () => void;
    this.#gate = new Promise<void>((resolve) => (open = resolve));
    try {
      // Fetched before holding anything back: the new handshake should not wait on the identity provider.
      await this.#source.newer(old);
      await this.#drained(old.usableUntil ?? Date.now());
      if (this.#closed || this.#connectedWith !== old) return;
      await this.#transport.reconnect('renewing the access token');
    } catch {
      // Already published: a failed token request by the token source, a failed reconnect by the
      // transport. The server ends the connection when the old token expires; the unauthorized
      // hook recovers then.
    } finally {
      this.#gate = undefined;
      open();
    }
  }

  /** Resolves when no exchange is in flight, or at `deadline` (epoch ms). */
  #drained(deadline: number): Promise<void> {
    if (this.#inflight === 0) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#idle = undefined;
        resolve();
      };
      const timer = setTimeout(done, Math.max(0, deadline - Date.now()));
      timer.unref?.();
      this.#idle = done;
    });
  }

  #clearTimer(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }
}
