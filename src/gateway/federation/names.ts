/**
 * The names several upstreams' entries are served under (docs/gateway.md, "Several
 * upstreams"): a tool or prompt `echo` of upstream `files` is `files__echo`, a resource
 * `file:///a` is `files+file:///a` — still a URI, whose scheme is `files+file` — and a
 * template's URI the same way, so what a client expands from it routes back.
 *
 *   always    every entry prefixed (the default: names must not change when an upstream
 *             is added later)
 *   on-clash  only entries whose name another upstream also has, all of them
 *   never     names as the upstreams give them; a clash is a config error at start, and
 *             one that appears later keeps the first upstream's entry
 *
 * Names are resolved through the merged lists (lists.ts), never parsed back: with `-` in
 * both upstream names and separators, `a-b-x` could be `a` + `b-x` or `a-b` + `x`. URIs
 * are parsed back, unambiguously: an upstream name holds no `+`.
 */
import type { PrefixMode } from './options.ts';

/** The four lists an MCP server serves, by the field of the result that holds them. */
export type ListKind = 'tools' | 'prompts' | 'resources' | 'resourceTemplates';

export const LIST_KINDS: readonly ListKind[] = ['tools', 'prompts', 'resources', 'resourceTemplates'];

export const LIST_METHOD: Readonly<Record<ListKind, string>> = {
  tools: 'tools/list',
  prompts: 'prompts/list',
  resources: 'resources/list',
  resourceTemplates: 'resources/templates/list',
};

/** The field that names an entry of each list. */
export const KEY_FIELD: Readonly<Record<ListKind, 'name' | 'uri' | 'uriTemplate'>> = {
  tools: 'name',
  prompts: 'name',
  resources: 'uri',
  resourceTemplates: 'uriTemplate',
};

/** The capability whose `listChanged` covers each list. */
export const CAPABILITY: Readonly<Record<ListKind, 'tools' | 'prompts' | 'resources'>> = {
  tools: 'tools',
  prompts: 'prompts',
  resources: 'resources',
  resourceTemplates: 'resources',
};

const isUri = (kind: ListKind) => kind === 'resources' || kind === 'resourceTemplates';

/** `files__echo`, `files+file:///a`. */
export function prefixed(kind: ListKind, member: string, key: string, separator: string): string {
  return isUri(kind) ? prefixUri(member, key) : `${member}${separator}${key}`;
}

export function prefixUri(member: string, uri: string): string {
  return `${member}+${uri}`;
}

/** The upstream and its own URI of a prefixed URI, when it names one of `members`. */
export function splitUri(uri: string, members: ReadonlySet<string>): { member: string; uri: string } | undefined {
  const plus = uri.indexOf('+');
  if (plus <= 0) return undefined;
  const member = uri.slice(0, plus);
  return members.has(member) ? { member, uri: uri.slice(plus + 1) } : undefined;
}

/** One upstream's entries of a list, by their own names (URIs), in its order. */
export interface MemberKeys {
  readonly member: string;
  readonly keys: readonly string[];
}

/** Two upstreams would serve an entry under one name: the first keeps it. */
export interface Clash {
  readonly kind: ListKind;
  readonly name: string;
  readonly kept: string;
  readonly hidden: string;
}

/**
 * The name each entry is served under (`undefined`: hidden, its name was taken), in
 * config order, and the clashes that hid one. Exposed names are unique.
 */
export function assignNames(kind: ListKind, lists: readonly MemberKeys[], mode: PrefixMode, separator: string): { names: Array<Array<string | undefined>>; clashes: Clash[] } {
  const owners = new Map<string, Set<string>>();
  if (mode === 'on-clash') {
    for (const { member, keys } of lists) for (const key of keys) (owners.get(key) ?? owners.set(key, new Set()).get(key))?.add(member);
  }
  const shared = (key: string) => (owners.get(key)?.size ?? 0) > 1;
  const taken = new Map<string, string>();
  const clashes: Clash[] = [];
  const names = lists.map(({ member, keys }) =>
    keys.map((key) => {
      const name = mode === 'always' || (mode === 'on-clash' && shared(key)) ? prefixed(kind, member, key, separator) : key;
      const holder = taken.get(name);
      if (holder !== undefined) {
        clashes.push({ kind, name, kept: holder, hidden: member });
        return undefined;
      }
      taken.set(name, member);
      return name;
    }),
  );
  return { names, clashes };
}

export function describeClash(clash: Clash): string {
  const what = isUri(clash.kind) ? (clash.kind === 'resources' ? 'resource' : 'resource template') : clash.kind === 'tools' ? 'tool' : 'prompt';
  return clash.kept === clash.hidden
    ? `upstream "${clash.kept}" lists the ${what} "${clash.name}" twice`
    : `upstreams "${clash.kept}" and "${clash.hidden}" both serve the ${what} "${clash.name}"`;
}
