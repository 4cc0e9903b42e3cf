/**
 * ClientPolicies (src/gateway/clients/policies.ts) on its own: identity by the digest
 * rule, and `apply(config)` — the seam a live reload uses — swapping policies by client
 * name while a client that stays keeps its bucket's tokens and its requests in flight.
 * The clock is the test's; the metrics are a real prom-client registry.
 */
import type { IncomingMessage } from 'node:http';
import { Counter, Gauge, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import type { DownstreamConfig } from '#gateway/config/gateway.ts';
import { ClientPolicies } from '#gateway/clients/policies.ts';
import { AuthenticationError } from '#transports/guard.ts';

function policies(config: DownstreamConfig) {
  const registry = new Registry();
  const metrics = {
    requests: new Counter({ name: 'requests', help: 'h', labelNames: ['client', 'outcome'], registers: [registry] }),
    inFlight: new Gauge({ name: 'in_flight', help: 'h', labelNames: ['client'], registers: [registry] }),
  };
  const clock = { now: 0 };
  return { clients: new ClientPolicies(config, metrics, () => clock.now), clock, registry };
}

const request = (headers: Record<string, string>) => ({ headers }) as unknown as IncomingMessage;
const call = (name: string) => ({ jsonrpc: '2.0' as const, id: 1, method: 'tools/call', params: { name } });

describe('ClientPolicies', () => {
  it('identifies by bearer token, then by header value; bearerTokens are `unknown`; anything else presented is a 401', () => {
    const { clients } = policies({ clients: [{ name: 'a', token: 'tok-a' }, { name: 'b', value: 'val-b' }], clientHeader: 'X-Api-Key', bearerTokens: ['shared'] });
    expect(clients.identify(request({ authorization: 'Bearer tok-a' }))).toBe('a');
    expect(clients.identify(request({ 'x-api-key': 'val-b' }))).toBe('b');
    expect(clients.identify(request({ authorization: 'bearer shared' }))).toBe('unknown');
    for (const headers of [{}, { authorization: 'Bearer tok-b' }, { 'x-api-key': 'tok-a' }] as Array<Record<string, string>>) expect(() => clients.identify(request(headers))).toThrow(AuthenticationError);
    const seen = request({ authorization: 'Bearer tok-a' });
    clients.identify(seen);
    expect(clients.clientOf(seen)).toBe('a');
  });

  it('apply() keeps the tokens and in-flight count of a client that stays, takes a new policy at once, and refuses a removed client', () => {
    const { clients, clock } = policies({ clients: [{ name: 'a', token: 't', rateLimit: { rate: 1, burst: 3 }, maxInFlight: 5 }, { name: 'gone', token: 'g' }] });
    const a = clients.bind('a');
    const gone = clients.bind('gone');
    const release = (admitted: ReturnType<typeof a.admit>) => {
      if (!('release' in admitted)) throw new Error(`refused: ${admitted.refused.message}`);
      return admitted.release;
    };
    const first = release(a.admit(call('x')));
    const second = release(a.admit(call('x')));

    clients.apply({ clients: [{ name: 'a', token: 't', rateLimit: { rate: 1, burst: 10 }, maxInFlight: 2, tools: ['y'] }] });
    // One token left of the three, whatever the new burst; two in flight already, at the new limit of two.
    expect(a.admit(call('x'))).toMatchObject({ refused: { reason: 'tool-not-allowed' } });
    expect(a.admit(call('y'))).toMatchObject({ refused: { reason: 'client-concurrency-limit' } });
    first();
    first();
    const third = release(a.admit(call('y')));
    second();
    third();
    expect(a.admit(call('y'))).toMatchObject({ refused: { reason: 'client-rate-limit', retryAfterMs: 1000 } });
    clock.now = 1000;
    expect('release' in a.admit(call('y'))).toBe(true);

    expect(gone.admit(call('x'))).toMatchObject({ refused: { reason: 'client-removed', code: -32058 } });
    expect(() => clients.identify(request({ authorization: 'Bearer g' }))).toThrow(AuthenticationError);
  });

  it('counts every decision by client and outcome, and in-flight requests, in the registry', async () => {
    const { clients, registry } = policies({ clients: [{ name: 'a', token: 't', maxInFlight: 1, tools: ['ok'] }] });
    const a = clients.bind('a');
    const admitted = a.admit(call('ok'));
    a.admit(call('ok'));
    a.admit(call('no'));
    const text = await registry.metrics();
    expect(text).toContain('requests{client="a",outcome="admitted"} 1');
    expect(text).toContain('requests{client="a",outcome="concurrency-limited"} 1');
    expect(text).toContain('requests{client="a",outcome="denied"} 1');
    expect(text).toContain('in_flight{client="a"} 1');
    expect(text).toContain('in_flight{client="unknown"} 0');
    if ('release' in admitted) admitted.release();
    expect(await registry.metrics()).toContain('in_flight{client="a"} 0');
  });
});
