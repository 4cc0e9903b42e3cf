/**
 * Everything a run says, in one place, to search for secrets: console output, every
 * event published on the buses it watches, every error (onerror callbacks, failed calls,
 * JSON-RPC errors), each recorded as it would be logged (`util.inspect`, deep, hidden
 * properties included) and as JSON.
 */
import { inspect } from 'node:util';
import { vi } from 'vitest';
import type { EventBus, LayerEvents } from '#core/events.ts';

const WATCHED: Array<keyof LayerEvents> = [
  'token-refresh',
  'token-store-failed',
  'breaker-state',
  'reconnect',
  'connection',
  'heartbeat',
  'stray-response',
  'invalid-message',
  'cancel-sent',
  'cancelled',
  'close',
];

export class RunLog {
  readonly lines: string[] = [];
  readonly #stops: Array<() => void> = [];

  /** Records a value as a logger would print it. */
  record(what: string, value: unknown): void {
    let json: string;
    try {
      json = JSON.stringify(value, (_key, v: unknown) => (v instanceof Error ? { ...v, name: v.name, message: v.message, stack: v.stack } : v)) ?? '';
    } catch {
      json = '';
    }
    this.lines.push(`${what}: ${typeof value === 'string' ? value : inspect(value, { depth: 12, showHidden: true, getters: true })} ${json}`);
  }

  /** An onerror-style callback that records. */
  errors(what: string): (error: Error) => void {
    return (error) => this.record(`${what} error`, error);
  }

  /** Records every event of the watched types on `bus`. */
  watch(what: string, bus: EventBus): void {
    for (const type of WATCHED) this.#stops.push(bus.on(type, (event) => this.record(`${what} ${String(type)}`, event)));
  }

  /** Captures (and silences) console output until stop(). */
  captureConsole(): void {
    for (const method of ['log', 'info', 'warn', 'error', 'debug', 'trace'] as const) {
      const spy = vi.spyOn(console, method).mockImplementation((...args: unknown[]) => this.record(`console.${method}`, args));
      this.#stops.push(() => spy.mockRestore());
    }
  }

  stop(): void {
    for (const stop of this.#stops.splice(0)) stop();
  }

  /**
   * The secrets (among `secrets`) that appear anywhere in the log, whole or in part: a
   * message that shortens long strings would still leak their first or last characters.
   */
  leaks(secrets: Iterable<string>): string[] {
    const text = this.lines.join('\n');
    return [...secrets].filter((secret) => fragments(secret).some((fragment) => text.includes(fragment)));
  }
}

function fragments(secret: string): string[] {
  if (secret.length < 8) return [];
  if (secret.length <= 32) return [secret];
  return [secret.slice(0, 16), secret.slice(-16), ...secret.split('.').filter((part) => part.length >= 16)];
}
