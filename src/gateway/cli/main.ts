#!/usr/bin/env node
/**
 * The `mcp-layers` command: gateway, worker, check, schema (help.ts says what each does).
 *
 * Exit codes: 0 done; 1 failed while running; 2 invalid arguments or configuration —
 * reported before anything starts.
 */
import { configJsonSchema, type UpstreamConfig } from '../config/gateway.ts';
import { ConfigError, loadConfigFile } from '../config/load.ts';
import { checkGateway } from '../gateway.ts';
import { PACKAGE_VERSION } from '../version.ts';
import { workerSettingsOf } from '../worker/settings.ts';
import { gatewayCommand } from './gateway.ts';
import { HELP, MAIN_HELP } from './help.ts';
import { EXIT_FAILED, EXIT_INVALID, parse, UsageError } from './usage.ts';

async function main(argv: readonly string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case undefined:
      process.stderr.write(MAIN_HELP);
      return EXIT_INVALID;
    case '-h':
    case '--help':
      process.stdout.write(MAIN_HELP);
      return 0;
    case '-v':
    case '--version':
      process.stdout.write(`${PACKAGE_VERSION}\n`);
      return 0;
    case 'help': {
      const topic = rest[0];
      if (topic === undefined) process.stdout.write(MAIN_HELP);
      else if (HELP[topic] !== undefined) process.stdout.write(HELP[topic]);
      else throw new UsageError(`unknown command "${topic}"`, 'help');
      return 0;
    }
    case 'gateway':
      return gatewayCommand(rest);
    case 'worker':
      // Loaded on demand: the broker clients are not the gateway's to load.
      return (await import('./worker.ts')).workerCommand(rest);
    case 'check':
      return checkCommand(rest);
    case 'schema':
      return schemaCommand(rest);
    default:
      throw new UsageError(`unknown command "${command}"; expected gateway, worker, check, schema or help`);
  }
}

async function checkCommand(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parse(argv, { config: { type: 'string', short: 'c' }, quiet: { type: 'boolean', short: 'q' }, help: { type: 'boolean', short: 'h' } }, 'check', true);
  if (values['help'] === true) {
    process.stdout.write(HELP['check'] as string);
    return 0;
  }
  if (positionals.length > 1) throw new UsageError(`expected one config file, got ${positionals.length}`, 'check');
  const file = (values['config'] as string | undefined) ?? positionals[0];
  if (file === undefined) throw new UsageError('expected a config file: mcp-layers check --config FILE', 'check');
  const loaded = loadConfigFile(file);
  // A file with a worker section is checked for the worker too (its upstream must then be a stdio command).
  const worker = loaded.config.worker === undefined ? undefined : await import('../worker/worker.ts');
  const problems = worker === undefined ? checkGateway(loaded) : worker.checkWorker(loaded);
  if (problems.length > 0) throw new ConfigError(file, problems);
  if (values['quiet'] !== true) {
    const { config } = loaded;
    const describe = (u: UpstreamConfig) => (u.command !== undefined ? `stdio (${u.command})` : (u.url as string).split('?')[0]);
    const upstream =
      config.upstreams === undefined ? `upstream ${describe(config.upstream as UpstreamConfig)}` : `upstreams ${Object.entries(config.upstreams).map(([name, u]) => `${name}: ${describe(u)}`).join(', ')}`;
    process.stdout.write(`${file}: valid — ${upstream}${worker === undefined ? '' : `, worker ${workerSettingsOf(config).address.description}`}\n`);
  }
  return 0;
}

function schemaCommand(argv: readonly string[]): number {
  const { values } = parse(argv, { help: { type: 'boolean', short: 'h' } }, 'schema', false);
  if (values['help'] === true) {
    process.stdout.write(HELP['schema'] as string);
    return 0;
  }
  process.stdout.write(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
  return 0;
}


// `mcp-layers schema | head` closes the pipe early: that is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof UsageError) {
      process.stderr.write(`mcp-layers${error.command === undefined ? '' : ` ${error.command}`}: ${error.message}\n`);
      process.stderr.write(`Run \`mcp-layers ${error.command === undefined ? '' : `${error.command} `}--help\` for usage.\n`);
      process.exitCode = EXIT_INVALID;
    } else if (error instanceof ConfigError) {
      process.stderr.write(`mcp-layers: ${error.message}\n`);
      process.exitCode = EXIT_INVALID;
    } else {
      process.stderr.write(`mcp-layers: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
      process.exitCode = EXIT_FAILED;
    }
  },
);
