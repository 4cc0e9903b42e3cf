/**
 * Upstreams' lists, cached (docs/gateway.md, "Several upstreams": caching). A list stays
 * fresh for the `ttlMs` its upstream sent with it (2026-07-28, SEP-2549; the shortest of
 * its pages), else until the upstream's `list_changed` when it declared `listChanged`,
 * else for `federation.cacheTtlMs`. Every session caches its own; a list every page of
 * which said `cacheScope: "public"` is also kept for every session of that upstream
 * (keyed by upstream), a `private` one never is. `list_changed` drops both: a public list
 * is the same for everyone, so one session's news is everyone's.
 */
import type { Counter, Registry } from 'prom-client';
import { counterOf } from '../families.ts';
import type { Entry } from './lists.ts';
import type { ListKind } from './names.ts';

export const LIST_CACHE_FAMILY = {
  name: 'mcp_layers_gateway_list_cache_total',
  type: 'counter',
  labels: ['upstream', 'list', 'outcome'],
  help: "Lists of several upstreams served from the cache or fetched: outcome hit (this session's), shared-hit (a public list another session fetched) or miss.",
} as const;

export type CacheOutcome = 'hit' | 'shared-hit' | 'miss';

/** One upstream's whole list, as fetched (all pages). */
export interface FetchedList {
  readonly entries: readonly Entry[];
  /** The shortest `ttlMs` of its pages, when they sent one. */
  readonly ttlMs: number | undefined;
  /** Every page said `cacheScope: "public"`. */
  readonly shareable: boolean;
}

interface Cached {
  readonly entries: readonly Entry[];
  /** Date.now() until which it is fresh; Infinity: until list_changed. */
  readonly until: number;
}

/** Until when a fetched list is fresh: its ttlMs, else list_changed when declared, else the default. */
export function freshUntil(fetched: FetchedList, listChanged: boolean, defaultTtlMs: number, now: number): number {
  if (fetched.ttlMs !== undefined) return now + fetched.ttlMs;
  return listChanged ? Number.POSITIVE_INFINITY : now + defaultTtlMs;
}

/** A valid `ttlMs` hint (an integer >= 0), else undefined. */
export function ttlHint(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0 ? value : undefined;
}

const keyOf = (member: string, kind: ListKind) => `${member}\u0000${kind}`;

class Lists {
  readonly #lists = new Map<string, Cached>();

  get(member: string, kind: ListKind, now: number): readonly Entry[] | undefined {
    const key = keyOf(member, kind);
    const cached = this.#lists.get(key);
    if (cached === undefined) return undefined;
    if (cached.until > now) return cached.entries;
    this.#lists.delete(key);
    return undefined;
  }

  set(member: string, kind: ListKind, entries: readonly Entry[], until: number, now: number): void {
    if (until > now) this.#lists.set(keyOf(member, kind), { entries, until });
  }

  drop(member: string, kind?: ListKind): void {
    if (kind !== undefined) return void this.#lists.delete(keyOf(member, kind));
    for (const key of this.#lists.keys()) if (key.startsWith(`${member}\u0000`)) this.#lists.delete(key);
  }
}

/** Public lists, by upstream: one per gateway, shared by every session. */
export class SharedListCache extends Lists {
  readonly #counter: Counter<'upstream' | 'list' | 'outcome'> | undefined;

  constructor(registry?: Registry) {
    super();
    if (registry === undefined) return;
    this.#counter = counterOf(registry, LIST_CACHE_FAMILY);
  }

  count(member: string, kind: ListKind, outcome: CacheOutcome): void {
    this.#counter?.inc({ upstream: member, list: kind, outcome });
  }
}

/** One session's view: its own lists first, then the public ones. */
export class SessionListCache {
  readonly #own = new Lists();
  readonly #shared: SharedListCache;
  readonly #defaultTtlMs: number;

  constructor(shared: SharedListCache, defaultTtlMs: number) {
    this.#shared = shared;
    this.#defaultTtlMs = defaultTtlMs;
  }

  /** The fresh cached list, or undefined (a miss); counted either way. */
  lookup(member: string, kind: ListKind): readonly Entry[] | undefined {
    const now = Date.now();
    const own = this.#own.get(member, kind, now);
    if (own !== undefined) {
      this.#shared.count(member, kind, 'hit');
      return own;
    }
    const shared = this.#shared.get(member, kind, now);
    this.#shared.count(member, kind, shared === undefined ? 'miss' : 'shared-hit');
    return shared;
  }

  store(member: string, kind: ListKind, fetched: FetchedList, listChanged: boolean): void {
    const now = Date.now();
    const until = freshUntil(fetched, listChanged, this.#defaultTtlMs, now);
    this.#own.set(member, kind, fetched.entries, until, now);
    if (fetched.shareable) this.#shared.set(member, kind, fetched.entries, until, now);
  }

  /** The upstream said its list changed (or it went away). */
  invalidate(member: string, kind?: ListKind, everywhere = true): void {
    this.#own.drop(member, kind);
    if (everywhere) this.#shared.drop(member, kind);
  }
}
