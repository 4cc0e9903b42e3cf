/**
 * What a load balancer without session affinity does, for the gateway replica tests: a
 * fetch that sends each HTTP request to the next replica in turn (the SDK HTTP client
 * transports take it as their `fetch` option), skipping the replicas marked down, as a
 * balancer's health check would; and a TCP proxy that sends each new connection to the
 * next replica that accepts it (a WebSocket client reconnecting lands on another one).
 */
import net from 'node:net';

export interface RoundRobinFetch {
  readonly fetch: (input: string | URL | Request, init?: RequestInit) => Promise<Response>;
  /** Which replica each request went to, in order (its index), and its method. */
  readonly sent: Array<{ replica: number; method: string }>;
  /** A replica the balancer stops sending to. */
  down(replica: number): void;
}

/** `origins`: each replica's `http://host:port`; requests keep their path and query. */
export function roundRobinFetch(origins: readonly string[]): RoundRobinFetch {
  const up = origins.map(() => true);
  const sent: Array<{ replica: number; method: string }> = [];
  let next = 0;
  const pick = (): number => {
    for (let tried = 0; tried < origins.length; tried++) {
      const replica = next;
      next = (next + 1) % origins.length;
      if (up[replica]) return replica;
    }
    throw new Error('roundRobinFetch: every replica is down');
  };
  return {
    sent,
    down: (replica) => void (up[replica] = false),
    fetch: (input, init) => {
      const replica = pick();
      const request = input instanceof Request ? input : undefined;
      const url = new URL(request?.url ?? String(input));
      const target = new URL(origins[replica] as string);
      url.protocol = target.protocol;
      url.host = target.host;
      sent.push({ replica, method: init?.method ?? request?.method ?? 'GET' });
      return request === undefined ? fetch(url, init) : fetch(new Request(url, request), init);
    },
  };
}

export interface RoundRobinProxy {
  readonly port: number;
  /** Which replica each connection went to, in order. */
  readonly connections: number[];
  close(): Promise<void>;
}

/** Each new TCP connection goes to the next of `ports` that accepts one (a closed replica is skipped). */
export async function roundRobinProxy(ports: readonly number[]): Promise<RoundRobinProxy> {
  const sockets = new Set<net.Socket>();
  const connections: number[] = [];
  let next = 0;
  const connectTo = (client: net.Socket, tried: number): void => {
    if (tried >= ports.length) {
      client.destroy();
      return;
    }
    const replica = next;
    next = (next + 1) % ports.length;
    const upstream = net.connect(ports[replica] as number, '127.0.0.1');
    let connected = false;
    // Refused: that replica is gone, the next one gets the connection.
    upstream.once('error', () => {
      if (!connected) connectTo(client, tried + 1);
    });
    upstream.once('connect', () => {
      connected = true;
      connections.push(replica);
      sockets.add(upstream);
      upstream.on('close', () => sockets.delete(upstream));
      upstream.on('error', () => client.destroy());
      client.on('error', () => upstream.destroy());
      client.pipe(upstream);
      upstream.pipe(client);
      client.once('close', () => upstream.destroy());
      upstream.once('close', () => client.destroy());
      client.resume();
    });
  };
  const server = net.createServer({ pauseOnConnect: true }, (client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    connectTo(client, 0);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}
