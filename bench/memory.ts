/**
 * Issue 13, memory:
 *   - the gateway's RSS (and heap) per open session for a remote Streamable HTTP
 *     upstream: the CLI in a process of its own (`--expose-gc` and bench/probe.ts, which
 *     collects garbage and reports process.memoryUsage() over IPC), in front of the SDK's
 *     own server (bench/echo-http-server.ts, another process); sessions opened by raw
 *     fetch (`initialize` + `notifications/initialized`), then closed with DELETE;
 *   - the heap per exchange in flight through wrap() over InMemoryTransport (a far end
 *     that holds every request until released);
 *   - a long run through wrap(t, [standard()]) with the heap sampled after GC every
 *     100 000 exchanges: flat, or growing.
 * Every loop is bounded in count and in time; every process is stopped.
 */
import { fileURLToPath } from 'node:url';
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { JSONRPCMessage, Transport } from '#mcp-layers';
import { standard, wrap } from '#mcp-layers';
import { pingExchange } from './harness.ts';
import { ECHO_HTTP_SERVER, freePort, GATEWAY_CLI, gatewayConfigFile, type Started, startProcess } from './peers.ts';

declare const gc: (() => void) | undefined;

const PROBE = fileURLToPath(new URL('./probe.ts', import.meta.url));
const MB = 1024 * 1024;
const mb = (bytes: number) => (bytes / MB).toFixed(1);
const kb = (bytes: number) => (bytes / 1024).toFixed(1);

function sample(started: Started): Promise<NodeJS.MemoryUsage> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the gateway did not answer a memory sample within 10 s')), 10_000);
    started.child.once('message', (usage) => {
      clearTimeout(timer);
      resolve(usage as NodeJS.MemoryUsage);
    });
    started.child.send('sample');
  });
}

const HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };

async function openSession(url: string): Promise<string> {
  const init = await fetch(url, {
    method: 'POST',
    headers: HEADERS,
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'bench', version: '1.0.0' } } }),
    signal: AbortSignal.timeout(10_000),
  });
  const id = init.headers.get('mcp-session-id');
  await init.text();
  if (!init.ok || id === null) throw new Error(`initialize: HTTP ${init.status}`);
  const headers = { ...HEADERS, 'mcp-session-id': id, 'mcp-protocol-version': '2025-06-18' };
  const note = await fetch(url, { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', method: 'notifications/initialized' }), signal: AbortSignal.timeout(10_000) });
  await note.text();
  if (!note.ok) throw new Error(`notifications/initialized: HTTP ${note.status}`);
  return id;
}

const closeSession = async (url: string, id: string) => void (await (await fetch(url, { method: 'DELETE', headers: { 'mcp-session-id': id }, signal: AbortSignal.timeout(10_000) })).text());

/** Runs `task` for 0..n-1, `width` at a time. */
async function parallel(n: number, width: number, task: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < n) await task(next++);
  }));
}

async function perSession(sessions: number): Promise<string> {
  const upstreamPort = await freePort();
  const port = await freePort();
  const warm = 20;
  const config = gatewayConfigFile({
    upstream: { url: `http://127.0.0.1:${upstreamPort}/mcp` },
    downstream: { host: '127.0.0.1', port, transports: ['http'], maxSessions: sessions + 64, idleTimeoutMs: false, detachedTimeoutMs: false },
    observability: { logs: { level: 'error' } },
  });
  const stops: (() => Promise<void>)[] = [];
  try {
    const upstream = await startProcess('upstream SDK server', [ECHO_HTTP_SERVER, String(upstreamPort)], upstreamPort);
    stops.push(upstream.stop);
    const gateway = await startProcess('gateway', ['--expose-gc', '--import', PROBE, GATEWAY_CLI, 'gateway', '--config', config.path], port, { ipc: true });
    stops.push(gateway.stop);
    const url = `http://127.0.0.1:${port}/mcp`;
    const ids: string[] = [];
    const deadline = Date.now() + 180_000;
    const open = (n: number) =>
      parallel(n, 8, async () => {
        if (Date.now() > deadline) throw new Error('opening sessions took over 180 s');
        ids.push(await openSession(url));
      });
    const rows: string[] = [];
    const row = (label: string, u: NodeJS.MemoryUsage, base: NodeJS.MemoryUsage, open: number) =>
      rows.push(
        `| ${label} | ${open.toLocaleString('en-US')} | ${mb(u.rss)} | ${mb(u.heapUsed)} | ${open > warm ? kb((u.rss - base.rss) / (open - warm)) : ''} | ${open > warm ? kb((u.heapUsed - base.heapUsed) / (open - warm)) : ''} |`,
      );
    await open(warm);
    const base = await sample(gateway);
    row(`after ${warm} sessions (the baseline)`, base, base, warm);
    for (const target of [Math.round(sessions / 4), Math.round(sessions / 2), sessions]) {
      await open(target - ids.length);
      const u = await sample(gateway);
      row(`after ${target.toLocaleString('en-US')} sessions`, u, base, target);
    }
    const opened = ids.length;
    await parallel(ids.length, 8, (i) => closeSession(url, ids[i] as string));
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const after = await sample(gateway);
    rows.push(`| all ${opened.toLocaleString('en-US')} closed with DELETE, 1 s later | 0 | ${mb(after.rss)} | ${mb(after.heapUsed)} | | |`);
    await new Promise((resolve) => setTimeout(resolve, 5_000));
    const later = await sample(gateway);
    rows.push(`| the same, 6 s later | 0 | ${mb(later.rss)} | ${mb(later.heapUsed)} | | |`);
    return [
      `### Memory: the gateway process per open session, remote Streamable HTTP upstream, ${sessions.toLocaleString('en-US')} sessions`,
      '',
      '| when | sessions open | RSS MB | heap used MB (after GC) | RSS KB per session beyond the baseline | heap KB per session |',
      '| --- | ---: | ---: | ---: | ---: | ---: |',
      ...rows,
    ].join('\n');
  } finally {
    for (const stop of stops.reverse()) await stop();
    config.remove();
  }
}

const heapAfterGc = () => {
  if (typeof gc === 'function') {
    gc();
    gc();
  }
  return process.memoryUsage().heapUsed;
};

/** Heap per exchange in flight: `inFlight` requests held by the far end, then all answered. */
async function perExchangeInFlight(name: string, wrapper: (t: Transport) => Transport, inFlight: number): Promise<string> {
  const [near, far] = InMemoryTransport.createLinkedPair();
  const held: (string | number)[] = [];
  far.onmessage = (m: JSONRPCMessage) => {
    if ('method' in m && 'id' in m) held.push(m.id);
  };
  await far.start();
  const client = wrapper(near);
  const exchange = await pingExchange(client as Parameters<typeof pingExchange>[0]);
  const release = async () => {
    for (const id of held.splice(0)) await far.send({ jsonrpc: '2.0', id, result: {} });
  };
  // Warm up the paths, then measure.
  const warm = Array.from({ length: inFlight }, (_, i) => exchange(i));
  await new Promise((resolve) => setTimeout(resolve, 10));
  await release();
  await Promise.all(warm);
  const before = heapAfterGc();
  const pending = Array.from({ length: inFlight }, (_, i) => exchange(inFlight + i));
  await new Promise((resolve) => setTimeout(resolve, 10));
  const holding = heapAfterGc();
  const count = held.length;
  await release();
  await Promise.all(pending);
  const after = heapAfterGc();
  await client.close();
  return `| ${name} | ${count.toLocaleString('en-US')} | ${kb((holding - before) / count)} | ${mb(after - before)} |`;
}

/** `total` exchanges, 32 in flight, the heap after GC every `every`; stops early at `maxMs`. */
async function longRun(total: number, every: number, maxMs: number): Promise<string> {
  const [near, far] = InMemoryTransport.createLinkedPair();
  far.onmessage = (m: JSONRPCMessage) => {
    if ('method' in m && 'id' in m) void far.send({ jsonrpc: '2.0', id: m.id, result: {} });
  };
  await far.start();
  const client = wrap(near, [standard()]);
  const exchange = await pingExchange(client as Parameters<typeof pingExchange>[0]);
  const start = performance.now();
  const rows = [`| 0 | ${mb(heapAfterGc())} | ${mb(process.memoryUsage().rss)} | 0.0 |`];
  let done = 0;
  let stoppedEarly = false;
  while (done < total) {
    let next = 0;
    await Promise.all(Array.from({ length: 32 }, async () => {
      while (next < every) await exchange(done + next++);
    }));
    done += every;
    rows.push(`| ${done.toLocaleString('en-US')} | ${mb(heapAfterGc())} | ${mb(process.memoryUsage().rss)} | ${((performance.now() - start) / 1000).toFixed(1)} |`);
    if (performance.now() - start > maxMs && done < total) {
      stoppedEarly = true;
      break;
    }
  }
  await client.close();
  return [
    `### Memory: ${done.toLocaleString('en-US')} exchanges through wrap(t, [standard()]) over InMemoryTransport, 32 in flight, heap after GC every ${every.toLocaleString('en-US')}${stoppedEarly ? ` (stopped at the ${maxMs / 1000} s bound)` : ''}`,
    '',
    '| exchanges | heap used MB | RSS MB | elapsed s |',
    '| --- | ---: | ---: | ---: |',
    ...rows,
  ].join('\n');
}

export async function memorySections({ quick }: { quick: boolean }): Promise<string[]> {
  const inFlight = quick ? 100 : 1_000;
  const heapRows = [
    await perExchangeInFlight('wrap(t, [])', (t) => wrap(t, []), inFlight),
    await perExchangeInFlight('wrap(t, [standard()])', (t) => wrap(t, [standard()]), inFlight),
  ];
  return [
    await perSession(quick ? 100 : 1_000),
    [
      `### Memory: heap per exchange in flight, wrap() over InMemoryTransport, ${inFlight.toLocaleString('en-US')} requests held by the far end`,
      '',
      '| stack | in flight | heap KB per exchange in flight | heap left after all answered, MB |',
      '| --- | ---: | ---: | ---: |',
      ...heapRows,
    ].join('\n'),
    await longRun(quick ? 50_000 : 1_000_000, quick ? 10_000 : 100_000, 240_000),
  ];
}
