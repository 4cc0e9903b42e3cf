/**
 * `mcp-layers worker`: a config file, command-line options, or both (options win, as for
 * the gateway): `--upstream` is the broker URL (worker.broker), the command after `--`
 * the stdio server (upstream.command and args; the file's upstream layers stay).
 *
 *   mcp-layers worker --upstream nats://127.0.0.1:4222/tools -- node server.js
 */
import { McpLayersError } from '../../core/errors.ts';
import { ConfigError, loadConfigFile } from '../config/load.ts';
import type { LogFormat, LogLevel } from '../logger.ts';
import { serveWorker } from '../worker/serve.ts';
import { HELP } from './help.ts';
import { numeric, Overrides, parseListen } from './overrides.ts';
import { EXIT_FAILED, parse, UsageError } from './usage.ts';

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  upstream: { type: 'string', short: 'u' },
  listen: { type: 'string', short: 'l' },
  'max-in-flight': { type: 'string' },
  'max-sessions': { type: 'string' },
  'drain-timeout': { type: 'string' },
  id: { type: 'string' },
  'log-level': { type: 'string' },
  'log-format': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Which config path each option sets, to name the option when its value is wrong. */
const FLAG_PATHS: Record<string, string> = {
  '--upstream': 'worker.broker',
  '--listen': 'worker.port',
  '--max-in-flight': 'worker.maxInFlight',
  '--max-sessions': 'worker.maxSessions',
  '--drain-timeout': 'worker.drainTimeoutMs',
  '--id': 'worker.id',
  '--log-level': 'observability.logs.level',
  '--log-format': 'observability.logs.format',
};

export async function workerCommand(argv: readonly string[]): Promise<number> {
  const split = argv.indexOf('--');
  const own = split === -1 ? argv : argv.slice(0, split);
  const command = split === -1 ? [] : argv.slice(split + 1);
  const { values } = parse(own, OPTIONS, 'worker', false);
  if (values['help'] === true) {
    process.stdout.write(HELP['worker'] as string);
    return 0;
  }
  if (split !== -1 && command.length === 0) throw new UsageError('expected a command after --', 'worker');
  const file = values['config'] as string | undefined;
  const broker = values['upstream'] as string | undefined;
  if (file === undefined && (command.length === 0 || broker === undefined)) {
    throw new UsageError('expected a broker and a stdio server: --upstream nats://HOST:PORT/SERVICE (or redis://…) -- <command> [args...], or --config FILE', 'worker');
  }

  const base = file === undefined ? undefined : loadConfigFile(file);
  const overrides = new Overrides(base);
  const set = (flag: string, target: Record<string, unknown>, key: string, value: unknown) => overrides.set(flag, FLAG_PATHS[flag] as string, target, key, value);
  if (base !== undefined && base.config.worker === undefined && broker === undefined) {
    throw new UsageError(`${file} has no worker section: give the broker with --upstream nats://HOST:PORT/SERVICE (or redis://…), or add worker.broker to the file`, 'worker');
  }
  const worker = overrides.section('worker');
  if (broker !== undefined) set('--upstream', worker, 'broker', broker);
  if (command.length > 0) {
    const upstream = overrides.section('upstream');
    for (const key of ['command', 'args', 'env', 'cwd', 'stderr', 'url', 'headers', 'http', 'websocket']) delete upstream[key];
    upstream['command'] = command[0];
    if (command.length > 1) upstream['args'] = command.slice(1);
  }
  const listen = values['listen'] as string | undefined;
  if (listen !== undefined) {
    const { host, port } = parseListen(listen);
    if (host !== undefined) worker['host'] = host;
    set('--listen', worker, 'port', port);
  }
  for (const [flag, key] of [['--max-in-flight', 'maxInFlight'], ['--max-sessions', 'maxSessions'], ['--drain-timeout', 'drainTimeoutMs']] as const) {
    const value = numeric(values[flag.slice(2)] as string | undefined);
    if (value !== undefined) set(flag, worker, key, value);
  }
  if (values['id'] !== undefined) set('--id', worker, 'id', values['id']);
  const observability = overrides.section('observability');
  const logs = () => ((observability['logs'] as Record<string, unknown> | undefined) ?? (observability['logs'] = {})) as Record<string, unknown>;
  if (values['log-level'] !== undefined) set('--log-level', logs(), 'level', values['log-level']);
  if (values['log-format'] !== undefined) set('--log-format', logs(), 'format', values['log-format']);

  const loaded = overrides.validate(file ?? 'the command-line options', base?.baseDir ?? process.cwd());
  let served: Awaited<ReturnType<typeof serveWorker>>;
  try {
    served = await serveWorker(loaded, {
      ...(values['log-level'] === undefined ? {} : { logLevel: values['log-level'] as LogLevel }),
      ...(values['log-format'] === undefined ? {} : { logFormat: values['log-format'] as LogFormat }),
    });
  } catch (error) {
    // The world, not the config (the broker unreachable, its stream set up otherwise): said in one line, not a stack.
    if (!(error instanceof McpLayersError) || error instanceof ConfigError) throw error;
    process.stderr.write(`mcp-layers worker: ${error.message}\n`);
    return EXIT_FAILED;
  }
  await served.stopped;
  return 0;
}
