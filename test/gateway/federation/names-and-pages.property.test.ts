/**
 * The pure parts of several upstreams (src/gateway/federation/): names (prefixes, clashes),
 * merged lists and the gateway's own cursors, URI routing. Property-based where there
 * is an invariant: every entry is served under one name at most and that name leads
 * back to its upstream and its own name; a walk through the pages of any merged list at
 * any page size yields it exactly once; a cursor of another list version is refused.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type Entry, mergeLists, pageOf } from '#gateway/federation/lists.ts';
import { assignNames, LIST_KINDS, prefixUri, splitUri } from '#gateway/federation/names.ts';
import { matchesTemplate, routeUri } from '#gateway/federation/routes.ts';

const memberName = fc.stringMatching(/^[A-Za-z][A-Za-z0-9-]{0,6}$/);
const toolName = fc.stringMatching(/^[A-Za-z0-9_.-]{1,8}$/);
const mode = fc.constantFrom('always', 'on-clash', 'never' as const);
const separator = fc.constantFrom('__', '-', '.', '_');
const memberLists = fc.uniqueArray(fc.record({ member: memberName, keys: fc.array(toolName, { maxLength: 8 }) }), { selector: (m) => m.member, minLength: 1, maxLength: 4 });

describe('names', () => {
  it('every entry is served under at most one name, names are unique, and each leads back to its upstream and own name', () => {
    fc.assert(
      fc.property(memberLists, mode, separator, (lists, prefix, sep) => {
        const merged = mergeLists(
          'tools',
          lists.map(({ member, keys }) => ({ member, entries: keys.map((name) => ({ name })) })),
          prefix,
          sep,
        ).list;
        expect(new Set(merged.entries.map((e) => e.entry['name'])).size).toBe(merged.entries.length);
        for (const e of merged.entries) {
          const back = merged.byName.get(e.entry['name'] as string);
          expect(back?.member).toBe(e.member);
          expect(back?.key).toBe(e.key);
          if (prefix === 'always') expect(e.entry['name']).toBe(`${e.member}${sep}${e.key}`);
          if (prefix === 'never') expect(e.entry['name']).toBe(e.key);
        }
        // What is hidden is exactly what a clash reported.
        const { clashes } = assignNames('tools', lists, prefix, sep);
        expect(merged.entries.length + clashes.length).toBe(lists.reduce((n, l) => n + l.keys.length, 0));
      }),
    );
  });

  it('on-clash prefixes exactly the names two upstreams share, all of them', () => {
    const { names, clashes } = assignNames('tools', [{ member: 'a', keys: ['echo', 'add'] }, { member: 'b', keys: ['echo', 'sub'] }], 'on-clash', '__');
    expect(names).toEqual([['a__echo', 'add'], ['b__echo', 'sub']]);
    expect(clashes).toEqual([]);
  });

  it('never keeps the first upstream\'s entry and reports the clash with both names', () => {
    const { names, clashes } = assignNames('tools', [{ member: 'a', keys: ['echo'] }, { member: 'b', keys: ['echo'] }], 'never', '__');
    expect(names).toEqual([['echo'], [undefined]]);
    expect(clashes).toEqual([{ kind: 'tools', name: 'echo', kept: 'a', hidden: 'b' }]);
  });

  it('a prefixed URI splits back into its upstream and its own URI, and stays a URI', () => {
    fc.assert(
      fc.property(fc.uniqueArray(memberName, { minLength: 1, maxLength: 4 }), fc.webUrl(), (members, uri) => {
        const set = new Set(members);
        for (const member of members) {
          const prefixed = prefixUri(member, uri);
          expect(splitUri(prefixed, set)).toEqual({ member, uri });
          expect(URL.canParse(prefixed)).toBe(true);
        }
      }),
    );
  });
});

describe('merged pages and cursors', () => {
  const lists = fc.array(fc.record({ member: memberName, entries: fc.array(toolName.map((name): Entry => ({ name })), { maxLength: 12 }) }), { minLength: 1, maxLength: 4 });

  it('a walk at any page size yields the merged list exactly once, in order', () => {
    fc.assert(
      fc.property(lists, mode, fc.integer({ min: 1, max: 7 }), fc.constantFrom(...LIST_KINDS), (members, prefix, pageSize, kind) => {
        const unique = members.filter((m, i) => members.findIndex((o) => o.member === m.member) === i);
        const field = kind === 'resources' ? 'uri' : kind === 'resourceTemplates' ? 'uriTemplate' : 'name';
        const { list } = mergeLists(kind, unique.map((m) => ({ member: m.member, entries: m.entries.map((e) => ({ [field]: e['name'] })) })), prefix, '__');
        const walked: Entry[] = [];
        let cursor: string | undefined;
        let pages = 0;
        do {
          const page = pageOf(list, cursor, pageSize);
          if (!page.ok) throw new Error(page.message);
          expect(page.entries.length).toBeLessThanOrEqual(pageSize);
          walked.push(...page.entries);
          cursor = page.nextCursor;
          pages++;
        } while (cursor !== undefined);
        expect(walked).toEqual(list.entries.map((e) => e.entry));
        expect(pages).toBe(Math.max(1, Math.ceil(list.entries.length / pageSize)));
      }),
    );
  });

  it('a cursor of another version, another list, or not ours is refused, saying what to do', () => {
    const before = mergeLists('tools', [{ member: 'a', entries: [{ name: 'x' }, { name: 'y' }] }], 'always', '__').list;
    const after = mergeLists('tools', [{ member: 'a', entries: [{ name: 'x' }, { name: 'z' }] }], 'always', '__').list;
    const prompts = mergeLists('prompts', [{ member: 'a', entries: [{ name: 'x' }, { name: 'y' }] }], 'always', '__').list;
    const cursor = (pageOf(before, undefined, 1) as { nextCursor: string }).nextCursor;
    expect(pageOf(before, cursor, 1)).toMatchObject({ ok: true, entries: [{ name: 'a__y' }] });
    expect(pageOf(after, cursor, 1)).toEqual({ ok: false, message: expect.stringContaining('changed since this cursor was given; list again') });
    expect(pageOf(prompts, cursor, 1)).toMatchObject({ ok: false });
    for (const bad of ['', 'garbage', 42, Buffer.from('{"k":"tools","v":"x","o":-1}').toString('base64url')]) expect(pageOf(before, bad, 1)).toMatchObject({ ok: false });
  });
});

describe('routing by URI', () => {
  it('prefix, then a listed URI, then a template, then the only upstream with resources', () => {
    const resources = mergeLists('resources', [{ member: 'a', entries: [{ uri: 'file:///x' }] }], 'never', '__').list;
    const templates = mergeLists('resourceTemplates', [{ member: 'b', entries: [{ uriTemplate: 'item://{id}' }] }], 'never', '__').list;
    const tables = { members: new Set(['a', 'b']), resources, templates, withResources: ['a', 'b'] };
    expect(routeUri('b+file:///x', tables)).toEqual({ member: 'b', key: 'file:///x', prefixed: true });
    expect(routeUri('file:///x', tables)).toEqual({ member: 'a', key: 'file:///x', prefixed: false });
    expect(routeUri('item://7', tables)).toEqual({ member: 'b', key: 'item://7', prefixed: false });
    expect(routeUri('other://1', tables)).toBeUndefined();
    expect(routeUri('other://1', { ...tables, withResources: ['a'] })).toEqual({ member: 'a', key: 'other://1', prefixed: false });
  });

  it('templates match their expansions only', () => {
    expect(matchesTemplate('fixture://items/{id}', 'fixture://items/7')).toBe(true);
    expect(matchesTemplate('fixture://items/{id}', 'fixture://items/7/8')).toBe(false);
    expect(matchesTemplate('file://{+path}', 'file:///a/b')).toBe(true);
    expect(matchesTemplate('search://q{?term}', 'search://q?term=x')).toBe(true);
    expect(matchesTemplate('a.b://{x}', 'aXb://1')).toBe(false);
  });
});
