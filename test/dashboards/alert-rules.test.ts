/**
 * The alert rules with Prometheus' own tool: `promtool check rules` (syntax, PromQL,
 * templates) and `promtool test rules` (dashboards/alerts.test.yaml: synthetic series
 * that must — and must not — fire each alert, with its labels and text). Skipped, saying
 * so, only when `promtool` is not on PATH (CI installs Debian's prometheus package).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { ALERT_TESTS_FILE, ALERTS_FILE } from './support/artifacts.ts';
import { onPath } from './support/prometheus.ts';

const PROMTOOL = onPath('promtool');
const run = promisify(execFile);

if (PROMTOOL === undefined) {
  console.warn('test/dashboards/alert-rules.test.ts: SKIPPED — `promtool` is not on PATH (CI installs it: .ci/system-packages; locally: apt-get install prometheus)');
}

describe.skipIf(PROMTOOL === undefined)('alert rules (promtool)', () => {
  it('promtool check rules accepts dashboards/alerts.yaml', async () => {
    const { stdout } = await run(PROMTOOL as string, ['check', 'rules', ALERTS_FILE]);
    expect(stdout).toMatch(/SUCCESS: 18 rules found/);
  });

  it('promtool test rules passes dashboards/alerts.test.yaml', async () => {
    const result = await run(PROMTOOL as string, ['test', 'rules', ALERT_TESTS_FILE]).catch((error: { stdout?: string; stderr?: string }) => {
      throw new Error(`promtool test rules failed:\n${error.stdout ?? ''}${error.stderr ?? ''}`);
    });
    expect(result.stdout).toMatch(/SUCCESS/);
  });
});
