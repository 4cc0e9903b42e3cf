/**
 * The reloader decides when a config is applied (docs/gateway.md, "Live reload"): only a
 * config `check` passes, one reload at a time, the last save winning; and /metrics says
 * which generation runs and how the last reload ended. The gateway's part (what applying
 * changes) is tested with real sessions in live-reload.test.ts.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { type LoadedConfig, loadConfigFile } from '#gateway/config/load.ts';
import { gatewayConfig } from '#gateway/config/gateway.ts';
import { RELOADED_PATHS } from '#gateway/reload/changes.ts';
import { type AppliedConfig, ConfigReloader } from '#gateway/reload/reloader.ts';
import { captureLogger } from '../../support/log-capture.ts';
import { parseExposition, value } from '../../support/prom-text.ts';

const GOOD = 'upstream:\n  command: node\ndownstream:\n  maxSessions: 8\n';

function setup(apply: (loaded: LoadedConfig) => Promise<AppliedConfig>, check: (loaded: LoadedConfig) => string[] = () => []) {
  const dir = mkdtempSync(join(tmpdir(), 'mcp-layers-reload-'));
  const file = join(dir, 'mcp-layers.yaml');
  writeFileSync(file, GOOD);
  const registry = new Registry();
  const captured = captureLogger('info');
  const reloader = new ConfigReloader({ load: () => loadConfigFile(file), check, apply, logger: captured.logger, registry });
  const metric = async (name: string, where: Record<string, string> = {}) => value(parseExposition(await registry.metrics()), name, where);
  return { file, reloader, captured, metric };
}

describe('ConfigReloader', () => {
  it('applies a config that passes check, and counts a generation', async () => {
    const seen: number[] = [];
    const { reloader, metric } = setup(async (loaded) => {
      seen.push(loaded.config.downstream?.maxSessions as number);
      return { changes: ['downstream.maxSessions'], needsRestart: [] };
    });
    expect(await metric('mcp_layers_gateway_config_generation')).toBe(1);
    const outcome = await reloader.reload('signal');
    expect(outcome).toEqual({ outcome: 'applied', generation: 2, problems: [], changes: ['downstream.maxSessions'] });
    expect(seen).toEqual([8]);
    expect(await metric('mcp_layers_gateway_config_generation')).toBe(2);
    expect(await metric('mcp_layers_gateway_config_reloads_total', { trigger: 'signal', outcome: 'applied' })).toBe(1);
    expect(await metric('mcp_layers_gateway_config_last_reload_success')).toBe(1);
    expect(await metric('mcp_layers_gateway_config_last_reload_timestamp_seconds')).toBeGreaterThan(0);
  });

  it('keeps the running config when the file is bad, and logs every problem by path and line', async () => {
    let applied = 0;
    const { file, reloader, captured, metric } = setup(async () => {
      applied++;
      return { changes: ['x'], needsRestart: [] };
    });
    writeFileSync(file, 'upstream:\n  command: node\ndownstream:\n  maxSessions: lots\n  port: -1\n');
    const outcome = await reloader.reload('watch');
    expect(outcome.outcome).toBe('rejected');
    expect(outcome.generation).toBe(1);
    expect(applied).toBe(0);
    expect(outcome.problems).toEqual(
      expect.arrayContaining([expect.stringMatching(/^downstream\.maxSessions: expected an integer >= 1, got "lots" \(line 4\)$/), expect.stringMatching(/^downstream\.port: .* \(line 5\)$/)]),
    );
    expect(outcome.problems).toHaveLength(2);
    const record = captured.records().find((r) => r['event'] === 'config-reload') as Record<string, unknown>;
    expect(record['level']).toBe('error');
    expect(record['problems']).toEqual(outcome.problems);
    expect(String(record['message'])).toContain('downstream.maxSessions: expected an integer >= 1, got "lots" (line 4)');
    expect(await metric('mcp_layers_gateway_config_last_reload_success')).toBe(0);
    expect(await metric('mcp_layers_gateway_config_reloads_total', { trigger: 'watch', outcome: 'rejected' })).toBe(1);
    expect(await metric('mcp_layers_gateway_config_generation')).toBe(1);
  });

  it("refuses what check finds beyond the schema (a missing command), as `mcp-layers check` would", async () => {
    let applied = 0;
    const { reloader } = setup(
      async () => {
        applied++;
        return { changes: ['x'], needsRestart: [] };
      },
      () => ['upstream.command: "nope" is not on PATH'],
    );
    const outcome = await reloader.reload('api');
    expect(outcome).toMatchObject({ outcome: 'rejected', problems: ['upstream.command: "nope" is not on PATH'] });
    expect(applied).toBe(0);
  });

  it('a config that changes nothing is not a new generation; settings that need a restart are named', async () => {
    const { reloader, captured, metric } = setup(async () => ({ changes: [], needsRestart: ['downstream.port'] }));
    expect(await reloader.reload('signal')).toMatchObject({ outcome: 'unchanged', generation: 1 });
    expect(await metric('mcp_layers_gateway_config_reloads_total', { trigger: 'signal', outcome: 'unchanged' })).toBe(1);
    const warning = captured.records().find((r) => r['event'] === 'config-reload-restart-needed');
    expect(warning).toMatchObject({ level: 'warn', setting: 'downstream.port' });
  });

  it('runs one reload at a time: those asked for meanwhile are one more, reading the file as it is then', async () => {
    const started: number[] = [];
    const gates: Array<() => void> = [];
    const { file, reloader } = setup(async (loaded) => {
      started.push(loaded.config.downstream?.maxSessions as number);
      await new Promise<void>((resolve) => gates.push(resolve));
      return { changes: ['downstream.maxSessions'], needsRestart: [] };
    });
    const first = reloader.reload('signal');
    await expect.poll(() => started.length).toBe(1);
    writeFileSync(file, GOOD.replace('8', '9'));
    const second = reloader.reload('watch');
    writeFileSync(file, GOOD.replace('8', '10'));
    const third = reloader.reload('watch');
    expect(third).toBe(second);
    (gates.shift() as () => void)();
    expect(await first).toMatchObject({ generation: 2 });
    await expect.poll(() => started.length).toBe(2);
    (gates.shift() as () => void)();
    expect(await second).toMatchObject({ generation: 3 });
    expect(started).toEqual([8, 10]);
  });

  it('an apply that throws is a rejected reload, not a crash', async () => {
    const { reloader } = setup(async () => {
      throw new Error('could not connect to the new upstream');
    });
    expect(await reloader.reload('api')).toMatchObject({ outcome: 'rejected', generation: 1, problems: ['could not connect to the new upstream'] });
  });
});

describe('what a reload looks at', () => {
  it('covers every section and setting of the config (one added to the schema must say whether it reloads)', () => {
    const shape = (schema: unknown): Record<string, unknown> => {
      let current = schema as { shape?: Record<string, unknown>; def?: { innerType?: unknown; in?: unknown; schema?: unknown } };
      while (current.shape === undefined) current = (current.def?.innerType ?? current.def?.in ?? current.def?.schema) as typeof current;
      return current.shape;
    };
    const paths = (schema: unknown, prefix: string, depth: number): string[] =>
      Object.entries(shape(schema)).flatMap(([key, child]) => {
        const path = `${prefix}${key}`;
        return depth > 1 && ['downstream', 'observability'].includes(path) ? paths(child, `${path}.`, depth - 1) : [path];
      });
    const covered = (path: string) => RELOADED_PATHS.some((p) => p === path || path.startsWith(`${p}.`) || p.startsWith(`${path}.`));
    const all = paths(gatewayConfig, '', 2).filter((p) => p !== '$schema');
    expect(all.length).toBeGreaterThan(10);
    expect(all.filter((p) => !covered(p))).toEqual([]);
  });
});
