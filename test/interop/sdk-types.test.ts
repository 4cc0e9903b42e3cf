/**
 * Compile-time compatibility with the official SDKs, checked by `npm run typecheck`
 * (tsc type-checks test/): `wrap()` accepts the SDKs' transports, the SDKs' `connect()`
 * accepts what `wrap()` returns, and members only the inner transport has (an HTTP
 * server transport's `handleRequest`, a stdio transport's `pid`) keep their types.
 * The `@ts-expect-error` lines make this file fail to compile if the types grow too
 * loose. The few runtime checks below are what the types promise at run time.
 *
 * Nothing here starts a transport: StdioClientTransport spawns only in start().
 */
import { IncomingMessage, ServerResponse } from 'node:http';
import { Socket } from 'node:net';
import { Client as V2Client } from '@modelcontextprotocol/client';
import { StdioClientTransport as V2StdioClientTransport } from '@modelcontextprotocol/client/stdio';
import { Client as V1Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StdioClientTransport as V1StdioClientTransport } from '@modelcontextprotocol/sdk/client/stdio.js';
import { InMemoryTransport as V1InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { McpServer as V1McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StdioServerTransport as V1StdioServerTransport } from '@modelcontextprotocol/sdk/server/stdio.js';
import { StreamableHTTPServerTransport as V1StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { InMemoryTransport as V2InMemoryTransport, McpServer as V2McpServer, WebStandardStreamableHTTPServerTransport } from '@modelcontextprotocol/server';
import { serveStdio, StdioServerTransport as V2StdioServerTransport } from '@modelcontextprotocol/server/stdio';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { wrap, type LayeredTransport } from '#core/wrap.ts';

const info = { name: 'types', version: '1.0.0' };
const stdio = { command: process.execPath, args: ['--version'] };

describe('wrap() accepts the SDK transports and the SDKs accept the result', () => {
  it('SDK v1: StdioClientTransport and InMemoryTransport into Client / McpServer', () => {
    const client = wrap(new V1StdioClientTransport(stdio));
    const [memoryClient, memoryServer] = V1InMemoryTransport.createLinkedPair().map((t) => wrap(t));

    expectTypeOf(new V1Client(info).connect).toBeCallableWith(client);
    expectTypeOf(new V1Client(info).connect).toBeCallableWith(memoryClient!);
    expectTypeOf(new V1McpServer(info).connect).toBeCallableWith(memoryServer!);
    expectTypeOf(new V1McpServer(info).connect).toBeCallableWith(wrap(new V1StdioServerTransport()));
    // The inner transport's own members keep their types.
    expectTypeOf(client.pid).toEqualTypeOf<number | null>();
    expectTypeOf(client).toExtend<LayeredTransport>();
    expect(client.pid).toBeNull(); // not started: nothing spawned
  });

  it('SDK v2: StdioClientTransport and InMemoryTransport into Client / McpServer / serveStdio', () => {
    const client = wrap(new V2StdioClientTransport(stdio));
    const [memoryClient, memoryServer] = V2InMemoryTransport.createLinkedPair().map((t) => wrap(t));

    expectTypeOf(new V2Client(info).connect).toBeCallableWith(client);
    expectTypeOf(new V2Client(info).connect).toBeCallableWith(memoryClient!);
    expectTypeOf(new V2McpServer(info).connect).toBeCallableWith(memoryServer!);
    expectTypeOf(serveStdio).toBeCallableWith(() => new V2McpServer(info), { transport: wrap(new V2StdioServerTransport()) });
    expectTypeOf(client.pid).toEqualTypeOf<number | null>();
    expect(client.pid).toBeNull();
  });

  it('across versions: a wrapped v1 transport into v2, a wrapped v2 transport into v1', () => {
    expectTypeOf(new V2Client(info).connect).toBeCallableWith(wrap(new V1StdioClientTransport(stdio)));
    expectTypeOf(new V1Client(info).connect).toBeCallableWith(wrap(new V2StdioClientTransport(stdio)));
    expectTypeOf(new V1McpServer(info).connect).toBeCallableWith(wrap(V2InMemoryTransport.createLinkedPair()[1]));
    expectTypeOf(new V2McpServer(info).connect).toBeCallableWith(wrap(V1InMemoryTransport.createLinkedPair()[1]));
  });
});

describe('members only the inner transport has are forwarded, typed', () => {
  it('SDK v1 StreamableHTTPServerTransport: handleRequest(req, res, body)', () => {
    const inner = new V1StreamableHTTPServerTransport({ sessionIdGenerator: undefined });
    const http = wrap(inner);

    expectTypeOf(http.handleRequest).toEqualTypeOf<typeof inner.handleRequest>();
    expectTypeOf(http.handleRequest).toBeCallableWith(new IncomingMessage(new Socket()), new ServerResponse(new IncomingMessage(new Socket())), {});
    expectTypeOf(new V1McpServer(info).connect).toBeCallableWith(http);
    expect(typeof http.handleRequest).toBe('function');
    expect(http.inner).toBe(inner);
  });

  it('SDK v2 WebStandardStreamableHTTPServerTransport: handleRequest(Request) → Response', () => {
    const http = wrap(new WebStandardStreamableHTTPServerTransport({ sessionIdGenerator: undefined }));

    expectTypeOf(http.handleRequest).toBeCallableWith(new Request('http://127.0.0.1/mcp'));
    expectTypeOf(http.handleRequest).returns.toEqualTypeOf<Promise<Response>>();
    expectTypeOf(new V2McpServer(info).connect).toBeCallableWith(http);
    expect(typeof http.handleRequest).toBe('function');
  });

  it('rejects what is not there', () => {
    const client = wrap(new V1StdioClientTransport(stdio));
    // @ts-expect-error A stdio client transport has no handleRequest, so neither has its wrapper.
    expect(client.handleRequest).toBeUndefined();
    // @ts-expect-error A transport needs start(), send() and close().
    expect(() => wrap({ start: async () => {} })).toThrow(TypeError);
  });
});
