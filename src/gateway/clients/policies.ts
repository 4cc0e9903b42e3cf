/**
 * The gateway's clients (`downstream.clients`, docs/gateway.md "Clients and policies"):
 * who sent a request, resolved once per HTTP request and WebSocket upgrade, and what
 * the client's policy lets through — a token bucket and an in-flight count shared by
 * all of its sessions on both listeners, allow-lists of upstreams and tools.
 *
 * `apply(config)` replaces the policies by client name (a config reload): a client that
 * stays keeps its bucket's tokens and its requests in flight; a removed one is refused
 * from then on. Names come only from the config (and `unknown`), so the metric labels
 * they become are bounded.
 */
import type { IncomingMessage } from 'node:http';
import type { Counter, Gauge } from 'prom-client';
import { globMatcher, type NameMatcher } from '../../core/glob.ts';
import type { JSONRPCRequest } from '../../core/jsonrpc.ts';
import { LoadShedError } from '../../../middleware/concurrency.ts';
import { type ClientPolicyConfig, UNKNOWN_CLIENT } from '../config/clients.ts';
import type { DownstreamConfig } from '../config/gateway.ts';
import type { SessionClient } from '../proxy.ts';
import { ClientForbiddenError, ClientRateLimitedError } from './errors.ts';
import { bearerOf, Credentials, headerOf, unauthorized } from './identify.ts';
import { TokenBucket } from './token-bucket.ts';

/** The name of the single `upstream:` when allow-lists speak of upstreams. */
export const DEFAULT_UPSTREAM = 'default';

/**
 * Which upstream a request goes to, for the `upstreams` allow-list; undefined when no
 * single one does (the session's own initialize and ping). The seam federation fills in.
 */
export type OwnerOf = (request: Pick<JSONRPCRequest, 'method' | 'params'>) => string | undefined;

/** With the single `upstream:`, every request but the session's own goes to `default`. */
export const singleUpstream: OwnerOf = (request) => (request.method === 'initialize' || request.method === 'ping' ? undefined : DEFAULT_UPSTREAM);

export type ClientOutcome = 'admitted' | 'rate-limited' | 'concurrency-limited' | 'denied';

export interface ClientMetrics {
  /** `{client, outcome}`: every request a client's policy decided on. */
  readonly requests: Counter;
  /** `{client}`: requests in flight, across the client's sessions. */
  readonly inFlight: Gauge;
}

interface Policy {
  /** Where the policy is written, for messages (`downstream.clients[1]`). */
  readonly at: string;
  readonly rateLimit: { readonly rate: number; readonly burst: number } | undefined;
  readonly maxInFlight: number | undefined;
  readonly tools: NameMatcher | undefined;
  readonly upstreams: NameMatcher | undefined;
}

interface ClientRecord {
  readonly name: string;
  policy: Policy;
  bucket: TokenBucket | undefined;
  inFlight: number;
  removed: boolean;
  /** The client's metric children, bound once: prom-client hashes a label object on every unbound call. */
  readonly gauge: { inc(): void; dec(): void };
  readonly outcomes: Map<ClientOutcome, { inc(): void }>;
}

export class ClientPolicies {
  readonly #metrics: ClientMetrics;
  readonly #now: () => number;
  readonly #records = new Map<string, ClientRecord>();
  /** Who each HTTP request or upgrade was identified as (the session factories see only the request). */
  readonly #identified = new WeakMap<IncomingMessage, string>();
  #tokens = new Credentials<string>([]);
  #values = new Credentials<string>([]);
  #header: string | undefined;
  /** Requests that present no credential are admitted as `unknown`. */
  #anonymous = true;

  constructor(config: DownstreamConfig, metrics: ClientMetrics, now: () => number = () => performance.now()) {
    this.#metrics = metrics;
    this.#now = now;
    this.apply(config);
  }

  /** Whether requests must present a credential (MCP, and /metrics when it asks for one). */
  get authenticates(): boolean {
    return !this.#anonymous;
  }

  /** Replaces every policy by client name; buckets and in-flight counts of names that stay are kept. */
  apply(config: DownstreamConfig): void {
    const clients = config.clients ?? [];
    const now = this.#now();
    const next = new Map<string, ClientRecord>();
    const keep = (name: string, policy: Policy) => {
      const record = this.#records.get(name) ?? {
        name,
        policy,
        bucket: undefined,
        inFlight: 0,
        removed: false,
        gauge: this.#metrics.inFlight.labels({ client: name }),
        outcomes: new Map<ClientOutcome, { inc(): void }>(),
      };
      record.policy = policy;
      record.removed = false;
      const limit = policy.rateLimit;
      if (limit === undefined) record.bucket = undefined;
      else if (record.bucket === undefined) record.bucket = new TokenBucket(limit.rate, limit.burst, now);
      else record.bucket.reconfigure(limit.rate, limit.burst, now);
      next.set(name, record);
      this.#metrics.inFlight.set({ client: name }, record.inFlight);
    };
    clients.forEach((client, i) => keep(client.name, compile(client, `downstream.clients[${i}]`)));
    const unknown = config.unknownClients ?? (clients.length === 0 ? {} : 'refuse');
    keep(UNKNOWN_CLIENT, compile(unknown === 'refuse' ? {} : unknown, 'downstream.unknownClients'));
    for (const [name, record] of this.#records) if (!next.has(name)) record.removed = true;
    this.#records.clear();
    for (const [name, record] of next) this.#records.set(name, record);
    this.#tokens = new Credentials([
      ...clients.flatMap((c) => (c.token === undefined ? [] : [[c.token, c.name] as const])),
      ...(config.bearerTokens ?? []).map((token) => [token, UNKNOWN_CLIENT] as const),
    ]);
    this.#values = new Credentials(clients.flatMap((c) => (c.value === undefined ? [] : [[c.value, c.name] as const])));
    this.#header = config.clientHeader;
    // bearerTokens ask every request for a credential; so do clients, unless unknownClients admits the rest.
    this.#anonymous = config.bearerTokens === undefined && unknown !== 'refuse';
  }

  /**
   * Who sent this HTTP request or WebSocket upgrade: a client's name, or `unknown`.
   * Throws the 401 (AuthenticationError) when it may not come in. A bearer token is
   * tried first, then the client header; a credential presented and not accepted is
   * refused even where anonymous requests are admitted (a client's mistake, not a guest).
   * `guests: false` asks for a credential whatever unknownClients says (/metrics).
   */
  identify(request: IncomingMessage, guests = true): string {
    const bearer = this.#tokens.size > 0 ? bearerOf(request) : undefined;
    const value = this.#header === undefined ? undefined : headerOf(request, this.#header);
    const name = this.#tokens.find(bearer) ?? this.#values.find(value) ?? this.#guest(bearer !== undefined ? 'bearer' : value !== undefined ? 'header' : undefined, guests);
    this.#identified.set(request, name);
    return name;
  }

  #guest(presented: 'bearer' | 'header' | undefined, guests: boolean): string {
    if (presented === undefined && this.#anonymous && guests) return UNKNOWN_CLIENT;
    throw unauthorized(presented, this.#header, this.#tokens.size > 0);
  }

  /** Who `identify` found this request to be (`unknown` if it was never asked). */
  clientOf(request: IncomingMessage): string {
    return this.#identified.get(request) ?? UNKNOWN_CLIENT;
  }

  /**
   * At the door of an HTTP POST that carries requests: the refusal when the client has
   * no token left now (the session charges each request itself, so a race between two
   * POSTs ends in a JSON-RPC error, never in a request over the limit).
   */
  rateLimited(name: string): ClientRateLimitedError | undefined {
    const record = this.#records.get(name);
    const peeked = record?.bucket?.peek(this.#now());
    if (record === undefined || peeked === undefined || peeked.ok) return undefined;
    this.#count(record, 'rate-limited');
    return overRate(record, 'the request', peeked.retryAfterMs);
  }

  /** The policy of one session's client; `ownerOf` says which upstream each request goes to. */
  bind(name: string, ownerOf: OwnerOf = singleUpstream): SessionClient {
    const record = this.#records.get(name);
    if (record === undefined) throw new Error(`no client named ${name}`);
    return {
      name,
      admit: (request) => this.#admit(record, request, ownerOf),
      visible: (method, result) => visible(record.policy, method, result, ownerOf),
    };
  }

  #admit(record: ClientRecord, request: JSONRPCRequest, ownerOf: OwnerOf): ReturnType<SessionClient['admit']> {
    const denied = record.removed ? removed(record) : forbidden(record, request, ownerOf);
    if (denied !== undefined) {
      this.#count(record, 'denied');
      return { refused: denied };
    }
    const { maxInFlight } = record.policy;
    // Checked before the bucket: a request refused for concurrency costs no token.
    if (maxInFlight !== undefined && record.inFlight >= maxInFlight) {
      this.#count(record, 'concurrency-limited');
      return {
        refused: new LoadShedError(`Too many concurrent requests from client ${record.name}: ${request.method} was refused (${record.inFlight} in flight, limit ${maxInFlight}: ${record.policy.at}.maxInFlight)`, {
          layer: 'gateway',
          reason: 'client-concurrency-limit',
          retryable: true,
          data: { client: record.name, inFlight: record.inFlight, maxInFlight },
        }),
      };
    }
    const taken = record.bucket?.take(this.#now());
    if (taken !== undefined && !taken.ok) {
      this.#count(record, 'rate-limited');
      return { refused: overRate(record, request.method, taken.retryAfterMs) };
    }
    this.#count(record, 'admitted');
    record.inFlight++;
    record.gauge.inc();
    let released = false;
    return {
      release: () => {
        if (released) return;
        released = true;
        record.inFlight--;
        record.gauge.dec();
      },
    };
  }

  #count(record: ClientRecord, outcome: ClientOutcome): void {
    let child = record.outcomes.get(outcome);
    if (child === undefined) {
      child = this.#metrics.requests.labels({ client: record.name, outcome });
      record.outcomes.set(outcome, child);
    }
    child.inc();
  }
}

function compile(policy: ClientPolicyConfig, at: string): Policy {
  return {
    at,
    rateLimit: policy.rateLimit,
    maxInFlight: policy.maxInFlight,
    tools: policy.tools === undefined ? undefined : globMatcher(policy.tools, `${at}.tools`),
    upstreams: policy.upstreams === undefined ? undefined : globMatcher(policy.upstreams, `${at}.upstreams`),
  };
}

function overRate(record: ClientRecord, what: string, retryAfterMs: number): ClientRateLimitedError {
  const { rate, burst } = record.policy.rateLimit as { rate: number; burst: number };
  return new ClientRateLimitedError(`Rate limited: client ${record.name} is over its limit of ${rate} requests/s (burst ${burst}, ${record.policy.at}.rateLimit); ${what} was not forwarded, try again in ${retryAfterMs} ms`, {
    retryAfterMs,
    data: { client: record.name },
  });
}

function removed(record: ClientRecord): ClientForbiddenError {
  return new ClientForbiddenError(`Forbidden: client ${record.name} is no longer in the gateway's configuration`, { reason: 'client-removed', data: { client: record.name } });
}

/** Why the allow-lists refuse a request, if they do. */
function forbidden(record: ClientRecord, request: JSONRPCRequest, ownerOf: OwnerOf): ClientForbiddenError | undefined {
  const { policy, name } = record;
  const tool = request.method === 'tools/call' ? request.params?.['name'] : undefined;
  if (policy.tools !== undefined && typeof tool === 'string' && !policy.tools(tool)) {
    return new ClientForbiddenError(`Forbidden: client ${name} may not call tool ${JSON.stringify(tool)} (${policy.at}.tools)`, { reason: 'tool-not-allowed', data: { client: name, tool } });
  }
  const upstream = policy.upstreams === undefined ? undefined : ownerOf(request);
  if (upstream !== undefined && policy.upstreams !== undefined && !policy.upstreams(upstream)) {
    return new ClientForbiddenError(`Forbidden: client ${name} may not use upstream ${JSON.stringify(upstream)}, where ${request.method} goes (${policy.at}.upstreams)`, {
      reason: 'upstream-not-allowed',
      data: { client: name, upstream },
    });
  }
  return undefined;
}

/** A tools/list result without the tools the client may not call. */
function visible(policy: Policy, method: string, result: Record<string, unknown>, ownerOf: OwnerOf): Record<string, unknown> {
  const tools = result['tools'];
  if (method !== 'tools/list' || !Array.isArray(tools) || (policy.tools === undefined && policy.upstreams === undefined)) return result;
  const allowed = (tool: unknown): boolean => {
    const name = (tool as { name?: unknown } | null)?.name;
    if (typeof name !== 'string') return true;
    if (policy.tools !== undefined && !policy.tools(name)) return false;
    const upstream = policy.upstreams === undefined ? undefined : ownerOf({ method: 'tools/call', params: { name } });
    return upstream === undefined || policy.upstreams === undefined || policy.upstreams(upstream);
  };
  const kept = tools.filter(allowed);
  return kept.length === tools.length ? result : { ...result, tools: kept };
}
