/**
 * Where a request of several upstreams goes, decided from what the merged lists say
 * (docs/gateway.md, "Several upstreams": routing):
 *
 *   tools/call, prompts/get              by name, in the merged list
 *   resources/read, resources/subscribe  by URI: its prefix; else a URI the lists hold
 *   and resources/unsubscribe            (as served, or as its upstream names it, when
 *                                        only one has it); else the first template it
 *                                        matches; else the only upstream with resources
 *   completion/complete                  by its ref: the prompt's name, or the resource
 *                                        template's URI
 */
import type { MergedEntry, MergedList } from './lists.ts';
import { splitUri } from './names.ts';

/** The owner of a request, and the name (URI) it knows the entry by. */
export interface Route {
  readonly member: string;
  readonly key: string;
  /** The URI the client used, when it is not the member's own: what the member says of it is prefixed back. */
  readonly prefixed: boolean;
}

export interface UriTables {
  readonly members: ReadonlySet<string>;
  readonly resources: MergedList | undefined;
  readonly templates: MergedList | undefined;
  /** Members (up) that declared resources, in config order. */
  readonly withResources: readonly string[];
}

const fromEntry = (e: MergedEntry, exposed: string): Route => ({ member: e.member, key: e.key, prefixed: exposed !== e.key });

/** Where a URI goes, or undefined when no upstream can be named (the caller lists again, then says not found). */
export function routeUri(uri: string, tables: UriTables): Route | undefined {
  const split = splitUri(uri, tables.members);
  if (split !== undefined) return { member: split.member, key: split.uri, prefixed: true };
  const listed = tables.resources?.byName.get(uri);
  if (listed !== undefined) return fromEntry(listed, uri);
  const byOwnUri = tables.resources?.entries.filter((e) => e.key === uri) ?? [];
  if (byOwnUri.length === 1) return { member: (byOwnUri[0] as MergedEntry).member, key: uri, prefixed: false };
  for (const template of tables.templates?.entries ?? []) {
    const exposed = template.entry['uriTemplate'] as string;
    if (matchesTemplate(exposed, uri)) {
      // A template served prefixed expands to prefixed URIs: those were split above. This one is the member's own.
      return { member: template.member, key: uri, prefixed: false };
    }
  }
  if (tables.withResources.length === 1) return { member: tables.withResources[0] as string, key: uri, prefixed: false };
  return undefined;
}

/**
 * Whether `uri` is an expansion of the RFC 6570 `template`: literal parts as they are,
 * `{var}` one path segment or more characters without `/`, `{+var}` / `{#var}` anything,
 * other operators (`{?q}`, `{/p}`, `{.x}`…) anything or nothing.
 */
export function matchesTemplate(template: string, uri: string): boolean {
  let source = '';
  let last = 0;
  for (const match of template.matchAll(/\{([+#./;?&]?)[^}]*\}/g)) {
    source += escape(template.slice(last, match.index));
    const operator = match[1];
    source += operator === '' ? '[^/?#]+' : operator === '+' || operator === '#' ? '.+' : '.*';
    last = match.index + match[0].length;
  }
  source += escape(template.slice(last));
  return new RegExp(`^${source}$`, 's').test(uri);
}

const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
