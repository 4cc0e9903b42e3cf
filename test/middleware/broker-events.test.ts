/**
 * The broker transports' events (`broker-*` in LayerEvents) as the observability layers
 * see them on a wrapped transport's bus: metrics() counts each in its family with bounded
 * labels only (no session id, subject or worker id), logging() writes each at its level
 * with the event's fields in snake_case. The events are published here by hand, one of
 * each shape; test/transports/brokers/events.test.ts has them from real brokers.
 */
import { InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { EventBus, type LayerEvents } from '#core/events.ts';
import type { Transport } from '#core/transport.ts';
import { wrap } from '#core/wrap.ts';
import { logging } from '#middleware/observability/logging.ts';
import { METRIC_FAMILIES, metrics } from '#middleware/observability/metrics.ts';
import { captureLogger } from '../support/log-capture.ts';
import { parseExposition, value } from '../support/prom-text.ts';

type Emission = { [K in keyof LayerEvents]: [K, LayerEvents[K]] }[keyof LayerEvents];

/** What a worker and its clients publish over a failover: a few of every broker event. */
const EMISSIONS: Emission[] = [
  ['broker-published', { subject: 'mcp.tools.req', via: 'stream', bytes: 180, method: 'tools/call' }],
  ['broker-published', { subject: 'mcp.tools.s.4f1c', via: 'stream', bytes: 120, method: 'tools/call' }],
  ['broker-published', { subject: '_INBOX.abc.m', via: 'core', bytes: 300, method: undefined }],
  ['broker-redelivered', { id: 7, method: 'tools/call', deliveryCount: 2, outcome: 'delivered' }],
  ['broker-redelivered', { id: 8, method: 'tools/call', deliveryCount: 2, outcome: 'refused' }],
  ['broker-deduplicated', { where: 'stream', id: 9 }],
  ['broker-deduplicated', { where: 'client', id: 9 }],
  ['broker-worker', { state: 'joined', worker: 'worker-a' }],
  ['broker-worker', { state: 'left', worker: 'worker-b', reason: 'no responders' }],
  ['broker-session', { state: 'opened', sessionId: 'session-4f1c' }],
  ['broker-session', { state: 'replayed', sessionId: 'session-4f1c' }],
  ['broker-session', { state: 'closed', sessionId: 'session-4f1c', reason: 'the client closed it' }],
  ['broker-garbage', { subject: 'mcp.tools.req', problem: 'a message that is not valid JSON', answered: false }],
];

const cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const close of cleanup.splice(0).reverse()) await close();
});

/** A wrapped in-memory transport named `worker` whose bus is `bus`, started with `layers`. */
async function wrappedOn(bus: EventBus, layers: Parameters<typeof wrap>[1]): Promise<Transport> {
  const [a, b] = InMemoryTransport.createLinkedPair();
  await b.start();
  const transport = wrap(a, layers, { name: 'worker', events: bus });
  transport.onmessage = () => {};
  await transport.start();
  cleanup.push(() => transport.close());
  return transport;
}

function emitAll(bus: EventBus): void {
  for (const [type, event] of EMISSIONS) bus.emit(type, event as never);
}

describe('metrics: the broker events', () => {
  it('counts each in its family, labelled by the transport whose bus carried it and bounded values only', async () => {
    const registry = new Registry();
    const bus = new EventBus();
    await wrappedOn(bus, [metrics({ registry })]);
    emitAll(bus);
    const samples = parseExposition(await registry.metrics());
    const worker = { transport: 'worker' };
    expect(value(samples, 'mcp_layers_broker_messages_published_total', { ...worker, via: 'stream' })).toBe(2);
    expect(value(samples, 'mcp_layers_broker_messages_published_total', { ...worker, via: 'core' })).toBe(1);
    expect(value(samples, 'mcp_layers_broker_published_bytes_total', { ...worker, via: 'stream' })).toBe(300);
    expect(value(samples, 'mcp_layers_broker_published_bytes_total', { ...worker, via: 'core' })).toBe(300);
    expect(value(samples, 'mcp_layers_broker_redeliveries_total', { ...worker, mcp_method_name: 'tools/call', outcome: 'delivered' })).toBe(1);
    expect(value(samples, 'mcp_layers_broker_redeliveries_total', { ...worker, mcp_method_name: 'tools/call', outcome: 'refused' })).toBe(1);
    expect(value(samples, 'mcp_layers_broker_deduplicated_total', { ...worker, where: 'stream' })).toBe(1);
    expect(value(samples, 'mcp_layers_broker_deduplicated_total', { ...worker, where: 'client' })).toBe(1);
    expect(value(samples, 'mcp_layers_broker_workers_total', { ...worker, state: 'joined' })).toBe(1);
    expect(value(samples, 'mcp_layers_broker_workers_total', { ...worker, state: 'left' })).toBe(1);
    for (const state of ['opened', 'replayed', 'closed']) expect(value(samples, 'mcp_layers_broker_sessions_total', { ...worker, state })).toBe(1);
    expect(value(samples, 'mcp_layers_broker_garbage_total', worker)).toBe(1);

    // Nothing unbounded became a label: no session id, subject, worker id or reason.
    const broker = samples.filter((s) => s.name.startsWith('mcp_layers_broker_'));
    expect(broker.length).toBeGreaterThan(0);
    for (const sample of broker) {
      const family = METRIC_FAMILIES.find((f) => sample.name === f.name);
      expect(Object.keys(sample.labels).every((label) => (family?.labels as readonly string[] | undefined)?.includes(label)), sample.name).toBe(true);
    }
    const labelValues = broker.flatMap((s) => Object.values(s.labels));
    for (const unbounded of ['session-4f1c', 'mcp.tools.req', '_INBOX.abc.m', 'worker-a', 'worker-b', 'no responders']) expect(labelValues).not.toContain(unbounded);
  });

  it('counts an event once when the worker and its sessions share its bus', async () => {
    const registry = new Registry();
    const bus = new EventBus();
    const layer = metrics({ registry });
    // Two sessions of one worker, wrapped with { events: transport.events }: one bus.
    await wrappedOn(bus, [layer]);
    await wrappedOn(bus, [layer]);
    bus.emit('broker-garbage', { subject: 'mcp.tools.req', problem: 'not ours', answered: false });
    expect(value(parseExposition(await registry.metrics()), 'mcp_layers_broker_garbage_total', { transport: 'worker' })).toBe(1);
  });
});

describe('logging: the broker events', () => {
  it('writes each at its level, with its fields in snake_case', async () => {
    const log = captureLogger('silly');
    const bus = new EventBus();
    await wrappedOn(bus, [logging({ logger: log.logger })]);
    emitAll(bus);
    // A worker leaving on its own (its close) gives no reason: not a warning.
    bus.emit('broker-worker', { state: 'left', worker: 'worker-a' });
    const records = log.records().filter((r) => String(r['event']).startsWith('broker-'));
    const levels = records.map((r) => [r['event'], r['level']]);
    expect(levels).toEqual([
      ['broker-published', 'debug'],
      ['broker-published', 'debug'],
      ['broker-published', 'debug'],
      ['broker-redelivered', 'warn'],
      ['broker-redelivered', 'warn'],
      ['broker-deduplicated', 'info'],
      ['broker-deduplicated', 'info'],
      ['broker-worker', 'info'],
      ['broker-worker', 'warn'],
      ['broker-session', 'info'],
      ['broker-session', 'warn'],
      ['broker-session', 'info'],
      ['broker-garbage', 'warn'],
      ['broker-worker', 'info'],
    ]);
    expect(records[0]).toMatchObject({ message: 'mcp broker-published', transport: 'worker', subject: 'mcp.tools.req', via: 'stream', bytes: 180, method: 'tools/call' });
    expect(records[2]).not.toHaveProperty('method');
    expect(records[4]).toMatchObject({ id: 8, method: 'tools/call', delivery_count: 2, outcome: 'refused' });
    expect(records[5]).toMatchObject({ where: 'stream', id: 9 });
    expect(records[8]).toMatchObject({ state: 'left', worker: 'worker-b', reason: 'no responders' });
    expect(records[10]).toMatchObject({ state: 'replayed', session_id: 'session-4f1c' });
    expect(records[12]).toMatchObject({ subject: 'mcp.tools.req', problem: 'a message that is not valid JSON', answered: false });
  });

  it('takes a level per broker event from levels, and refuses an old name', async () => {
    const log = captureLogger('silly');
    const bus = new EventBus();
    await wrappedOn(bus, [logging({ logger: log.logger, levels: { 'broker-published': false, 'broker-garbage': 'error' } })]);
    emitAll(bus);
    const records = log.records();
    expect(records.filter((r) => r['event'] === 'broker-published')).toEqual([]);
    expect(records.find((r) => r['event'] === 'broker-garbage')).toMatchObject({ level: 'error' });
    expect(() => logging({ logger: log.logger, levels: { garbage: 'warn' } as never })).toThrow(/unknown record "garbage".*broker-garbage/);
  });
});
