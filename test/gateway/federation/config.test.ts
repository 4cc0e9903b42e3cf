/**
 * `upstreams:` and `federation:` in the config (docs/gateway.md, "Several upstreams"): what
 * the schema refuses, named by path, and what `mcp-layers check` (checkGateway) finds in
 * each upstream — its stack, its command — named under `upstreams.<name>`.
 */
import { describe, expect, it } from 'vitest';
import { ConfigError, validateConfig } from '#gateway/config/load.ts';
import { checkGateway } from '#gateway/gateway.ts';

const problemsOf = (config: unknown): readonly string[] => {
  try {
    validateConfig(config, 'test config');
    return [];
  } catch (error) {
    if (error instanceof ConfigError) return error.problems;
    throw error;
  }
};
const stdio = { command: process.execPath, args: ['server.js'] };

describe('upstreams in the config', () => {
  it('takes a map of upstreams by name, with allow/deny lists and the federation section', () => {
    const { config } = validateConfig(
      { upstreams: { files: { ...stdio, tools: { allow: ['read_*'], deny: ['read_secret'] } }, 'web-2': { url: 'https://example.com/mcp' } }, federation: { prefix: 'on-clash', separator: '.', pageSize: 10 } },
      'test config',
    );
    expect(Object.keys(config.upstreams ?? {})).toEqual(['files', 'web-2']);
  });

  it('refuses what cannot work, each at its path', () => {
    expect(problemsOf({ upstream: stdio, upstreams: { a: stdio } })).toEqual(['(the top level): expected exactly one of upstream (one MCP server) or upstreams (several, by name), got both']);
    expect(problemsOf({ upstreams: {} })).toEqual(['upstreams: expected at least one upstream']);
    expect(problemsOf({ upstreams: { '9lives': stdio } })[0]).toMatch(/^upstreams\["9lives"\]: expected a name of 1 to 32 letters, digits and -, starting with a letter/);
    expect(problemsOf({ upstreams: { 'a+b': stdio } })[0]).toMatch(/^upstreams\["a\+b"\]: expected a name/);
    expect(problemsOf({ upstreams: { q: { url: 'nats://127.0.0.1:4222/svc' } } })).toEqual([expect.stringMatching(/^upstreams\.q\.url: a broker upstream \(nats:\/\/, redis:\/\/\) is served only as the one `upstream:`/)]);
    expect(problemsOf({ upstreams: { a: { ...stdio, tools: { allow: 'x' } } } })[0]).toMatch(/^upstreams\.a\.tools\.allow: expected a list of tool name or globs/);
    expect(problemsOf({ upstreams: { a: { ...stdio, url: 'https://x' } } })[0]).toMatch(/^upstreams\.a: expected exactly one of command/);
    expect(problemsOf({ upstreams: { a: stdio }, federation: { prefix: 'sometimes' } })[0]).toMatch(/^federation\.prefix: expected one of "always", "on-clash", "never"/);
    expect(problemsOf({ upstreams: { a: stdio }, federation: { separator: '/' } })[0]).toMatch(/^federation\.separator: expected a separator of 1 to 8 characters/);
    expect(problemsOf({ upstream: stdio, federation: {} })).toEqual(['federation: applies only to several upstreams (upstreams)']);
    expect(problemsOf({ upstreams: { a: { ...stdio, layers: [{ retyr: {} }] } } })[0]).toMatch(/^upstreams\.a\.layers\[0\]: unknown layer "retyr"; did you mean "retry"\?/);
  });

  it('check covers every upstream: its stack and its command, under upstreams.<name>', () => {
    const loaded = validateConfig(
      {
        upstreams: {
          good: stdio,
          'bad-one': { command: 'no-such-command-anywhere', layers: [{ retry: { backoff: { initialDelayMs: 500, maxDelayMs: 100 } } }] },
        },
      },
      'test config',
    );
    expect(checkGateway(loaded)).toEqual([
      expect.stringMatching(/^upstreams\["bad-one"\]\.layers\[0\]\.retry\.backoff\.maxDelayMs: expected at least/),
      'upstreams["bad-one"].command: "no-such-command-anywhere" was not found on PATH',
    ]);
  });
});
