/**
 * Records what an application exchanges with its transport: every message it sends,
 * every message delivered to its `onmessage`, and every error given to its `onerror`.
 *
 * Tap the transport the SDK is connected to — the bare one in a baseline run, the
 * wrapped one otherwise — and the two recordings must be equal (invariant 6: with no
 * failures the stack is transparent). Messages are copied as JSON, as a wire would.
 *
 * The tap patches the instance in place (instead of wrapping it in another object) so
 * the SDK still sees the very transport it was given, with all its members.
 */
import type { JSONRPCMessage } from '#core/jsonrpc.ts';
import type { Transport, TransportSendOptions } from '#core/transport.ts';

export interface TapLog {
  sent: JSONRPCMessage[];
  received: JSONRPCMessage[];
  errors: string[];
}

export function tap<T extends Transport>(transport: T): TapLog {
  const log: TapLog = { sent: [], received: [], errors: [] };
  const send = transport.send.bind(transport);
  transport.send = (message: JSONRPCMessage, options?: TransportSendOptions) => {
    log.sent.push(copy(message));
    return send(message, options);
  };
  intercept(transport, 'onmessage', (handler) => (message, extra) => {
    log.received.push(copy(message as JSONRPCMessage));
    return handler(message, extra);
  });
  intercept(transport, 'onerror', (handler) => (error) => {
    log.errors.push((error as Error).message);
    return handler(error);
  });
  return log;
}

/**
 * Replaces the ids of requests the *peer* sent by `peer#1`, `peer#2`... in order of
 * arrival. Those ids are the peer's wire ids: a wrapped peer numbers attempts from its
 * own counter by design (docs/architecture.md#ids), so they are the one thing that legitimately
 * differs from an unwrapped run. The application's own ids are left exactly as they are.
 *
 * Received requests and the responses the application sends back use peer ids; a
 * received `notifications/cancelled` names a peer request too. Everything the
 * application sent as a request, and the responses it received, keep their ids.
 */
export function normalizePeerIds(log: TapLog): TapLog {
  const names = new Map<unknown, string>();
  const name = (id: unknown) => {
    let known = names.get(id);
    if (known === undefined) names.set(id, (known = `peer#${names.size + 1}`));
    return known;
  };
  const received = log.received.map((message) => {
    if ('method' in message && 'id' in message && message.id !== undefined) return { ...message, id: name(message.id) } as unknown as JSONRPCMessage;
    if ('method' in message && message.method === 'notifications/cancelled' && message.params !== undefined && names.has(message.params['requestId'])) {
      return { ...message, params: { ...message.params, requestId: names.get(message.params['requestId']) } };
    }
    return message;
  });
  const sent = log.sent.map((message) =>
    !('method' in message) && message.id !== undefined ? ({ ...message, id: names.get(message.id) ?? `unknown#${String(message.id)}` } as unknown as JSONRPCMessage) : message,
  );
  return { sent, received, errors: log.errors };
}

type Callback = (...args: unknown[]) => unknown;

/**
 * Replaces a callback property by an accessor: whatever the application installs is
 * wrapped by `decorate`, and reading the property returns the decorated function (the
 * same one every time, so code that saves and restores handlers keeps working).
 */
function intercept(target: object, key: 'onmessage' | 'onerror', decorate: (handler: Callback) => Callback): void {
  let installed: Callback | undefined = Reflect.get(target, key) as Callback | undefined;
  let decorated = installed === undefined ? undefined : decorate(installed);
  Object.defineProperty(target, key, {
    configurable: true,
    enumerable: true,
    get: () => decorated,
    set: (handler: Callback | undefined) => {
      if (handler === decorated) return;
      installed = handler;
      decorated = installed === undefined ? undefined : decorate(installed);
    },
  });
}

function copy(message: JSONRPCMessage): JSONRPCMessage {
  return JSON.parse(JSON.stringify(message)) as JSONRPCMessage;
}
