/**
 * The worker's own HTTP listener (127.0.0.1:9464 unless told otherwise): the metrics
 * registry, liveness and readiness. It serves no MCP: clients reach the worker through
 * the broker.
 *
 *   /metrics   the layers' families, the worker's gauges, process metrics
 *   /healthz   200 while the process serves
 *   /readyz    200 while it takes work, 503 while it drains
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';
import { metricsHandler } from '../../../middleware/observability/metrics.ts';
import { answerClientError, pathOf } from '../../transports/listen.ts';
import { listenOn } from '../listen.ts';

export interface EndpointUrls {
  readonly metrics: string;
  readonly health: string;
  readonly ready: string;
}

export interface EndpointOptions {
  readonly host: string;
  readonly port: number;
  readonly metricsPath: string;
  readonly registry: Registry;
  /** What /readyz reports: `ready` (200), or why not (503). */
  readonly readiness: () => { ready: boolean; body: Record<string, unknown> };
  /** The config file, for the error when the port cannot be had. */
  readonly source: string;
}

export class Endpoints {
  readonly #server: http.Server;
  readonly #options: EndpointOptions;

  private constructor(options: EndpointOptions) {
    this.#options = options;
    const metrics = metricsHandler(options.registry as Parameters<typeof metricsHandler>[0], { path: options.metricsPath });
    this.#server = http.createServer({ headersTimeout: 10_000, requestTimeout: 10_000, keepAliveTimeout: 5_000 }, (req, res) => this.#route(req, res, metrics));
    this.#server.on('clientError', answerClientError);
  }

  /** Listens; a port in use (or not ours to take) is a ConfigError naming worker.port / worker.host. */
  static async listen(options: EndpointOptions): Promise<Endpoints> {
    const endpoints = new Endpoints(options);
    await endpoints.#listen();
    return endpoints;
  }

  get urls(): EndpointUrls {
    const { address, port, family } = this.#server.address() as AddressInfo;
    const base = `http://${family === 'IPv6' ? `[${address}]` : address}:${port}`;
    return { metrics: `${base}${this.#options.metricsPath}`, health: `${base}/healthz`, ready: `${base}/readyz` };
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => {
      this.#server.close(() => resolve());
      this.#server.closeAllConnections();
    });
  }

  #route(req: IncomingMessage, res: ServerResponse, metrics: (req: IncomingMessage, res: ServerResponse) => void): void {
    req.on('error', () => {});
    res.on('error', () => {});
    const path = pathOf(req);
    if (path === this.#options.metricsPath) return metrics(req, res);
    if (path === '/healthz') return json(res, 200, { status: 'ok' });
    if (path === '/readyz') {
      const { ready, body } = this.#options.readiness();
      return json(res, ready ? 200 : 503, body);
    }
    json(res, 404, { error: `Not Found: this is a worker's metrics and health listener (${this.#options.metricsPath}, /healthz, /readyz); MCP clients reach it through the broker` });
  }

  #listen(): Promise<void> {
    const { host, port, source } = this.#options;
    return listenOn(this.#server, { host, port, section: 'worker', holder: 'another worker on this machine?', source: source });
  }
}

function json(res: ServerResponse, status: number, body: unknown): void {
  const text = `${JSON.stringify(body)}\n`;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(text)), 'cache-control': 'no-store' }).end(text);
}
