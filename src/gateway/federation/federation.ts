/**
 * Several upstreams as the gateway's one Upstream (upstream.ts): `create()` makes a
 * FederatedTransport per session, over members built once per gateway — each with its
 * own Upstream (an HTTP pool, a command) and its own stack, so its breaker and
 * concurrency limit cover that upstream across every session.
 */
import { isDeepStrictEqual } from 'node:util';
import type { Registry } from 'prom-client';
import type { GatewayConfig, UpstreamConfig } from '../config/gateway.ts';
import { formatPath, type PathSegment } from '../config/issues.ts';
import type { EventBus } from '../../core/events.ts';
import type { LayerEntry } from '../config/layers.ts';
import type { GatewayLogger } from '../logger.ts';
import type { BuiltStack } from '../stack.ts';
import { createUpstream, type Upstream } from '../upstream.ts';
import { PACKAGE_VERSION } from '../version.ts';
import { SessionListCache, SharedListCache } from './cache.ts';
import { type FederationContext, FederatedTransport } from './federated-transport.ts';
import { filtersOf } from './filters.ts';
import type { MemberSpec } from './member.ts';
import { type Clash, LIST_KINDS, LIST_METHOD } from './names.ts';
import { federationSettingsOf } from './options.ts';

/** One upstream section of the config: `upstream`, or `upstreams.<name>`, with the path its problems are named under. */
export interface UpstreamSection {
  readonly name: string | undefined;
  readonly path: readonly PathSegment[];
  readonly config: UpstreamConfig;
}

export function upstreamSections(config: GatewayConfig): UpstreamSection[] {
  if (config.upstreams === undefined) return config.upstream === undefined ? [] : [{ name: undefined, path: ['upstream'], config: config.upstream }];
  return Object.entries(config.upstreams).map(([name, member]) => ({ name, path: ['upstreams', name], config: member }));
}

export interface FederationOptions {
  readonly config: GatewayConfig;
  readonly baseDir: string;
  readonly logger: GatewayLogger;
  readonly events: EventBus;
  readonly registry: Registry;
  readonly maxSessions: number;
  /** Builds one member's stack (problems named under its section). */
  readonly build: (entries: readonly LayerEntry[], section: readonly PathSegment[]) => BuiltStack;
  readonly defaultLayers: readonly LayerEntry[];
}

export interface Federation extends Upstream {
  readonly members: readonly MemberSpec[];
  /** Every FederatedTransport open on this federation or the ones it replaced: a reload updates their members. */
  readonly transports: Set<FederatedTransport>;
  /** The member built from this section for `name`, when it was built from an equal one (reloads keep it, and its breaker's state). */
  reusable(name: string, section: UpstreamConfig): MemberSpec | undefined;
  /**
   * A reload replaced this federation by `next`: every open session gets next's members
   * (FederatedTransport.updateMembers), sessions that start later get next's transports,
   * and the upstreams no member uses any more are closed.
   */
  supersede(next: Federation): Promise<void>;
  readonly superseded: boolean;
  /** The stacks by upstream name (the demo and tests read breaker state). */
  readonly stacks: ReadonlyMap<string, BuiltStack>;
  /** `federation.prefix: never`: the clashes one session with every upstream finds (probeClashes). */
  probe(): Promise<Clash[]>;
}

/** `previous`: the federation a reload replaces, whose members configured as before are kept. */
export function createFederation(options: FederationOptions, previous?: Federation): Federation {
  const { config, logger } = options;
  const settings = federationSettingsOf(config.federation);
  const stacks = new Map<string, BuiltStack>();
  const sections = new Map<string, { spec: MemberSpec; section: UpstreamConfig }>();
  const members: MemberSpec[] = upstreamSections(config).map(({ name, path, config: section }) => {
    const kept = previous?.reusable(name as string, section);
    const spec = kept ?? build(name as string, path, section);
    sections.set(name as string, { spec, section });
    return spec;
  });
  function build(name: string, path: readonly PathSegment[], section: UpstreamConfig): MemberSpec {
    const member = section as NonNullable<GatewayConfig['upstreams']>[string];
    const stack = options.build(section.layers ?? options.defaultLayers, path);
    stacks.set(name, stack);
    return {
      name: name as string,
      upstream: createUpstream(section, { baseDir: options.baseDir, oauth: stack.oauth, logger, maxSessions: options.maxSessions }),
      layers: stack.layers,
      filters: filtersOf(member, formatPath(path)),
      wrapOptions: section,
    };
  }
  for (const spec of members) if (!stacks.has(spec.name)) stacks.set(spec.name, previous?.stacks.get(spec.name) as BuiltStack);
  const transports = previous?.transports ?? new Set<FederatedTransport>();
  let successor: Federation | undefined;
  const shared = new SharedListCache(options.registry);
  const context: FederationContext = {
    members: () => members,
    settings,
    events: options.events,
    logger,
    cache: () => new SessionListCache(shared, settings.cacheTtlMs),
    released: (transport) => transports.delete(transport),
  };
  const create = (session: string): FederatedTransport => {
    if (successor !== undefined) return successor.create(session) as FederatedTransport;
    const transport = new FederatedTransport(context, session);
    transports.add(transport);
    return transport;
  };
  return {
    kind: 'federation',
    description: members.map((m) => `${m.name} (${m.upstream.kind}: ${m.upstream.description})`).join(', '),
    members,
    stacks,
    transports,
    get superseded() {
      return successor !== undefined;
    },
    create,
    reusable: (name, section) => {
      const built = sections.get(name);
      return built !== undefined && isDeepStrictEqual(built.section, section) ? built.spec : undefined;
    },
    supersede: async (next) => {
      successor = next;
      await Promise.all([...transports].map((transport) => transport.updateMembers(next.members)));
      await Promise.all(members.filter((m) => !next.members.includes(m)).map((m) => m.upstream.close()));
    },
    // Superseded: its members are the successor's, or were closed then. Not yet (a reload that failed): the members it shares stay.
    close: async () => {
      if (successor !== undefined) return;
      const shared = new Set(previous !== undefined && !previous.superseded ? previous.members : []);
      await Promise.all(members.filter((m) => !shared.has(m)).map((m) => m.upstream.close()));
    },
    probe: () => probeClashes(context),
  };
}

/**
 * `federation.prefix: never`: one session with every upstream at start, every list read
 * whole, the clashes returned (a config error: two upstreams serve one name). Upstreams
 * that cannot be reached are not checked here; a clash that appears later keeps the
 * first upstream's entry (federated-transport.ts).
 */
export async function probeClashes(context: FederationContext): Promise<Clash[]> {
  const transport = new FederatedTransport(context, 'probe');
  const waiting = new Map<string, (result: Record<string, unknown> | undefined) => void>();
  transport.onmessage = (message) => {
    if (!('id' in message) || 'method' in message) return;
    const resolve = waiting.get(String(message.id));
    waiting.delete(String(message.id));
    resolve?.('result' in message ? message.result : undefined);
  };
  let next = 1;
  const ask = (method: string, params?: Record<string, unknown>) =>
    new Promise<Record<string, unknown> | undefined>((resolve) => {
      const id = `probe-${next++}`;
      waiting.set(id, resolve);
      void transport.send({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) });
    });
  try {
    const initialized = await ask('initialize', { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'mcp-layers-gateway', version: PACKAGE_VERSION } });
    if (initialized === undefined) return [];
    await transport.send({ jsonrpc: '2.0', method: 'notifications/initialized' });
    for (const kind of LIST_KINDS) {
      let cursor: unknown;
      do {
        const page = await ask(LIST_METHOD[kind], cursor === undefined ? undefined : { cursor });
        cursor = page?.['nextCursor'];
      } while (typeof cursor === 'string');
    }
    return [...transport.clashes];
  } finally {
    await transport.close();
  }
}
