/**
 * Listening on the configured address, for the gateway and the worker alike: what can go
 * wrong there is the config's doing (a port in use, a privileged port, an address this
 * machine does not have), so it is a ConfigError naming `<section>.port` or
 * `<section>.host`, reported before anything starts (exit 2).
 */
import type http from 'node:http';
import { ConfigError } from './config/load.ts';

export interface ListenTarget {
  readonly host: string;
  readonly port: number;
  /** The config section the address comes from: `downstream`, `worker`. */
  readonly section: string;
  /** Who else might hold the port, for the message: `another gateway?`. */
  readonly holder: string;
  /** The config's source, for the ConfigError. */
  readonly source: string;
}

export function listenOn(server: http.Server, { host, port, section, holder, source }: ListenTarget): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      const where = `${host.includes(':') ? `[${host}]` : host}:${port}`;
      const problem =
        error.code === 'EADDRINUSE'
          ? `${section}.port: ${where} is already in use (${holder} pick another port, or 0 for a free one)`
          : error.code === 'EACCES'
            ? `${section}.port: permission denied to listen on ${where} (ports below 1024 need privileges)`
            : error.code === 'EADDRNOTAVAIL' || error.code === 'ENOTFOUND'
              ? `${section}.host: cannot listen on ${host} (no such local address)`
              : undefined;
      reject(problem === undefined ? error : new ConfigError(source, [problem]));
    };
    const onListening = () => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}
