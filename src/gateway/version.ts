import { readFileSync } from 'node:fs';

/** The package's version, read once. */
export const PACKAGE_VERSION: string = (() => {
  // This file is src/gateway/version.ts in the repository and dist/src/gateway/version.js
  // in the package: the package root is two or three folders up.
  for (const candidate of ['../../package.json', '../../../package.json']) {
    try {
      return (JSON.parse(readFileSync(new URL(candidate, import.meta.url), 'utf8')) as { version: string }).version;
    } catch {
      // try the next layout
    }
  }
  return 'unknown';
})();
