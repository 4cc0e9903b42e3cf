/**
 * Preload for third-party programs run by tests (`node --import ./test/support/loopback-only.ts …`):
 * the process may connect only to loopback addresses, and a server that listens without
 * naming a host binds 127.0.0.1 instead of every interface. Tests talk to 127.0.0.1 only,
 * and a program that tried otherwise fails loudly instead of reaching the network.
 */
import net from 'node:net';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '[::1]', '::ffff:127.0.0.1']);

function hostOf(args: unknown[]): string | undefined {
  const [first, second] = args;
  if (typeof first === 'object' && first !== null && !Array.isArray(first)) {
    const options = first as { host?: string; path?: string };
    if (options.path !== undefined) return undefined; // a Unix socket or pipe
    return options.host ?? 'localhost';
  }
  if (typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) return typeof second === 'string' ? second : 'localhost';
  return undefined; // a path
}

const connect = net.Socket.prototype.connect as (...args: unknown[]) => net.Socket;
net.Socket.prototype.connect = function (this: net.Socket, ...args: unknown[]) {
  const normalized = Array.isArray(args[0]) ? (args[0] as unknown[]) : args;
  const host = hostOf(normalized);
  if (host !== undefined && !LOOPBACK.has(host)) {
    throw new Error(`loopback-only: refused a connection to ${host} (tests talk to 127.0.0.1 only)`);
  }
  return connect.apply(this, args);
} as typeof net.Socket.prototype.connect;

const listen = net.Server.prototype.listen as (...args: unknown[]) => net.Server;
net.Server.prototype.listen = function (this: net.Server, ...args: unknown[]) {
  const [first, second] = args;
  if ((typeof first === 'number' || (typeof first === 'string' && /^\d+$/.test(first))) && typeof second !== 'string') {
    return listen.call(this, Number(first), '127.0.0.1', ...args.slice(1));
  }
  if (typeof first === 'object' && first !== null && (first as { path?: unknown }).path === undefined && (first as { host?: unknown }).host === undefined) {
    return listen.call(this, { ...(first as object), host: '127.0.0.1' }, ...args.slice(1));
  }
  return listen.apply(this, args);
} as typeof net.Server.prototype.listen;
