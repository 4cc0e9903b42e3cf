/**
 * Real child processes for stdio tests: the fixture server (stdio-server.ts) and the
 * reference `@modelcontextprotocol/server-everything`, both started with the Node
 * running the tests (`process.execPath`), through the SDKs' own StdioClientTransport.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { StdioClientTransport as V2StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { StdioClientTransport as V1StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';

export interface ServerProcess {
  command: string;
  args: string[];
  stderr: 'pipe';
}

const STDIO_SERVER = fileURLToPath(new URL('./stdio-server.ts', import.meta.url));

/** The fixture server in a child process; `layers` says how it wraps its own StdioServerTransport. */
export function fixtureServerProcess(sdk: 'v1' | 'v2', layers: 'none' | 'zero' | 'observe'): ServerProcess {
  return { command: process.execPath, args: [STDIO_SERVER, '--sdk', sdk, '--layers', layers], stderr: 'pipe' };
}

/** `mcp-server-everything stdio` (built on SDK v1), the reference server of the MCP project. */
export function everythingServerProcess(): ServerProcess {
  const require = createRequire(import.meta.url);
  const root = dirname(require.resolve('@modelcontextprotocol/server-everything/package.json'));
  return { command: process.execPath, args: [join(root, 'dist', 'index.js'), 'stdio'], stderr: 'pipe' };
}

export type StdioClientTransport = V1StdioClientTransport | V2StdioClientTransport;

/** The SDK's own stdio client transport; it spawns the child on start(). */
export function stdioClientTransport(sdk: 'v1' | 'v2', server: ServerProcess): StdioClientTransport {
  return sdk === 'v1' ? new V1StdioClientTransport(server) : new V2StdioClientTransport(server);
}

/** Collects a child's stderr (for failure messages) without letting the pipe fill up. */
export function collectStderr(transport: StdioClientTransport): () => string {
  let text = '';
  transport.stderr?.on('data', (chunk: Buffer) => {
    if (text.length < 64_000) text += chunk.toString();
  });
  return () => text;
}

/** Adds what the child wrote to stderr to an error, so a failure in the child explains itself. */
export function withChildStderr(error: unknown, stderr: string): Error {
  const cause = error instanceof Error ? error : new Error(String(error));
  return stderr === '' ? cause : new Error(`${cause.message}\n--- child stderr ---\n${stderr}`, { cause });
}
