/**
 * Listening on loopback and reporting where: shared by the WebSocket and HTTP servers.
 */
import type { AddressInfo, Server } from 'node:net';

/** Starts `server` listening; rejects with the listen error (EADDRINUSE...) instead of emitting it. */
export function listenOn(server: Server, port: number, host: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** The bound address, or a clear error naming the server when it is not listening. */
export function addressOf(server: Server, label: string): AddressInfo {
  const address = server.address();
  if (address === null || typeof address === 'string') throw new Error(`${label}: not listening`);
  return address;
}

/** `host:port` for a URL (IPv6 in brackets). */
export function hostPort({ address, port, family }: AddressInfo): string {
  return `${family === 'IPv6' ? `[${address}]` : address}:${port}`;
}
