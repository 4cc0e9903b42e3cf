/**
 * logging(): one structured record per exchange and per event on a real winston logger,
 * with trace ids, payloads off by default, and no secret in any line it writes.
 */
import { context, trace } from '@opentelemetry/api';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import winston from 'winston';
import { z } from 'zod';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { logging } from '#middleware/observability/logging.ts';
import { Redactor } from '#middleware/observability/redact.ts';
import { tracing } from '#middleware/observability/tracing.ts';
import type { LayerEvents } from '#core/events.ts';
import type { JSONRPCMessage, JSONRPCRequest } from '#core/jsonrpc.ts';
import type { Middleware } from '#core/layer.ts';
import { wrap } from '#core/wrap.ts';
import { emitEveryEvent, everyEvent, publish } from '../support/events.ts';
import { captureLogger } from '../support/log-capture.ts';
import { connectPair, type Pair } from '../support/apps.ts';
import { type OtelHarness, startOtel } from '../support/otel.ts';

const settle = () => new Promise((resolve) => setImmediate(resolve));

/** The exchange record matching `where` (event records share the exchange's fields). */
function exchange(records: Array<Record<string, unknown>>, where: (r: Record<string, unknown>) => boolean): Record<string, unknown> | undefined {
  return records.find((r) => r['event'] === 'exchange' && where(r));
}

let otel: OtelHarness;
let pair: Pair | undefined;
beforeAll(() => {
  otel = startOtel();
});
afterAll(async () => {
  await otel.shutdown();
});
afterEach(async () => {
  await pair?.close();
  pair = undefined;
  otel.reset();
});

describe('logging: one record per exchange', () => {
  it('records direction, method, ids, outcome, duration and attempts on both sides, and no payload by default', async () => {
    const client = captureLogger('info');
    const server = captureLogger('info');
    pair = await connectPair([logging({ logger: client.logger })], [logging({ logger: server.logger })]);
    await pair.client.callTool({ name: 'echo', arguments: { text: 'hello' } });
    await settle();
    const sent = exchange(client.records(), (r) => r['method'] === 'tools/call');
    expect(sent).toEqual({
      level: 'info',
      message: expect.stringMatching(/^mcp outbound tools\/call echo: ok in [\d.]+ ms$/),
      event: 'exchange',
      transport: 'client',
      direction: 'outbound',
      kind: 'request',
      method: 'tools/call',
      id: expect.any(Number),
      tool: 'echo',
      protocol_version: pair.clientTransport.protocolVersion,
      outcome: 'ok',
      duration_ms: expect.any(Number),
      attempts: 1,
      wire_ids: [expect.any(Number)],
    });
    const received = exchange(server.records(), (r) => r['method'] === 'tools/call');
    expect(received).toMatchObject({ direction: 'inbound', kind: 'request', transport: 'server', outcome: 'ok', tool: 'echo' });
    // The server logs the id it saw on the wire: the client's wire id.
    expect(received?.['id']).toBe((sent?.['wire_ids'] as number[] | undefined)?.[0]);
    for (const line of [...client.lines, ...server.lines]) expect(line).not.toContain('hello');
  });

  it('logs failures at warn with the error, tool errors included, and notifications at debug', async () => {
    const log = captureLogger('silly');
    pair = await connectPair([logging({ logger: log.logger })], []);
    await pair.client.callTool({ name: 'fail', arguments: { why: 'x' } });
    await expect(pair.client.getPrompt({ name: 'missing' })).rejects.toThrow(/missing/);
    await settle();
    const records = log.records();
    expect(exchange(records, (r) => r['tool'] === 'fail')).toMatchObject({ level: 'warn', outcome: 'tool_error' });
    expect(exchange(records, (r) => r['prompt'] === 'missing')).toMatchObject({
      level: 'warn',
      outcome: 'error',
      error: { code: -32602, message: expect.stringContaining('missing') },
    });
    expect(exchange(records, (r) => r['method'] === 'notifications/initialized')).toMatchObject({ level: 'debug', kind: 'notification', outcome: 'ok' });
  });

  it('names the layer and reason when the stack failed the request', async () => {
    const log = captureLogger('info');
    const refuse: Middleware = async (ctx, next) => {
      if (ctx.method !== 'ping') return next();
      const { CircuitOpenError } = await import('#middleware/circuit-breaker.ts');
      throw new CircuitOpenError('Circuit open for upstream', { retryAfterMs: 1000 });
    };
    pair = await connectPair([logging({ logger: log.logger }), refuse], []);
    await expect(pair.client.ping()).rejects.toThrow(/Circuit open/);
    await settle();
    expect(exchange(log.records(), (r) => r['method'] === 'ping')).toMatchObject({
      level: 'warn',
      outcome: 'error',
      error: { code: -32050, message: 'Circuit open for upstream', layer: 'circuitBreaker', reason: 'breaker-open' },
    });
  });

  it('carries trace_id and span_id of the exchange span when tracing() is in the stack, wherever', async () => {
    const log = captureLogger('info');
    pair = await connectPair([logging({ logger: log.logger }), tracing()], []);
    await pair.client.ping();
    await settle();
    const span = otel.spans().find((s) => s.name === 'ping');
    expect(exchange(log.records(), (r) => r['method'] === 'ping')).toMatchObject({ trace_id: span?.spanContext().traceId, span_id: span?.spanContext().spanId });
  });

  it('carries the caller’s active span ids without tracing() in the stack', async () => {
    const log = captureLogger('info');
    pair = await connectPair([logging({ logger: log.logger })], []);
    const span = trace.getTracer('app').startSpan('step');
    await context.with(trace.setSpan(context.active(), span), () => pair?.client.ping());
    span.end();
    await settle();
    expect(exchange(log.records(), (r) => r['method'] === 'ping')).toMatchObject({ trace_id: span.spanContext().traceId, span_id: span.spanContext().spanId });
  });

  it('logs payloads when asked, truncated', async () => {
    const log = captureLogger('info');
    pair = await connectPair([logging({ logger: log.logger, payloads: { maxLength: 40 } })], []);
    await pair.client.callTool({ name: 'echo', arguments: { text: 'z'.repeat(100) } });
    await settle();
    const record = exchange(log.records(), (r) => r['method'] === 'tools/call');
    expect(record?.['params']).toMatch(/^\{"name":"echo","arguments":\{"text":"zzzz… \(\d+ more characters\)$/);
    expect(String(record?.['params']).startsWith(`{"name":"echo","arguments":{"text":"${'z'.repeat(4)}…`)).toBe(true);
    expect(typeof record?.['result']).toBe('string');
  });
});

describe('logging: one record per event', () => {
  it('writes a record for every event the core and the layers publish', async () => {
    const log = captureLogger('silly');
    const publisher: Middleware = async (ctx, next) => {
      if (ctx.method === 'ping') emitEveryEvent(ctx);
      await next();
    };
    pair = await connectPair([logging({ logger: log.logger }), publisher], []);
    await pair.client.ping();
    await pair.close();
    pair = undefined;
    await settle();
    const records = log.records();
    const events = new Set(records.map((r) => r['event']));
    const all = Object.keys(everyEvent({} as never)) as Array<keyof LayerEvents>;
    expect(all.filter((type) => !events.has(type))).toEqual([]);
    const retry = records.find((r) => r['event'] === 'retry');
    expect(retry).toMatchObject({ level: 'warn', method: 'ping', transport: 'client', attempt: 2, delay_ms: 100, reason: 'http-503' });
    expect(records.find((r) => r['event'] === 'breaker-state')).toMatchObject({ level: 'warn', key: 'upstream', from: 'closed', to: 'open', transport: 'client' });
    expect(records.find((r) => r['event'] === 'connection')).toMatchObject({ transport: 'client', event_transport: 'ws', state: 'open' });
    expect(records.find((r) => r['event'] === 'invalid-message')).toMatchObject({ error: { name: 'Error', message: 'bad json-rpc' } });
    expect(records.find((r) => r['event'] === 'close' && r['transport'] === 'client')).toMatchObject({ level: 'info' });
  });

  it('lets levels be changed or silenced per record', async () => {
    const log = captureLogger('info');
    const publisher: Middleware = async (ctx, next) => {
      publish(ctx, 'retry', { attempt: 2, delayMs: 1, reason: 'x' });
      publish(ctx, 'hedge', { attempt: 2, delayMs: 1 });
      await next();
    };
    pair = await connectPair([logging({ logger: log.logger, levels: { retry: 'error', hedge: false, notification: 'info' } }), publisher], []);
    await pair.client.ping();
    await settle();
    const records = log.records();
    expect(records.filter((r) => r['event'] === 'retry').map((r) => r['level'])).toContain('error');
    expect(records.filter((r) => r['event'] === 'hedge')).toEqual([]);
    expect(exchange(records, (r) => r['method'] === 'notifications/initialized')).toMatchObject({ level: 'info' });
  });
});

describe('logging: secrets never reach a log line', () => {
  const secrets = {
    bearer: 'sk-live-BEARER-0123456789',
    refresh: 'rt-REFRESH-abcdef987654',
    clientSecret: 'cs-CLIENTSECRET-55aa',
    password: 'hunter2-PASSWORD',
    cookie: 'sid=COOKIE-77bb',
    accessToken: 'at-ACCESS-9876zz',
    jwt: 'eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.SIGNATURE_part',
    ssn: '078-05-1120',
  };

  it('redacts them from headers, params, results, errors and events, with payload logging on, before any format runs', async () => {
    // A format that keeps what reaches it: it must already be redacted.
    const seenByFormat: string[] = [];
    const spy = winston.format((info) => {
      seenByFormat.push(JSON.stringify(info));
      return info;
    });
    const log = captureLogger('silly', winston.format.combine(spy(), winston.format.json()));
    const layer = logging({ logger: log.logger, payloads: true, redact: ['params.arguments.ssn'] });

    // 1. Real SDK client and server: a tool call whose arguments and result carry secrets.
    pair = await connectPair([layer, tracing()], [layer]);
    pair.server.registerTool('login', { inputSchema: { client_secret: z.string(), refresh_token: z.string(), note: z.string(), ssn: z.string() } }, async (args) => ({
      content: [{ type: 'text', text: `exchanged refresh_token=${args.refresh_token} with Authorization: Bearer ${secrets.bearer}` }],
      isError: true,
    }));
    await pair.client.callTool({
      name: 'login',
      arguments: { client_secret: secrets.clientSecret, refresh_token: secrets.refresh, note: `password=${secrets.password}; token ${secrets.jwt}`, ssn: secrets.ssn },
    });

    // 2. Headers on send options and on an inbound request, and an error response carrying tokens.
    const [a, b] = InMemoryTransport.createLinkedPair();
    const peer = wrap(b, [layer], { name: 'peer' });
    peer.onmessage = (message) => {
      const request = message as JSONRPCRequest;
      void peer.send({
        jsonrpc: '2.0',
        id: request.id,
        error: { code: -32053, message: `invalid_grant: refresh_token=${secrets.refresh}`, data: { access_token: secrets.accessToken, detail: `Authorization: Bearer ${secrets.bearer}` } },
      });
    };
    await peer.start();
    const client = wrap(a, [layer], { name: 'raw-client' });
    client.onmessage = () => {};
    await client.start();
    await client.send({ jsonrpc: '2.0', id: 1, method: 'oauth/token', params: { grant_type: 'refresh_token', refresh_token: secrets.refresh, client_secret: secrets.clientSecret } }, {
      headers: { Authorization: `Bearer ${secrets.bearer}`, Cookie: secrets.cookie },
    });
    // An inbound request as an HTTP transport would deliver it, with the request's headers.
    const inbound = captureExtraDelivery(a);
    inbound({ jsonrpc: '2.0', id: 9, method: 'ping', params: { password: secrets.password } }, { requestInfo: { headers: { authorization: `Bearer ${secrets.bearer}`, cookie: secrets.cookie, 'x-api-key': secrets.accessToken } } });

    // 3. Events whose reasons quote secrets.
    const bus = pair.clientTransport.events;
    bus.emit('token-refresh', { outcome: 'failed', durationMs: 5, reason: `refresh_token=${secrets.refresh}`, error: new Error(`client_secret=${secrets.clientSecret} rejected`) });
    bus.emit('reconnect', { attempt: 1, delayMs: 1, outcome: 'failed', error: new Error(`401 {"access_token":"${secrets.accessToken}"}`) });
    await settle();
    await settle();

    const everything = [...log.lines, ...seenByFormat];
    expect(log.lines.length).toBeGreaterThan(8);
    const leaks = everything.flatMap((line) => Object.entries(secrets).filter(([, secret]) => line.includes(secret)).map(([name]) => `${name} in ${line}`));
    expect(leaks).toEqual([]);
    expect(everything.filter((line) => line.includes('COOKIE'))).toEqual([]);
    // The records are still there, with the secrets' places marked.
    const records = log.records();
    expect(exchange(records, (r) => r['method'] === 'oauth/token' && r['direction'] === 'outbound')).toMatchObject({
      headers: { Authorization: '[REDACTED]', Cookie: '[REDACTED]' },
      params: { grant_type: 'refresh_token', refresh_token: '[REDACTED]', client_secret: '[REDACTED]' },
      error: { code: -32053, data: { access_token: '[REDACTED]', detail: 'Authorization: [REDACTED]' } },
    });
    expect(exchange(records, (r) => r['tool'] === 'login' && r['direction'] === 'outbound')).toMatchObject({
      params: { arguments: { ssn: '[REDACTED]', note: 'password=[REDACTED]; token [REDACTED]' } },
    });
    await client.close();
  });
});

describe('logging: records redacted as they are built', () => {
  it('leave nothing a whole-record pass would change, for every field that comes from outside', async () => {
    const rules = ['ssn', /sk-[a-z0-9]+/g];
    const log = captureLogger('silly');
    // No path rule: exchange records are redacted field by field as they are built.
    const layer = logging({ logger: log.logger, payloads: { maxLength: 64 }, redact: rules });
    const [a, b] = InMemoryTransport.createLinkedPair();
    const peer = wrap(b, [layer], { name: 'peer' });
    peer.onmessage = (message) => {
      const request = message as JSONRPCRequest;
      const error = { code: -32001, message: 'refresh_token=rt-ERR-1 rejected', data: { ssn: '078-05-1120', note: 'sk-errdata' } };
      void peer.send(request.method === 'ping' ? { jsonrpc: '2.0', id: request.id, result: { token: 'tk-RESULT-2', text: 'key sk-result' } } : { jsonrpc: '2.0', id: request.id, error });
    };
    await peer.start();
    const client = wrap(a, [layer], { name: 'raw-client' });
    client.onmessage = () => {};
    await client.start();
    const long = `Bearer abc.def.ghi ${'x'.repeat(80)} password=pw-LONG-3`;
    await client.send({ jsonrpc: '2.0', id: 'Bearer id-SECRET-4', method: 'ping', params: { note: long, ssn: '1', sk: 'sk-param' } }, { headers: { 'x-api-key': 'ak-HEADER-5', other: 'sk-header' } });
    await client.send({ jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'api_key=ak-TOOL-6', arguments: {} } });
    await client.send({ jsonrpc: '2.0', id: 3, method: 'prompts/get', params: { name: 'sk-prompt' } });
    await client.send({ jsonrpc: '2.0', id: 4, method: 'resources/read', params: { uri: 'https://x.example/?token=tk-URI-7' } });
    await client.send({ jsonrpc: '2.0', id: 5, method: 'vendor/password=pw-METHOD-8' });
    await settle();
    await settle();
    const records = log.records().filter((r) => r['event'] === 'exchange');
    expect(records.length).toBeGreaterThanOrEqual(10);
    for (const line of log.lines) expect(line).not.toMatch(/SECRET|RESULT|LONG|HEADER|TOOL|URI|METHOD|ERR-1|078-05|sk-[a-z]/);
    const whole = new Redactor(rules);
    for (const record of records) expect(whole.redactRecord(structuredClone(record))).toEqual(record);
    expect(exchange(records, (r) => r['method'] === 'ping' && r['direction'] === 'outbound')).toMatchObject({
      id: 'Bearer [REDACTED]',
      headers: { 'x-api-key': '[REDACTED]', other: '[REDACTED]' },
      result: { token: '[REDACTED]', text: 'key [REDACTED]' },
    });
    await client.close();
    await peer.close();
  });
});

describe('logging: robustness and options', () => {
  it('never lets a throwing logger break the exchange', async () => {
    const logger = { log: () => { throw new Error('disk full'); } };
    pair = await connectPair([logging({ logger })], [logging({ logger })]);
    await expect(pair.client.callTool({ name: 'echo', arguments: { text: 'still works' } })).resolves.toMatchObject({ content: [{ text: 'still works' }] });
  });

  it('rejects invalid options naming the option', () => {
    const { logger } = captureLogger();
    expect(() => logging({} as never)).toThrow('logging.logger: expected a winston Logger');
    expect(() => logging({ logger, level: 'loud' })).toThrow("logging.level: expected one of the logger's levels (error, warn, info, http, verbose, debug, silly), got \"loud\"");
    expect(() => logging({ logger, levels: { retries: 'warn' } as never })).toThrow('logging.levels: unknown record "retries"');
    expect(() => logging({ logger, payloads: { maxLength: 3 } })).toThrow('logging.payloads.maxLength: expected an integer >= 16, got 3');
    expect(() => logging({ logger, payload: true } as never)).toThrow('logging.payload: expected one of the known options');
    expect(() => logging({ logger, redact: [42 as never] })).toThrow('logging.redact[0]');
  });
});

/** Delivers a message to `from`'s peer the way an HTTP server transport does: with extra info. */
function captureExtraDelivery(from: InMemoryTransport): (message: JSONRPCMessage, extra: unknown) => void {
  const other = (from as unknown as { _otherTransport: { onmessage: (m: JSONRPCMessage, e: unknown) => void } })._otherTransport;
  return (message, extra) => other.onmessage(message, extra);
}
