/**
 * Preloaded (`node --import`) into a peer that cannot be told which interface to bind:
 * a `listen(port)` without a host binds 127.0.0.1 instead of every interface, so the
 * bench's traffic never leaves loopback.
 */
import { Server } from 'node:net';

const listen = Server.prototype.listen;
Server.prototype.listen = function (this: Server, ...args: unknown[]) {
  if (typeof args[0] === 'number' && (args.length === 1 || typeof args[1] === 'function')) args.splice(1, 0, '127.0.0.1');
  if (typeof args[0] === 'object' && args[0] !== null && !('host' in args[0]) && 'port' in args[0]) args[0] = { ...args[0], host: '127.0.0.1' };
  return (listen as (...a: unknown[]) => Server).apply(this, args);
} as typeof listen;
