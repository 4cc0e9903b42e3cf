/**
 * Merged lists and the gateway's own cursors. Each upstream's list is fetched whole (its
 * own cursors followed), filtered, renamed (names.ts) and concatenated in config order;
 * the client pages through the merged list with cursors the gateway makes: base64url of
 * `{ k: kind, v: version, o: offset }`, where the version is a digest of the names served.
 * A cursor of another version (the list changed since) is refused with -32602, telling
 * the client to list again rather than skip or repeat entries silently.
 */
import { createHash } from 'node:crypto';
import type { PrefixMode } from './options.ts';
import { assignNames, type Clash, KEY_FIELD, type ListKind } from './names.ts';

export type Entry = Record<string, unknown>;

export interface MergedEntry {
  /** The entry as the client sees it: its name (URI) is the exposed one. */
  readonly entry: Entry;
  readonly member: string;
  /** Its name (URI) at its upstream. */
  readonly key: string;
}

export interface MergedList {
  readonly kind: ListKind;
  readonly entries: readonly MergedEntry[];
  readonly version: string;
  /** By exposed name (URI). */
  readonly byName: ReadonlyMap<string, MergedEntry>;
}

export interface MemberEntries {
  readonly member: string;
  readonly entries: readonly Entry[];
}

export function mergeLists(kind: ListKind, lists: readonly MemberEntries[], mode: PrefixMode, separator: string): { list: MergedList; clashes: Clash[] } {
  const field = KEY_FIELD[kind];
  // An entry without a usable name cannot be addressed: it is not served.
  const usable = lists.map(({ member, entries }) => ({ member, entries: entries.filter((e) => typeof e[field] === 'string' && e[field] !== '') }));
  const { names, clashes } = assignNames(
    kind,
    usable.map(({ member, entries }) => ({ member, keys: entries.map((e) => e[field] as string) })),
    mode,
    separator,
  );
  const entries: MergedEntry[] = [];
  const byName = new Map<string, MergedEntry>();
  usable.forEach(({ member, entries: own }, i) =>
    own.forEach((entry, j) => {
      const name = names[i]?.[j];
      if (name === undefined) return;
      const merged = { entry: { ...entry, [field]: name }, member, key: entry[field] as string };
      entries.push(merged);
      byName.set(name, merged);
    }),
  );
  const version = createHash('sha256').update(JSON.stringify(entries.map((e) => [e.member, e.entry[field]]))).digest('base64url').slice(0, 12);
  return { list: { kind, entries, version, byName }, clashes };
}

interface Cursor {
  readonly k: ListKind;
  readonly v: string;
  readonly o: number;
}

export function encodeCursor(kind: ListKind, version: string, offset: number): string {
  return Buffer.from(JSON.stringify({ k: kind, v: version, o: offset } satisfies Cursor)).toString('base64url');
}

function decodeCursor(cursor: string): Cursor | undefined {
  try {
    const value = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8')) as Partial<Cursor> | null;
    if (typeof value !== 'object' || value === null || typeof value.k !== 'string' || typeof value.v !== 'string' || !Number.isSafeInteger(value.o) || (value.o as number) < 0) return undefined;
    return value as Cursor;
  } catch {
    return undefined;
  }
}

export type Page = { readonly ok: true; readonly entries: Entry[]; readonly nextCursor: string | undefined } | { readonly ok: false; readonly message: string };

/** The page `cursor` points at (the first without one), or why the cursor is refused. */
export function pageOf(list: MergedList, cursor: unknown, pageSize: number): Page {
  let offset = 0;
  if (cursor !== undefined) {
    const decoded = typeof cursor === 'string' ? decodeCursor(cursor) : undefined;
    if (decoded === undefined || decoded.k !== list.kind) return { ok: false, message: `Invalid cursor: not a cursor this gateway gave for ${list.kind}; list from the start (no cursor)` };
    if (decoded.v !== list.version || decoded.o > list.entries.length) {
      return { ok: false, message: `Invalid cursor: the ${list.kind} list changed since this cursor was given; list again from the start (no cursor)` };
    }
    offset = decoded.o;
  }
  const end = Math.min(list.entries.length, offset + pageSize);
  return {
    ok: true,
    entries: list.entries.slice(offset, end).map((e) => e.entry),
    nextCursor: end < list.entries.length ? encodeCursor(list.kind, list.version, end) : undefined,
  };
}
