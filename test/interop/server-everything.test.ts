/**
 * A second real server: the MCP project's reference `server-everything`, started as
 * `mcp-server-everything stdio` in a child process. It is third-party code, so only the
 * client side is wrapped; SDK v1 and v2 clients must observe exactly what they observe
 * without the stack, and the wrapped transport must hold nothing afterwards.
 *
 * Not exercised here: cancellation. server-everything's long-running tool ignores its
 * abort signal and answers anyway; without the stack that late answer reaches the SDK
 * ("unknown message ID"), with it the core drops it by design (docs/architecture.md#ids). The
 * fixture servers, which honour cancellation, cover it in stdio.test.ts.
 */
import { describe, expect, it } from 'vitest';
import type { JSONRPCMessage } from '#core/jsonrpc.ts';
import { wrap } from '#core/wrap.ts';
import { createV1Client, createV2Client, type TestClient } from '../support/clients.ts';
import { newObservations, observingLayers } from '../support/layers.ts';
import { ZERO_STATS } from '../support/run.ts';
import { captureOutcome, type Step } from '../support/scenarios.ts';
import { collectStderr, withChildStderr, everythingServerProcess, stdioClientTransport } from '../support/stdio.ts';
import { normalizePeerIds, tap, type TapLog } from '../support/tap.ts';

async function script(client: TestClient): Promise<Step[]> {
  const steps: Step[] = [];
  const record = async (step: string, run: () => Promise<unknown>) => void steps.push({ step, value: await captureOutcome(run) });
  await record('tools/list', () => client.listTools());
  await record('echo', () => client.callTool('echo', { message: 'hello' }));
  await record('get-sum', () => client.callTool('get-sum', { a: 2, b: 3 }));
  await record('get-structured-content (outputSchema)', () => client.callTool('get-structured-content', { location: 'Chicago' }));
  await record('get-tiny-image', () => client.callTool('get-tiny-image', {}));
  // Its progress callbacks race with the response in the SDK (see stdio.test.ts); the wire is compared instead.
  await record('trigger-long-running-operation', () => client.callTool('trigger-long-running-operation', { duration: 0.06, steps: 2 }, { onprogress: () => {} }));
  await record('trigger-sampling-request (server→client)', () => client.callTool('trigger-sampling-request', { prompt: 'say hi', maxTokens: 10 }));
  await record('resources/list', () => client.listResources());
  await record('resources/templates/list', () => client.listResourceTemplates());
  await record('resources/read', async () => {
    const { resources } = (await client.listResources()) as { resources: Array<{ uri: string }> };
    return client.readResource(resources[0]!.uri);
  });
  await record('prompts/list', () => client.listPrompts());
  await record('prompts/get', () => client.getPrompt('args-prompt', { city: 'Paris', state: 'Texas' }));
  await record('completion/complete', () => client.completePrompt('completable-prompt', { name: 'name', value: 'A' }, { department: 'Engineering' }));
  await record('ping', () => client.ping());
  steps.push({ step: 'what the server asked the client', value: structuredClone(client.asked) });
  return steps;
}

interface Run {
  steps: Step[];
  log: TapLog;
  sdkErrors: string[];
  stats?: unknown;
  attempts: number;
}

async function run(sdk: 'v1' | 'v2', wrapped: boolean): Promise<Run> {
  const inner = stdioClientTransport(sdk, everythingServerProcess());
  const stderr = collectStderr(inner);
  const seen = newObservations();
  const transport = wrapped ? wrap(inner, observingLayers(seen)) : inner;
  const log = tap(transport);
  const client = sdk === 'v1' ? createV1Client() : createV2Client();
  const sdkErrors: string[] = [];
  client.onerror = (error) => void sdkErrors.push(error.message);
  await client.connect(transport).catch(async (error: unknown) => {
    await transport.close();
    throw withChildStderr(error, stderr());
  });
  try {
    const steps = await script(client);
    return { steps, log, sdkErrors, stats: wrapped ? (transport as ReturnType<typeof wrap>).stats() : undefined, attempts: seen.attempts };
  } catch (error) {
    throw withChildStderr(error, stderr());
  } finally {
    await client.close();
  }
}

const value = (r: Run, step: string) => r.steps.find((s) => s.step === step)?.value;
const isProgressError = (message: string) => message.startsWith('Received a progress notification for an unknown token');

describe.each(['v1', 'v2'] as const)('SDK %s Client ↔ server-everything over stdio (client side wrapped)', (sdk) => {
  it('observes the same results and messages as without the stack', async () => {
    const baseline = await run(sdk, false);
    const wrapped = await run(sdk, true);

    expect(value(baseline, 'get-sum')).toMatchObject({ ok: { content: [{ type: 'text', text: expect.stringContaining('5') }] } });
    expect(value(baseline, 'trigger-sampling-request (server→client)')).toMatchObject({ ok: { content: [{ text: expect.stringContaining('sampled: ') }] } });
    expect(value(baseline, 'completion/complete')).toMatchObject({ ok: { completion: { values: ['Alice'] } } });
    expect(value(baseline, 'ping')).toEqual({ ok: {} });

    expect(wrapped.steps).toEqual(baseline.steps);
    expect(normalizePeerIds(wrapped.log)).toEqual(normalizePeerIds(baseline.log));
    expect(wrapped.sdkErrors.filter((m) => !isProgressError(m))).toEqual(baseline.sdkErrors.filter((m) => !isProgressError(m)));
    expect(wrapped.stats).toEqual(ZERO_STATS);
    expect(wrapped.attempts).toBe(wrapped.log.sent.filter((m: JSONRPCMessage) => 'method' in m && 'id' in m).length);
  });
});
