/**
 * The tree is what docs/architecture.md ("Where things live") says it is: every folder
 * under src/ and middleware/ is named in its file map, the core imports nothing outside
 * src/core/, the layer kit nothing but the core, and no layer reaches into the transports
 * or the gateway. Code and tests cite the invariants there, by anchor.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const architecture = readFileSync(join(root, 'docs/architecture.md'), 'utf8');
const fileMap = architecture.slice(architecture.indexOf('## Where things live'), architecture.indexOf('## Writing a layer'));

function walk(dir: string): string[] {
  return readdirSync(join(root, dir)).flatMap((name) => {
    const path = join(dir, name);
    return statSync(join(root, path)).isDirectory() ? [path, ...walk(path)] : [path];
  });
}

const folders = [...walk('src'), ...walk('middleware')].filter((path) => statSync(join(root, path)).isDirectory());
const sources = [...walk('src'), ...walk('middleware')].filter((path) => path.endsWith('.ts'));

/** The files a source imports, as paths from the root (relative specifiers only). */
function importsOf(path: string): string[] {
  const text = readFileSync(join(root, path), 'utf8');
  return [...text.matchAll(/(?:from|import)\s*\(?\s*'(\.{1,2}\/[^']+)'/g)].map((m) => normalize(join(dirname(path), m[1] as string)));
}

describe('docs/architecture.md "Where things live"', () => {
  it.each(folders)('names %s', (folder) => {
    const name = folder.split('/').at(-1) as string;
    expect(fileMap).toMatch(new RegExp(`(^|[\\s(])${name}/`, 'm'));
  });

  it('names no folder that does not exist', () => {
    const named = [...fileMap.matchAll(/^ {2,}([a-z-]+)\/ /gm)].map((m) => m[1]);
    const existing = new Set(folders.map((f) => f.split('/').at(-1)));
    expect(named.filter((name) => !existing.has(name))).toEqual([]);
  });
});

describe('dependencies point one way', () => {
  const outside = (path: string, allowed: string[]) => importsOf(path).filter((target) => !allowed.some((prefix) => target.startsWith(prefix)));

  it('src/core/ imports nothing outside src/core/', () => {
    const offenders = sources.filter((p) => p.startsWith('src/core/')).flatMap((p) => outside(p, ['src/core/']).map((t) => `${p} → ${t}`));
    expect(offenders).toEqual([]);
  });

  it('src/layer-kit/ imports only the core and itself', () => {
    const offenders = sources.filter((p) => p.startsWith('src/layer-kit/')).flatMap((p) => outside(p, ['src/core/', 'src/layer-kit/']).map((t) => `${p} → ${t}`));
    expect(offenders).toEqual([]);
  });

  it('middleware/ imports only the core, the layer kit and other layers', () => {
    const offenders = sources.filter((p) => p.startsWith('middleware/')).flatMap((p) => outside(p, ['src/core/', 'src/layer-kit/', 'middleware/']).map((t) => `${p} → ${t}`));
    expect(offenders).toEqual([]);
  });

  it('src/transports/ imports only the core, the layer kit and the transports', () => {
    const offenders = sources.filter((p) => p.startsWith('src/transports/')).flatMap((p) => outside(p, ['src/core/', 'src/layer-kit/', 'src/transports/']).map((t) => `${p} → ${t}`));
    expect(offenders).toEqual([]);
  });

  it('nothing in the library imports the gateway but the gateway', () => {
    const offenders = sources.filter((p) => !p.startsWith('src/gateway/')).flatMap((p) => importsOf(p).filter((t) => t.startsWith('src/gateway/')).map((t) => `${p} → ${t}`));
    expect(offenders).toEqual([]);
  });
});

describe('citations of the invariants', () => {
  const cited = [...walk('src'), ...walk('middleware'), ...walk('test'), ...walk('bench')]
    .filter((path) => path.endsWith('.ts'))
    .flatMap((path) => [...readFileSync(join(root, path), 'utf8').matchAll(/docs\/architecture\.md#([\w-]+)/g)].map((m) => [relative(root, join(root, path)), m[1] as string] as const));

  it('point at anchors that exist', () => {
    expect(cited.length).toBeGreaterThan(0);
    const missing = cited.filter(([, anchor]) => !architecture.includes(`id="${anchor}"`) && !headingAnchors(architecture).has(anchor));
    expect(missing).toEqual([]);
  });

  it('never cite a design note the repository does not ship', () => {
    const shipped = [...walk('src'), ...walk('middleware'), ...walk('test'), ...walk('bench'), ...walk('examples'), ...walk('docs'), 'README.md'];
    // The original design note is not shipped: its name as a pattern, so this file passes its own check.
    const designNote = /DESIGN\.md/;
    const stale = shipped.filter((path) => /\.(ts|md)$/.test(path) && designNote.test(readFileSync(join(root, path), 'utf8')));
    expect(stale).toEqual([]);
  });
});

/** GitHub-style anchors of the document's headings. */
function headingAnchors(markdown: string): Set<string> {
  return new Set([...markdown.matchAll(/^#{2,4} (.+)$/gm)].map((m) => (m[1] as string).toLowerCase().replace(/[^\w\s-]/g, '').trim().replace(/\s+/g, '-')));
}
