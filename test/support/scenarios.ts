/**
 * One script of everything an MCP client does, run against a connected TestClient. It
 * returns what the application observed at each step (results, errors, progress), in a
 * form that compares with `toEqual` between an unwrapped and a wrapped run.
 *
 * Steps follow the connection's era: ping and push-style server→client requests
 * (sampling, elicitation) exist in the 2025 era only; the 2026-07-28 era removed ping
 * and carries server→client input in-band (`input_required`, the v2 server's `ask`).
 */
import type { Era, TestClient } from './clients.ts';
import { SLOW_STARTED_MESSAGE, STATIC_RESOURCE } from './fixture.ts';

export interface Step {
  step: string;
  value: unknown;
}

export interface ScenarioOptions {
  era: Era;
  /** The server's SDK: the v2 fixture has the multi-round-trip `ask` tool. */
  serverSdk: 'v1' | 'v2';
}

/** Every step, in order. A step that fails records the error instead of stopping the run. */
export async function runScenarios(client: TestClient, options: ScenarioOptions): Promise<Step[]> {
  const steps: Step[] = [];
  const record = async (step: string, run: () => Promise<unknown>) => {
    steps.push({ step, value: await captureOutcome(run) });
  };

  await record('tools/list', () => client.listTools());
  await record('tools/call echo (readOnlyHint)', () => client.callTool('echo', { text: 'hello' }));
  await record('tools/call add (idempotentHint)', () => client.callTool('add', { a: 2, b: 3 }));
  await record('tools/call append (no annotations)', () => client.callTool('append', { item: 'x' }));
  await record('tools/call fail (tool error)', () => client.callTool('fail', {}));
  await record('tools/call of an unknown tool', () => client.callTool('no-such-tool', {}));
  await record('tools/call progress', async () => {
    const progress: unknown[] = [];
    const result = await client.callTool('progress', { steps: 3 }, { onprogress: (p) => void progress.push(p) });
    return { result, progress };
  });

  await record('resources/list', () => client.listResources());
  await record('resources/templates/list', () => client.listResourceTemplates());
  await record('resources/read static', () => client.readResource(STATIC_RESOURCE.uri));
  await record('resources/read template', () => client.readResource('fixture://items/42'));
  await record('resources/read unknown', () => client.readResource('fixture://nowhere'));

  await record('prompts/list', () => client.listPrompts());
  await record('prompts/get', () => client.getPrompt('greet', { name: 'Ada', style: 'formal' }));

  if (options.era === 'legacy') {
    await record('ping', () => client.ping());
    await record('server→client sampling/createMessage', () => client.callTool('sample', { prompt: 'say hi' }));
    await record('server→client elicitation/create', () => client.callTool('elicit', { question: 'proceed?' }));
  }
  if (options.serverSdk === 'v2') {
    await record('server→client input (multi-round-trip)', () => client.callTool('ask', { question: 'continue?' }));
  }

  await record('cancellation', () => cancelSlowCall(client));
  await record('ledger after cancellation', () => client.callTool('ledger', {}));
  steps.push({ step: 'what the server asked the client', value: structuredClone(client.asked) });
  return steps;
}

/**
 * Calls `slow`, waits for its "started" progress (so the handler is certainly running),
 * then aborts the call through the SDK's AbortSignal. Returns the error the SDK raised.
 */
export async function cancelSlowCall(client: TestClient): Promise<unknown> {
  const controller = new AbortController();
  const call = client.callTool('slow', {}, {
    signal: controller.signal,
    onprogress: (progress) => {
      if ((progress as { message?: string }).message === SLOW_STARTED_MESSAGE) controller.abort(new Error('the test cancelled the call'));
    },
  });
  return captureOutcome(() => call);
}

/** A result as `{ ok }` or an error as `{ error: { name, message, code } }` (no stacks: those differ). */
export async function captureOutcome(run: () => Promise<unknown>): Promise<unknown> {
  try {
    return { ok: await run() };
  } catch (error) {
    return { error: describeError(error) };
  }
}

export function describeError(error: unknown): unknown {
  if (!(error instanceof Error)) return { thrown: String(error) };
  const { code, data } = error as Error & { code?: unknown; data?: unknown };
  return { name: error.name, message: error.message, code, data };
}
