/**
 * The `worker:` section of a config file (`mcp-layers worker --config mcp-layers.yaml`):
 * where the worker meets its clients — a broker URL naming the service — its server-side
 * stack, the library worker's options (serveNats / serveRedis, docs/scale-out.md) and
 * its own HTTP listener for /metrics, /healthz and /readyz. The stdio server it serves
 * is the file's `upstream` (command, args, env, cwd, stderr, layers), as for the gateway.
 *
 *   worker:
 *     broker: nats://127.0.0.1:4222/tools      # or redis://[user:pass@]host:port/tools
 *     layers: [ { concurrency: { maxInFlight: 32, direction: inbound } } ]
 *     maxInFlight: 32
 *     port: 9464
 *
 * A broker URL is read once, here (parseBrokerUrl): the scheme picks the broker, the path
 * is the service, credentials in the userinfo go to the client library and nowhere else.
 */
import { z } from 'zod';
import { isName, NAME_RULE } from '../../transports/broker/names.ts';
import { redactUrl } from '../../transports/redact-url.ts';
import { choice, duration, integer, names, options, text } from './fields.ts';
import { layerList } from './layers.ts';

/** The schemes a broker URL may have, by broker: NATS (`tls://` asks for TLS) and Redis (`rediss://` is TLS). */
export const BROKER_SCHEMES = { nats: ['nats', 'tls'], redis: ['redis', 'rediss'] } as const;

export type BrokerName = keyof typeof BROKER_SCHEMES;

/** A broker URL, read: which broker, how to reach it, which service. */
export interface BrokerAddress {
  readonly broker: BrokerName;
  /**
   * What the library's `servers` option takes: `nats://host:port` (credentials moved to
   * `connectOptions`, which the NATS client reads them from) or the Redis URL without its
   * path (node-redis reads the userinfo and `rediss:`).
   */
  readonly servers: string;
  readonly service: string;
  /** NATS: user and password (or a token, alone in the userinfo), and TLS for `tls://`. */
  readonly connectOptions: Readonly<Record<string, unknown>> | undefined;
  /** For logs and the banner: no credentials. */
  readonly description: string;
}

const EXPECTED = 'a broker URL naming the service: nats://HOST:PORT/SERVICE or redis://[USER:PASSWORD@]HOST:PORT/SERVICE (tls:// and rediss:// for TLS)';

/** Reads a broker URL; `{ ok: false, problem }` says what is wrong with it, never echoing credentials. */
export function parseBrokerUrl(value: string): { ok: true; address: BrokerAddress } | { ok: false; problem: string } {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return { ok: false, problem: `expected ${EXPECTED}, got a string that is not a URL` };
  }
  const scheme = url.protocol.slice(0, -1);
  const broker = (Object.keys(BROKER_SCHEMES) as BrokerName[]).find((name) => (BROKER_SCHEMES[name] as readonly string[]).includes(scheme));
  const shown = JSON.stringify(redactUrl(url));
  if (broker === undefined) return { ok: false, problem: `expected ${EXPECTED}, got the scheme "${scheme}:" (${shown})` };
  if (url.hostname === '') return { ok: false, problem: `expected ${EXPECTED}, got no host (${shown})` };
  const port = url.port === '' ? (broker === 'nats' ? '4222' : '6379') : url.port;
  const hostPort = `${url.hostname}:${port}`;
  // What this URL should have been, with its own host: the quickest fix to read.
  const instead = `${scheme}://${hostPort}/SERVICE`;
  const service = decodeURIComponent(url.pathname.replace(/^\//, '').replace(/\/$/, ''));
  if (service === '') return { ok: false, problem: `the service is missing from ${shown}: expected ${EXPECTED} (here ${instead})` };
  if (!isName(service)) return { ok: false, problem: `the service "${service}" is not a valid name (${NAME_RULE}), in ${shown}: expected ${instead}` };
  if (url.search !== '' || url.hash !== '') return { ok: false, problem: `expected no query or fragment, got ${shown} with one (options go in the config file)` };
  const description = `${scheme}://${hostPort}/${service}`;
  if (broker === 'redis') {
    const auth = url.username === '' && url.password === '' ? '' : `${url.username}${url.password === '' ? '' : `:${url.password}`}@`;
    return { ok: true, address: { broker, servers: `${scheme}://${auth}${hostPort}`, service, connectOptions: undefined, description } };
  }
  const user = decodeURIComponent(url.username);
  const pass = decodeURIComponent(url.password);
  const connectOptions: Record<string, unknown> = {
    ...(user !== '' && pass !== '' ? { user, pass } : user !== '' ? { token: user } : {}),
    ...(scheme === 'tls' ? { tls: {} } : {}),
  };
  return { ok: true, address: { broker, servers: `nats://${hostPort}`, service, connectOptions: Object.keys(connectOptions).length === 0 ? undefined : connectOptions, description } };
}

const brokerUrl = z
  .string({ error: EXPECTED })
  .superRefine((value, ctx) => {
    const parsed = parseBrokerUrl(value);
    if (!parsed.ok) ctx.addIssue({ code: 'custom', message: parsed.problem });
  })
  .meta({ description: 'Where the worker meets its clients: nats://HOST:PORT/SERVICE (tls:// for TLS) or redis://[USER:PASSWORD@]HOST:PORT/SERVICE (rediss:// for TLS). The path is the service. Put credentials in the environment (${BROKER_URL}).' });

export const workerConfig = options(
  {
    broker: brokerUrl,
    prefix: text('a prefix (letters, digits, "_" and "-")').optional().meta({ description: 'The first part of every subject, stream and key (default mcp): clients must use the same.' }),
    layers: layerList('downstream').optional().meta({ description: 'The server-side stack, on each session\'s broker transport, first = outermost. Default: tracing, metrics.' }),
    maxInFlight: integer(1).optional().meta({ description: 'Requests this worker holds at once; beyond, it takes no new sessions or sessionless requests (default 64).' }),
    maxSessions: integer(1).optional().meta({ description: 'Sessions this worker holds at once, each with its own child process (default 64).' }),
    maxInFlightPerSession: integer(1).optional().meta({ description: 'Requests of one session delivered and not answered at once; the broker holds back the rest (default 32).' }),
    ackWaitMs: duration(100).optional().meta({ description: 'How soon a dead worker\'s requests move to another worker (default 10 000). Requests in hand are kept alive: this does not limit how long a call may run.' }),
    dedupWindowMs: duration(100).optional().meta({ description: 'How long a request\'s client and wire id are remembered, to drop a second copy (default 120 000).' }),
    maxAgeMs: duration(1000).optional().meta({ description: 'Messages older than this are dropped from the streams (default 3 600 000).' }),
    sessionIdleMs: duration(1000).optional().meta({ description: 'A session\'s own subject or stream is released after this long unread (default 3 600 000).' }),
    clientCheckMs: z.union([z.literal(false), duration(10)], { error: 'a duration in milliseconds >= 10, or false' }).optional().meta({ description: 'How often each session\'s client is asked whether it is still there; a client that is gone releases its session and child (default 30 000; false: never).' }),
    drainTimeoutMs: duration(0).optional().meta({ description: 'On SIGTERM/SIGINT: how long the requests in hand may take before they are handed back to the broker (default shutdown.drainTimeoutMs, else 10 000).' }),
    id: text('a worker id (letters, digits, "_" and "-")').optional().meta({ description: 'This worker\'s id on the broker (default a random one).' }),
    idempotentTools: names('tool name or glob').optional().meta({ description: 'Tools that may run again when the broker redelivers them after a worker died, besides those annotated readOnlyHint/idempotentHint.' }),
    nonIdempotentTools: names('tool name or glob').optional().meta({ description: 'Tools never run twice, whatever their annotations or the client say.' }),
    maxDepth: integer(2).optional().meta({ description: 'The deepest nesting a message from a client may have, the message itself being level 1; a deeper request is answered -32600 (default 1000).' }),
    storage: choice(['file', 'memory']).optional().meta({ description: 'NATS only: where JetStream keeps the service\'s stream (default file, which survives a broker restart).' }),
    maxPayload: integer(1024).optional().meta({ description: 'Redis only: the largest message, with its headers, in bytes (default 1 048 576). NATS takes the server\'s max_payload.' }),
    host: text('a host name or address').optional().meta({ description: 'Interface of the /metrics, /healthz and /readyz listener (default 127.0.0.1).' }),
    port: integer(0, 65535).optional().meta({ description: 'Port of that listener (default 9464; 0 picks a free one).' }),
  },
  'mcp-layers worker: serves the stdio server of `upstream` to the clients of a broker, a child process per session.',
).superRefine((worker, ctx) => {
  const parsed = parseBrokerUrl(worker.broker);
  if (!parsed.ok) return;
  const broker = parsed.address.broker;
  if (worker.storage !== undefined && broker !== 'nats') ctx.addIssue({ code: 'custom', message: 'applies only to a NATS broker (nats:// or tls://)', path: ['storage'] });
  if (worker.maxPayload !== undefined && broker !== 'redis') ctx.addIssue({ code: 'custom', message: 'applies only to a Redis broker (redis:// or rediss://); NATS takes the server\'s max_payload', path: ['maxPayload'] });
});

export type WorkerConfig = z.output<typeof workerConfig>;
