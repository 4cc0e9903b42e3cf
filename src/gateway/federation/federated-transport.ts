/**
 * Several upstreams as one: a Transport the gateway's ProxySession uses as its upstream
 * exactly as it uses a single one (wrapped with no layers, named `upstream`). Inside,
 * each upstream is a Member (member.ts) with its own wrapped transport and stack. What
 * this adds (docs/gateway.md, "Several upstreams"):
 *
 *   - one handshake: `initialize` to every member at once, answered once with merged
 *     capabilities; `notifications/initialized`, roots changes and `logging/setLevel` to
 *     every member that is up; `ping` answered here;
 *   - merged lists (lists.ts, names.ts) served from the cache (cache.ts), paged with the
 *     gateway's own cursors;
 *   - each request routed to its owner (routes.ts), under the owner's own names;
 *   - ids: requests routed to a member keep the session's ids (each member has its own id
 *     space); the members' requests (sampling, elicitation, roots) reach the client under
 *     ids assigned here, and its answers and cancellations go back under the member's;
 *   - a member down: its entries leave the lists (with `list_changed`), a request routed
 *     to it fails at once naming it, the others keep serving; it is tried again on a
 *     later list request. The session ends when every member is down.
 *
 * 2026-07-28 without a session (`server/discover`, requests before `initialize`) is
 * refused: merging needs a handshake to merge.
 */
import { ConnectionClosedError, TransportError } from '../../core/errors.ts';
import type { EventBus } from '../../core/events.ts';
import {
  CANCELLED,
  isRequest,
  isResponse,
  type JSONRPCMessage,
  type JSONRPCNotification,
  type JSONRPCParams,
  type JSONRPCRequest,
  type JSONRPCResponse,
  type RequestId,
} from '../../core/jsonrpc.ts';
import type { Transport } from '../../core/transport.ts';
import { SESSION_ERA_VERSIONS, UNSUPPORTED_PROTOCOL_VERSION } from '../eras.ts';
import type { GatewayLogger } from '../logger.ts';
import { PACKAGE_VERSION } from '../version.ts';
import { type FetchedList, type SessionListCache, ttlHint } from './cache.ts';
import { type Entry, type MergedEntry, type MergedList, mergeLists, pageOf } from './lists.ts';
import { errorResponse, Member, type MemberSpec } from './member.ts';
import { CAPABILITY, type Clash, describeClash, KEY_FIELD, LIST_KINDS, LIST_METHOD, type ListKind, prefixUri } from './names.ts';
import { MAX_MEMBER_PAGES, type FederationSettings } from './options.ts';
import { type Route, routeUri } from './routes.ts';

export interface FederationContext {
  /** The upstreams as the config has them now: read when a session starts (the seam for a live reload). */
  readonly members: () => readonly MemberSpec[];
  readonly settings: FederationSettings;
  /** Every member transport publishes here (the gateway's upstream bus). */
  readonly events: EventBus;
  readonly logger: GatewayLogger;
  /** A new list cache for one session (its own lists, and the public ones every session shares). */
  readonly cache: () => SessionListCache;
  /** The transport closed: a reload no longer has its members to update. */
  readonly released?: (transport: FederatedTransport) => void;
}

const LIST_CHANGED: Readonly<Record<'tools' | 'prompts' | 'resources', string>> = {
  tools: 'notifications/tools/list_changed',
  prompts: 'notifications/prompts/list_changed',
  resources: 'notifications/resources/list_changed',
};
const KINDS_OF: Readonly<Record<'tools' | 'prompts' | 'resources', readonly ListKind[]>> = { tools: ['tools'], prompts: ['prompts'], resources: ['resources', 'resourceTemplates'] };
const LIST_OF_METHOD = new Map(LIST_KINDS.map((kind) => [LIST_METHOD[kind], kind]));
/** Notifications of the client that every member hears. */
const BROADCAST = new Set(['notifications/initialized', 'notifications/roots/list_changed']);

export class FederatedTransport implements Transport {
  onclose?: () => void;
  onerror?: (error: Error) => void;
  onmessage?: (message: JSONRPCMessage) => void;

  readonly #context: FederationContext;
  #members: readonly Member[];
  #byName: ReadonlyMap<string, Member>;
  #names: ReadonlySet<string>;
  readonly #session: string;
  readonly #cache: SessionListCache;
  readonly #log: GatewayLogger;
  /** The client's initialize params, replayed to a member that comes back. */
  #handshake: JSONRPCParams | undefined;
  /** The client has been answered initialize and said initialized: members that come back are told so too. */
  #initialized = false;
  /** The merged lists as last served, by kind: what names resolve against. */
  readonly #lists = new Map<ListKind, MergedList>();
  /** Member lists being fetched: concurrent list requests share one fetch. */
  readonly #fetching = new Map<string, Promise<readonly Entry[]>>();
  /** Requests of the session routed to a member, until answered. */
  readonly #routed = new Map<RequestId, { member: Member; method: string; route: Route | undefined }>();
  /** Members' requests forwarded to the client, by the id the client sees. */
  readonly #serverRequests = new Map<RequestId, { member: Member; id: RequestId }>();
  #nextServerRequestId = 1;
  /** URIs the client subscribed to, as the member knows them → as the client does. */
  readonly #subscribed = new Map<string, string>();
  readonly #warned = new Set<string>();
  /** Every clash the merged lists hid an entry for (the start-up probe of prefix never reads them). */
  readonly #clashes: Clash[] = [];
  #closed = false;

  constructor(context: FederationContext, session: string) {
    this.#context = context;
    this.#log = context.logger;
    this.#cache = context.cache();
    this.#session = session;
    this.#members = context.members().map((spec) => this.#member(spec));
    this.#byName = new Map(this.#members.map((m) => [m.name, m]));
    this.#names = new Set(this.#byName.keys());
  }

  #member(spec: MemberSpec): Member {
    const member = new Member(spec, this.#session, this.#context.events, this.#context.logger);
    member.onmessage = (message) => this.#fromMember(member, message);
    member.ondown = () => this.#memberDown(member);
    return member;
  }

  /**
   * A config reload changed the upstreams (docs/gateway.md, "Live reload"): an upstream
   * whose spec is new joins this open session (its handshake replayed, as for one that
   * comes back), one no longer configured leaves it — what it still had in flight is
   * answered with an error naming the reload — and the client hears `list_changed` for
   * what either serves. Upstreams configured as before stay as they are.
   */
  async updateMembers(specs: readonly MemberSpec[]): Promise<void> {
    if (this.#closed) return;
    const wanted = new Set(specs);
    const leaving = this.#members.filter((m) => !wanted.has(m.spec));
    const kept = new Map(this.#members.filter((m) => wanted.has(m.spec)).map((m) => [m.spec, m]));
    const joining: Member[] = [];
    this.#members = specs.map((spec) => {
      const member = kept.get(spec);
      if (member !== undefined) return member;
      const added = this.#member(spec);
      joining.push(added);
      return added;
    });
    this.#byName = new Map(this.#members.map((m) => [m.name, m]));
    this.#names = new Set(this.#byName.keys());
    await Promise.all(leaving.map((member) => this.#leave(member)));
    if (this.#handshake !== undefined) await Promise.all(joining.map((member) => this.#join(member, this.#handshake as JSONRPCParams)));
  }

  async #leave(member: Member): Promise<void> {
    this.#cache.invalidate(member.name, undefined, false);
    const error = new TransportError(`The upstream "${member.name}" was removed from the configuration (a reload) while the request was in flight; it may or may not have completed`, {
      layer: 'gateway',
      reason: 'upstream-removed',
      data: { upstream: member.name },
    });
    for (const [id, routed] of this.#routed) {
      if (routed.member !== member) continue;
      this.#routed.delete(id);
      this.#deliver(errorResponse(id, error));
    }
    this.#cancelServerRequests(member, `the upstream "${member.name}" was removed from the configuration`);
    await member.close();
    this.#log.info(`upstream ${member.name} left the session (config reload)`, { event: 'upstream-removed', upstream: member.name });
    this.#listsChanged(member);
  }

  async #join(member: Member, handshake: JSONRPCParams): Promise<void> {
    const answer = await member.connect(handshake);
    if (this.#closed || !('result' in answer)) return;
    if (this.#initialized) await member.send({ jsonrpc: '2.0', method: 'notifications/initialized' }).catch(() => {});
    this.#log.info(`upstream ${member.name} joined the session (config reload)`, { event: 'upstream-added', upstream: member.name });
    this.#listsChanged(member);
  }

  /** Members start with the client's initialize. */
  async start(): Promise<void> {}

  /** Each member keeps the version it negotiated (member.ts); the session's is the merged answer's. */
  setProtocolVersion(_version: string): void {}

  get clashes(): readonly Clash[] {
    return this.#clashes;
  }

  /** The upstream a request of the session goes to (by what the lists served so far say), if one does. */
  ownerOf(message: JSONRPCMessage): string | undefined {
    if (isResponse(message)) return message.id === undefined ? undefined : this.#serverRequests.get(message.id)?.member.name;
    if (!('method' in message)) return undefined;
    if (isRequest(message) && this.#routed.has(message.id)) return this.#routed.get(message.id)?.member.name;
    return this.#routeNow(message)?.member;
  }

  async send(message: JSONRPCMessage): Promise<void> {
    if (this.#closed) throw new ConnectionClosedError('several upstreams: the session is closed', { neverSent: true });
    if (isResponse(message)) return this.#answerToMember(message);
    if (!isRequest(message)) return this.#notification(message as JSONRPCNotification);
    // Every request ends with one answer (docs/architecture.md#invariant-1), whatever goes wrong on its way.
    this.#request(message).catch((error: unknown) => this.#deliver(errorResponse(message.id, error)));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#context.released?.(this);
    await Promise.all(this.#members.map((m) => m.close()));
    this.onclose?.();
  }

  // --- client → members --------------------------------------------------------------

  async #request(request: JSONRPCRequest): Promise<void> {
    const { method } = request;
    if (method === 'ping') return this.#reply(request.id, {});
    if (method === 'initialize') return this.#initialize(request);
    if (this.#handshake === undefined) return this.#refuseSessionless(request);
    const kind = LIST_OF_METHOD.get(method);
    if (kind !== undefined) return this.#list(kind, request);
    if (method === 'logging/setLevel') return this.#everyMember(request);
    const route = await this.#route(request);
    if ('error' in route) return this.#deliver(route.error);
    const member = this.#byName.get(route.member) as Member;
    if (member.state !== 'up') return this.#deliver(errorResponse(request.id, member.unavailable(method)));
    this.#routed.set(request.id, { member, method, route: route.route });
    if (method === 'resources/subscribe' && route.route !== undefined) this.#subscribed.set(`${member.name}\u0000${route.route.key}`, request.params?.['uri'] as string);
    member.send(this.#forMember(request, route.route)).catch((error: unknown) => {
      if (this.#routed.delete(request.id)) this.#deliver(errorResponse(request.id, error));
    });
  }

  #notification(message: JSONRPCNotification): Promise<void> {
    if (message.method === CANCELLED) {
      const id = message.params?.['requestId'] as RequestId | undefined;
      const routed = id === undefined ? undefined : this.#routed.get(id);
      if (routed !== undefined) {
        this.#routed.delete(id as RequestId);
        return routed.member.send(message).catch(() => {});
      }
      // A list or another fan-out: its answer is dropped by the session's transport; the cache still fills.
      return Promise.resolve();
    }
    if (message.method === 'notifications/initialized') this.#initialized = true;
    if (!BROADCAST.has(message.method)) this.#log.debug(`several upstreams: ${message.method} from the client goes to every upstream`, { event: 'federation-broadcast' });
    return Promise.all(this.#up().map((m) => m.send(message).catch(() => {}))).then(() => {});
  }

  /** The client's answer to a member's request: back to that member, under its id. */
  async #answerToMember(response: JSONRPCResponse): Promise<void> {
    const asked = response.id === undefined ? undefined : this.#serverRequests.get(response.id);
    if (asked === undefined) return;
    this.#serverRequests.delete(response.id as RequestId);
    await asked.member.send({ ...response, id: asked.id }).catch(() => {});
  }

  async #initialize(request: JSONRPCRequest): Promise<void> {
    this.#handshake = request.params;
    const answers = await Promise.all(this.#members.map((m) => m.connect(request.params)));
    const up = this.#up();
    if (up.length === 0) {
      const why = this.#members.map((m) => `${m.name}: ${m.why}`).join('; ');
      return this.#deliver(errorResponse(request.id, new TransportError(`No upstream could be reached (${why})`, { layer: 'gateway', reason: 'upstream-unavailable', neverSent: true })));
    }
    const requested = request.params?.['protocolVersion'];
    const versions = answers.flatMap((a) => ('result' in a && typeof a.result['protocolVersion'] === 'string' ? [a.result['protocolVersion']] : []));
    const protocolVersion = versions.every((v) => v === requested) ? requested : versions.reduce((a, b) => (b < a ? b : a));
    const instructions = up.flatMap((m) => (typeof m.initialized?.['instructions'] === 'string' ? [`## ${m.name}\n\n${m.initialized['instructions']}`] : [])).join('\n\n');
    this.#reply(request.id, {
      protocolVersion,
      capabilities: this.#capabilities(),
      serverInfo: { name: 'mcp-layers-gateway', version: PACKAGE_VERSION },
      ...(instructions === '' ? {} : { instructions }),
    });
  }

  /** The union of the members' capabilities; the lists always change when members come and go. */
  #capabilities(): Record<string, unknown> {
    const any = (name: string) => this.#up().some((m) => m.capability(name) !== undefined);
    return {
      tools: { listChanged: true },
      prompts: { listChanged: true },
      resources: { listChanged: true, ...(this.#up().some((m) => m.capability('resources')?.['subscribe'] === true) ? { subscribe: true } : {}) },
      ...(any('completions') ? { completions: {} } : {}),
      ...(any('logging') ? { logging: {} } : {}),
    };
  }

  #refuseSessionless(request: JSONRPCRequest): void {
    this.#deliver({
      jsonrpc: '2.0',
      id: request.id,
      error: {
        code: UNSUPPORTED_PROTOCOL_VERSION,
        message: `Unsupported protocol version: several upstreams are served only with a session (initialize, ${SESSION_ERA_VERSIONS.join(', ')}); ${request.method} came without one`,
        data: { supported: [...SESSION_ERA_VERSIONS], layer: 'gateway', reason: 'sessionless-federation' },
      },
    });
  }

  /** `logging/setLevel`: every member that is up, answered once (an error only when none took it). */
  async #everyMember(request: JSONRPCRequest): Promise<void> {
    const answers = await Promise.all(this.#up().map((m) => m.request(request.method, request.params)));
    const ok = answers.find((a) => 'result' in a);
    if (ok !== undefined || answers.length === 0) return this.#reply(request.id, {});
    this.#deliver({ ...(answers[0] as JSONRPCResponse), id: request.id });
  }

  // --- lists ---------------------------------------------------------------------------

  async #list(kind: ListKind, request: JSONRPCRequest): Promise<void> {
    this.#retryDown();
    const merged = await this.#merged(kind);
    const page = pageOf(merged, request.params?.['cursor'], this.#context.settings.pageSize);
    if (!page.ok) return this.#deliver({ jsonrpc: '2.0', id: request.id, error: { code: -32602, message: page.message, data: { layer: 'gateway', reason: 'invalid-cursor' } } });
    this.#reply(request.id, { [kind]: page.entries, ...(page.nextCursor === undefined ? {} : { nextCursor: page.nextCursor }) });
  }

  async #merged(kind: ListKind): Promise<MergedList> {
    const up = this.#up();
    const lists = await Promise.all(up.map(async (m) => ({ member: m.name, entries: await this.#memberList(m, kind) })));
    const { settings } = this.#context;
    const { list, clashes } = mergeLists(kind, lists, settings.prefix, settings.separator);
    for (const clash of clashes) {
      const key = `${clash.kind}\u0000${clash.name}\u0000${clash.hidden}`;
      if (this.#warned.has(key)) continue;
      this.#warned.add(key);
      this.#clashes.push(clash);
      this.#log.warn(`${describeClash(clash)}: "${clash.kept}"'s is served, "${clash.hidden}"'s is hidden (federation.prefix: ${settings.prefix})`, { event: 'federation-clash' });
    }
    this.#lists.set(kind, list);
    return list;
  }

  /** One member's whole list of a kind, filtered: cached, else fetched page by page. */
  #memberList(member: Member, kind: ListKind): Promise<readonly Entry[]> {
    if (member.capability(CAPABILITY[kind]) === undefined) return Promise.resolve([]);
    const cached = this.#cache.lookup(member.name, kind);
    if (cached !== undefined) return Promise.resolve(cached);
    const key = `${member.name}\u0000${kind}`;
    let fetching = this.#fetching.get(key);
    if (fetching === undefined) {
      fetching = this.#fetch(member, kind).finally(() => this.#fetching.delete(key));
      this.#fetching.set(key, fetching);
    }
    return fetching;
  }

  async #fetch(member: Member, kind: ListKind): Promise<readonly Entry[]> {
    const entries: Entry[] = [];
    const seen = new Set<string>();
    let cursor: string | undefined;
    let ttlMs: number | undefined;
    let shareable = true;
    for (let pages = 0; ; pages++) {
      if (pages === MAX_MEMBER_PAGES) {
        this.#log.warn(`upstream ${member.name}: ${LIST_METHOD[kind]} has more than ${MAX_MEMBER_PAGES} pages; serving the first ${MAX_MEMBER_PAGES}`, { event: 'federation-list-truncated' });
        break;
      }
      const response = await member.request(LIST_METHOD[kind], cursor === undefined ? undefined : { cursor });
      if ('error' in response) {
        this.#log.warn(`upstream ${member.name}: ${LIST_METHOD[kind]} failed (${response.error.message}); its ${kind} are left out of this list`, { event: 'federation-list-failed' });
        return entries;
      }
      const { result } = response;
      const page = result[kind];
      if (Array.isArray(page)) for (const entry of page) if (typeof entry === 'object' && entry !== null && member.spec.filters[kind](String((entry as Entry)[KEY_FIELD[kind]]))) entries.push(entry as Entry);
      const ttl = ttlHint(result['ttlMs']);
      if (ttl !== undefined) ttlMs = Math.min(ttlMs ?? ttl, ttl);
      shareable &&= result['cacheScope'] === 'public';
      const next = result['nextCursor'];
      if (typeof next !== 'string') break;
      if (seen.has(next)) {
        this.#log.warn(`upstream ${member.name}: ${LIST_METHOD[kind]} gave a cursor it gave before (a loop); serving what it listed so far`, { event: 'federation-list-truncated' });
        break;
      }
      seen.add(next);
      cursor = next;
    }
    const fetched: FetchedList = { entries, ttlMs, shareable };
    // A list fetched while the member went down is not kept: it is not what a member that comes back serves.
    if (member.state === 'up') this.#cache.store(member.name, kind, fetched, member.capability(CAPABILITY[kind])?.['listChanged'] === true);
    return entries;
  }

  // --- routing -------------------------------------------------------------------------

  /** The owner of a request by the lists already served; undefined when they do not say. */
  #routeNow(request: JSONRPCRequest | JSONRPCNotification): Route | undefined {
    const params = request.params ?? {};
    const byName = (kind: ListKind, name: unknown) => {
      const entry = typeof name === 'string' ? this.#lists.get(kind)?.byName.get(name) : undefined;
      return entry === undefined ? undefined : route(entry, name as string);
    };
    switch (request.method) {
      case 'tools/call':
        return byName('tools', params['name']);
      case 'prompts/get':
        return byName('prompts', params['name']);
      case 'resources/read':
      case 'resources/subscribe':
      case 'resources/unsubscribe':
        return typeof params['uri'] === 'string' ? routeUri(params['uri'], this.#uriTables()) : undefined;
      case 'completion/complete': {
        const ref = params['ref'] as { type?: unknown; name?: unknown; uri?: unknown } | undefined;
        if (ref?.type === 'ref/prompt') return byName('prompts', ref.name);
        if (ref?.type === 'ref/resource') return byName('resourceTemplates', ref.uri) ?? (typeof ref.uri === 'string' ? routeUri(ref.uri, this.#uriTables()) : undefined);
        return undefined;
      }
      default:
        return undefined;
    }
  }

  /** The owner of a request; the lists are fetched again when those served so far do not name it. */
  async #route(request: JSONRPCRequest): Promise<{ member: string; route: Route | undefined } | { error: JSONRPCResponse }> {
    const { method } = request;
    const kinds = routedKinds(request);
    if (kinds === undefined) {
      // What the lists cannot place (tasks, extensions): the one upstream there is, or nobody.
      const up = this.#up();
      if (this.#members.length === 1 && up.length === 1) return { member: (up[0] as Member).name, route: undefined };
      return { error: { jsonrpc: '2.0', id: request.id, error: { code: -32601, message: `Method not found: ${method} is not served across several upstreams`, data: { layer: 'gateway', reason: 'not-routable' } } } };
    }
    let found = this.#routeNow(request);
    if (found === undefined || this.#byName.get(found.member)?.state !== 'up') {
      const down = found === undefined ? this.#downOwner(request) : this.#byName.get(found.member);
      if (down !== undefined && down.state !== 'up') return { error: errorResponse(request.id, down.unavailable(method)) };
      for (const kind of kinds) await this.#merged(kind);
      found = this.#routeNow(request);
    }
    if (found === undefined || !this.#allowed(found, request)) return { error: notFound(request) };
    return { member: found.member, route: found };
  }

  /** A member that is down and whose prefix the request's name carries. */
  #downOwner(request: JSONRPCRequest): Member | undefined {
    if (this.#context.settings.prefix === 'never') return undefined;
    const { separator } = this.#context.settings;
    const name = request.params?.['name'] ?? (request.params?.['ref'] as { name?: unknown } | undefined)?.name;
    if (typeof name !== 'string') return undefined;
    return this.#members.find((m) => m.state !== 'up' && name.startsWith(`${m.name}${separator}`));
  }

  /** Routes by URI bypass the lists: the member's resource filter applies to them here. */
  #allowed(found: Route, request: JSONRPCRequest): boolean {
    return !request.method.startsWith('resources/') || (this.#byName.get(found.member) as Member).spec.filters.resources(found.key);
  }

  #uriTables() {
    return {
      members: this.#names,
      resources: this.#lists.get('resources'),
      templates: this.#lists.get('resourceTemplates'),
      withResources: this.#up()
        .filter((m) => m.capability('resources') !== undefined)
        .map((m) => m.name),
    };
  }

  /** The request as its owner knows it: its own name or URI. */
  #forMember(request: JSONRPCRequest, found: Route | undefined): JSONRPCRequest {
    if (found === undefined) return request;
    const params = { ...request.params };
    if (request.method === 'completion/complete') {
      const ref = params['ref'] as Record<string, unknown>;
      params['ref'] = { ...ref, [ref['type'] === 'ref/prompt' ? 'name' : 'uri']: found.key };
    } else {
      params[request.method === 'tools/call' || request.method === 'prompts/get' ? 'name' : 'uri'] = found.key;
    }
    return { ...request, params };
  }

  // --- members → client ----------------------------------------------------------------

  #fromMember(member: Member, message: JSONRPCMessage): void {
    if (this.#closed) return;
    if (isResponse(message)) {
      const id = message.id;
      const routed = id === undefined ? undefined : this.#routed.get(id);
      if (routed === undefined || routed.member !== member) return;
      this.#routed.delete(id as RequestId);
      return this.#deliver(routed.method === 'resources/read' && routed.route?.prefixed === true ? prefixContents(message, member.name) : message);
    }
    if (isRequest(message)) {
      const id = this.#nextServerRequestId++;
      this.#serverRequests.set(id, { member, id: message.id });
      return this.#deliver({ ...message, id });
    }
    const notification = message as JSONRPCNotification;
    const changed = Object.entries(LIST_CHANGED).find(([, method]) => method === notification.method)?.[0] as keyof typeof LIST_CHANGED | undefined;
    if (changed !== undefined) {
      for (const kind of KINDS_OF[changed]) this.#cache.invalidate(member.name, kind);
      return this.#deliver(notification);
    }
    if (notification.method === CANCELLED) {
      // The member gave up on one of its requests: the client knows it by the id given here.
      const theirs = notification.params?.['requestId'];
      for (const [id, asked] of this.#serverRequests) {
        if (asked.member !== member || asked.id !== theirs) continue;
        this.#serverRequests.delete(id);
        return this.#deliver({ ...notification, params: { ...notification.params, requestId: id } });
      }
      return;
    }
    if (notification.method === 'notifications/resources/updated' && typeof notification.params?.['uri'] === 'string') {
      const uri = notification.params['uri'];
      const asClient = this.#subscribed.get(`${member.name}\u0000${uri}`) ?? (this.#context.settings.prefix === 'always' ? prefixUri(member.name, uri) : uri);
      return this.#deliver({ ...notification, params: { ...notification.params, uri: asClient } });
    }
    this.#deliver(notification);
  }

  /** The member's requests to the client can no longer be answered: the client is told they are cancelled. */
  #cancelServerRequests(member: Member, reason: string): void {
    for (const [id, asked] of this.#serverRequests) {
      if (asked.member !== member) continue;
      this.#serverRequests.delete(id);
      this.#deliver({ jsonrpc: '2.0', method: CANCELLED, params: { requestId: id, reason } });
    }
  }

  #memberDown(member: Member): void {
    // A member that left on a reload is closed on purpose; #leave tells the client.
    if (!this.#members.includes(member)) return;
    this.#cache.invalidate(member.name, undefined, false);
    this.#cancelServerRequests(member, `the upstream "${member.name}" is gone`);
    if (this.#up().length === 0 && this.#members.every((m) => m.state === 'down')) {
      this.#log.warn('every upstream is down: the session ends', { event: 'federation-down' });
      void this.close();
      return;
    }
    this.#listsChanged(member);
  }

  /** Tries again, without waiting for it, each member that is down and due; one that comes back rejoins the lists. */
  #retryDown(): void {
    if (this.#handshake === undefined) return;
    for (const member of this.#members) {
      if (!member.due) continue;
      void member.connect(this.#handshake).then(async (answer) => {
        if (this.#closed || !('result' in answer) || !this.#members.includes(member)) return;
        if (this.#initialized) await member.send({ jsonrpc: '2.0', method: 'notifications/initialized' }).catch(() => {});
        this.#log.info(`upstream ${member.name} is back: its entries rejoin the lists`, { event: 'upstream-up' });
        this.#listsChanged(member);
      });
    }
  }

  /** The lists changed because a member came or went: the client hears it once per kind the member serves. */
  #listsChanged(member: Member): void {
    if (!this.#initialized) return;
    for (const [capability, method] of Object.entries(LIST_CHANGED) as Array<[keyof typeof LIST_CHANGED, string]>) {
      const served = KINDS_OF[capability].some((kind) => this.#lists.get(kind)?.entries.some((e) => e.member === member.name)) || member.capability(capability) !== undefined;
      if (served) this.#deliver({ jsonrpc: '2.0', method });
    }
  }

  #up(): Member[] {
    return this.#members.filter((m) => m.state === 'up');
  }

  #reply(id: RequestId, result: Record<string, unknown>): void {
    this.#deliver({ jsonrpc: '2.0', id, result });
  }

  #deliver(message: JSONRPCMessage): void {
    if (!this.#closed) this.onmessage?.(message);
  }
}

function route(entry: MergedEntry, exposed: string): Route {
  return { member: entry.member, key: entry.key, prefixed: exposed !== entry.key };
}

/** The lists whose names a routed request resolves against; undefined: a method no list places. */
function routedKinds(request: JSONRPCRequest): readonly ListKind[] | undefined {
  switch (request.method) {
    case 'tools/call':
      return ['tools'];
    case 'prompts/get':
      return ['prompts'];
    case 'resources/read':
    case 'resources/subscribe':
    case 'resources/unsubscribe':
      return ['resources', 'resourceTemplates'];
    case 'completion/complete':
      return (request.params?.['ref'] as { type?: unknown } | undefined)?.type === 'ref/prompt' ? ['prompts'] : ['resourceTemplates', 'resources'];
    default:
      return undefined;
  }
}

/** What an SDK server answers for a name it does not have (-32602; a resource's data is `{ uri }`, as SDK v2 recognises it). */
function notFound(request: JSONRPCRequest): JSONRPCResponse {
  const params = request.params ?? {};
  const ref = params['ref'] as { type?: unknown; name?: unknown; uri?: unknown } | undefined;
  const error = (() => {
    switch (request.method) {
      case 'tools/call':
        return { code: -32602, message: `Tool ${String(params['name'])} not found` };
      case 'prompts/get':
        return { code: -32602, message: `Prompt ${String(params['name'])} not found` };
      case 'completion/complete':
        return ref?.type === 'ref/prompt' ? { code: -32602, message: `Prompt ${String(ref.name)} not found` } : { code: -32602, message: `Resource template ${String(ref?.uri)} not found` };
      default:
        return { code: -32602, message: `Resource not found: ${String(params['uri'])}`, data: { uri: params['uri'] } };
    }
  })();
  return { jsonrpc: '2.0', id: request.id, error };
}

/** A read of a prefixed URI: the contents name the member's URIs, which the client knows prefixed. */
function prefixContents(response: JSONRPCResponse, member: string): JSONRPCResponse {
  if (!('result' in response) || !Array.isArray(response.result['contents'])) return response;
  const contents = (response.result['contents'] as unknown[]).map((c) => (typeof c === 'object' && c !== null && typeof (c as Entry)['uri'] === 'string' ? { ...(c as Entry), uri: prefixUri(member, (c as Entry)['uri'] as string) } : c));
  return { ...response, result: { ...response.result, contents } };
}
