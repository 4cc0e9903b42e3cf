/**
 * Generates the Grafana dashboards (dashboards/*.json) from their sources in
 * dashboards/src/: `npm run dashboards`. The JSON is committed, so it can be imported
 * without building anything; a test checks it equals what this script generates.
 *
 *   node dashboards/build.ts           writes the JSON files
 *   node dashboards/build.ts --check   exits 1 if a committed file differs
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { auth } from './src/auth.ts';
import { type DashboardSpec, dashboard } from './src/grafana.ts';
import { overview } from './src/overview.ts';
import { resilience } from './src/resilience.ts';
import { transport } from './src/transport.ts';

export const DASHBOARDS: Readonly<Record<string, DashboardSpec>> = {
  'mcp-overview.json': overview,
  'mcp-resilience.json': resilience,
  'mcp-transport.json': transport,
  'mcp-auth.json': auth,
};

/** File name → the JSON text to commit. */
export function generate(): Map<string, string> {
  return new Map(Object.entries(DASHBOARDS).map(([file, spec]) => [file, `${JSON.stringify(dashboard(spec), null, 2)}\n`]));
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const check = process.argv.includes('--check');
  let stale = 0;
  for (const [file, text] of generate()) {
    const path = fileURLToPath(new URL(file, import.meta.url));
    if (check) {
      let current = '';
      try {
        current = readFileSync(path, 'utf8');
      } catch {
        // Missing counts as stale.
      }
      if (current !== text) {
        stale++;
        console.error(`dashboards/${file} is stale: run npm run dashboards`);
      }
    } else {
      writeFileSync(path, text);
    }
  }
  process.exitCode = stale === 0 ? 0 : 1;
}
