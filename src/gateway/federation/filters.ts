/**
 * `upstreams.<name>.tools|prompts|resources: { allow, deny }`: which entries of an
 * upstream are served. Deny wins. Resources match by URI, templates by their URI
 * template, tools and prompts by name — all as the upstream names them. A filtered-out
 * entry is not listed, and a request naming it is answered as for an unknown one.
 */
import { globMatcher, type NameMatcher } from '../../core/glob.ts';
import type { MemberConfig } from '../config/gateway.ts';
import type { ListKind } from './names.ts';

export type Filters = Readonly<Record<ListKind, NameMatcher>>;

const everything: NameMatcher = () => true;

function filterOf(config: { allow?: string[] | undefined; deny?: string[] | undefined } | undefined, at: string): NameMatcher {
  if (config === undefined) return everything;
  const allow = config.allow === undefined ? everything : globMatcher(config.allow, `${at}.allow`);
  const deny = config.deny === undefined ? () => false : globMatcher(config.deny, `${at}.deny`);
  return (name) => allow(name) && !deny(name);
}

export function filtersOf(member: MemberConfig, at: string): Filters {
  const resources = filterOf(member.resources, `${at}.resources`);
  return { tools: filterOf(member.tools, `${at}.tools`), prompts: filterOf(member.prompts, `${at}.prompts`), resources, resourceTemplates: resources };
}
