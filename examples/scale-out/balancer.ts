/**
 * A round-robin load balancer with no session affinity, to try gateway replicas on one
 * machine (docs/scale-out.md "Two replicas on one machine"): every HTTP request and every
 * WebSocket upgrade goes to the next target in turn, whatever `Mcp-Session-Id` it names.
 * That is the worst case for sessions, and what a plain L4/L7 balancer does; in
 * production use your balancer (nginx, Envoy, a cloud one, a Kubernetes Service).
 *
 *   node examples/scale-out/balancer.ts --listen 127.0.0.1:8080 http://127.0.0.1:8081 http://127.0.0.1:8082
 *
 * Binds loopback unless told otherwise. A target that refuses the connection is skipped
 * for that request (the next one is tried), so a stopped replica is routed around.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { parseArgs } from 'node:util';

export interface Balancer {
  readonly url: string;
  /** Requests and upgrades sent to each target, in target order. */
  readonly counts: readonly number[];
  close(): Promise<void>;
}

export async function startBalancer(targets: readonly string[], listen: { host?: string; port?: number } = {}): Promise<Balancer> {
  if (targets.length === 0) throw new Error('balancer: expected at least one target URL');
  const origins = targets.map((target) => new URL(target));
  const counts = origins.map(() => 0);
  let next = 0;
  /** Targets in the order this request tries them: round-robin start, then the others. */
  const turn = (): number[] => {
    const first = next;
    next = (next + 1) % origins.length;
    return origins.map((_, i) => (first + i) % origins.length);
  };

  const forward = (req: IncomingMessage, res: ServerResponse, order: number[], body: Buffer): void => {
    const index = order[0] as number;
    const target = origins[index] as URL;
    const upstream = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } }, (answer) => {
      counts[index] = (counts[index] ?? 0) + 1;
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
      // A client that goes away (an SSE stream closed) ends the upstream request too.
      res.once('close', () => answer.destroy());
    });
    upstream.once('error', (error: NodeJS.ErrnoException) => {
      if (!res.headersSent && error.code === 'ECONNREFUSED' && order.length > 1) return forward(req, res, order.slice(1), body);
      if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' }).end(`balancer: ${target.host}: ${error.message}\n`);
      else res.destroy();
    });
    upstream.end(body);
  };

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    // The body is buffered so that a refused target can be retried with it.
    req.on('end', () => forward(req, res, turn(), Buffer.concat(chunks)));
  });

  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const tryTarget = (order: number[]): void => {
      const index = order[0] as number;
      const target = origins[index] as URL;
      const upstream = http.request({ host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } });
      upstream.once('upgrade', (answer, upstreamSocket, upstreamHead) => {
        counts[index] = (counts[index] ?? 0) + 1;
        const lines = [`HTTP/1.1 101 ${answer.statusMessage ?? 'Switching Protocols'}`];
        for (let i = 0; i < answer.rawHeaders.length; i += 2) lines.push(`${answer.rawHeaders[i]}: ${answer.rawHeaders[i + 1]}`);
        socket.write(`${lines.join('\r\n')}\r\n\r\n`);
        if (upstreamHead.length > 0) socket.write(upstreamHead);
        if (head.length > 0) upstreamSocket.write(head);
        upstreamSocket.pipe(socket).pipe(upstreamSocket);
        const end = () => {
          socket.destroy();
          upstreamSocket.destroy();
        };
        socket.once('close', end);
        upstreamSocket.once('close', end);
        socket.on('error', end);
        upstreamSocket.on('error', end);
      });
      // A refused upgrade (401, 503): passed on as it is.
      upstream.once('response', (answer) => {
        counts[index] = (counts[index] ?? 0) + 1;
        const lines = [`HTTP/1.1 ${answer.statusCode} ${answer.statusMessage ?? ''}`];
        for (let i = 0; i < answer.rawHeaders.length; i += 2) lines.push(`${answer.rawHeaders[i]}: ${answer.rawHeaders[i + 1]}`);
        socket.write(`${lines.join('\r\n')}\r\n\r\n`);
        answer.pipe(socket);
      });
      upstream.once('error', (error: NodeJS.ErrnoException) => {
        if (error.code === 'ECONNREFUSED' && order.length > 1) return tryTarget(order.slice(1));
        socket.end(`HTTP/1.1 502 Bad Gateway\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nbalancer: ${target.host}: ${error.message}\n`);
      });
      upstream.end();
    };
    socket.on('error', () => {});
    tryTarget(turn());
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(listen.port ?? 0, listen.host ?? '127.0.0.1', () => resolve());
  });
  const address = server.address() as { address: string; port: number; family: string };
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return {
    url: `http://${host}:${address.port}`,
    counts,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({ options: { listen: { type: 'string', short: 'l', default: '127.0.0.1:8080' } }, allowPositionals: true });
  const listen = values.listen as string;
  const split = listen.lastIndexOf(':');
  const balancer = await startBalancer(positionals, { host: split > 0 ? listen.slice(0, split).replace(/^\[|\]$/g, '') : '127.0.0.1', port: Number(listen.slice(split + 1)) });
  process.stdout.write(`balancer listening on ${balancer.url}, round-robin over ${positionals.join(', ')} (no session affinity)\n`);
  const stop = () => void balancer.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
