/**
 * `mcp-layers gateway`: a config file, command-line options, or both (options win; a
 * command after `--` replaces the file's upstream and keeps its layers). The result is
 * validated as one config, so a bad option reads like a bad file:
 *
 *   mcp-layers gateway: --max-sessions: expected an integer >= 1, got "lots"
 *
 * SIGHUP, and `--watch` on every save, read the file again with the same options over it
 * (docs/gateway.md, "Live reload").
 */
import type { GatewayConfig } from '../config/gateway.ts';
import { type LoadedConfig, loadConfigFile } from '../config/load.ts';
import type { LogFormat, LogLevel } from '../logger.ts';
import { HELP } from './help.ts';
import { numeric, Overrides, parseListen } from './overrides.ts';
import { serve } from '../serve.ts';
import { parse, UsageError } from './usage.ts';

const OPTIONS = {
  config: { type: 'string', short: 'c' },
  upstream: { type: 'string', short: 'u' },
  listen: { type: 'string', short: 'l' },
  transports: { type: 'string' },
  'max-sessions': { type: 'string' },
  'idle-timeout': { type: 'string' },
  'drain-timeout': { type: 'string' },
  'log-level': { type: 'string' },
  'log-format': { type: 'string' },
  watch: { type: 'boolean', short: 'w' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** Which config path each option sets, to name the option when its value is wrong. */
const FLAG_PATHS: Record<string, string> = {
  '--upstream': 'upstream.url',
  '--listen': 'downstream.port',
  '--transports': 'downstream.transports',
  '--max-sessions': 'downstream.maxSessions',
  '--idle-timeout': 'downstream.idleTimeoutMs',
  '--drain-timeout': 'shutdown.drainTimeoutMs',
  '--log-level': 'observability.logs.level',
  '--log-format': 'observability.logs.format',
};

export async function gatewayCommand(argv: readonly string[]): Promise<number> {
  const split = argv.indexOf('--');
  const own = split === -1 ? argv : argv.slice(0, split);
  const command = split === -1 ? [] : argv.slice(split + 1);
  const { values } = parse(own, OPTIONS, 'gateway', false);
  if (values['help'] === true) {
    process.stdout.write(HELP['gateway'] as string);
    return 0;
  }
  if (split !== -1 && command.length === 0) throw new UsageError('expected a command after --', 'gateway');
  const file = values['config'] as string | undefined;
  const upstreamUrl = values['upstream'] as string | undefined;
  if (command.length > 0 && upstreamUrl !== undefined) throw new UsageError('expected either --upstream URL or a command after --, not both', 'gateway');
  if (file === undefined && command.length === 0 && upstreamUrl === undefined) {
    throw new UsageError('expected an upstream: --config FILE, --upstream URL, or a stdio server command after --', 'gateway');
  }
  if (values['watch'] === true && file === undefined) throw new UsageError('--watch needs --config FILE (the file to watch)', 'gateway');
  // Read again on every reload: the options apply over the file as it is then.
  const load = (): LoadedConfig => configFrom(file, values, command, upstreamUrl);
  const loaded = load();
  const served = await serve(loaded, {
    reload: { load, ...(values['watch'] === true ? { watch: file } : {}) },
    ...(values['log-level'] === undefined ? {} : { logLevel: values['log-level'] as LogLevel }),
    ...(values['log-format'] === undefined ? {} : { logFormat: values['log-format'] as LogFormat }),
  });
  await served.stopped;
  return 0;
}

/** The config the options make of the file (as it is now), validated. */
function configFrom(file: string | undefined, values: Record<string, unknown>, command: readonly string[], upstreamUrl: string | undefined): LoadedConfig {
  const base: LoadedConfig | undefined = file === undefined ? undefined : loadConfigFile(file);
  const overrides = new Overrides(base);
  const section = (name: string) => overrides.section(name);
  const set = (flag: string, target: Record<string, unknown>, key: string, value: unknown) => overrides.set(flag, FLAG_PATHS[flag] as string, target, key, value);

  const upstream = section('upstream');
  if (command.length > 0 || upstreamUrl !== undefined) {
    for (const key of ['command', 'args', 'env', 'cwd', 'stderr', 'url', 'headers', 'http', 'websocket']) delete upstream[key];
    if (command.length > 0) {
      upstream['command'] = command[0];
      if (command.length > 1) upstream['args'] = command.slice(1);
    } else {
      set('--upstream', upstream, 'url', upstreamUrl);
    }
  }
  const listen = values['listen'] as string | undefined;
  if (listen !== undefined) {
    const { host, port } = parseListen(listen);
    if (host !== undefined) section('downstream')['host'] = host;
    set('--listen', section('downstream'), 'port', port);
  }
  const transports = values['transports'] as string | undefined;
  if (transports !== undefined) {
    set('--transports', section('downstream'), 'transports', transports.split(',').map((t) => (t.trim() === 'ws' ? 'websocket' : t.trim())));
  }
  const number = (flag: string) => numeric(values[flag.slice(2)] as string | undefined);
  const maxSessions = number('--max-sessions');
  if (maxSessions !== undefined) set('--max-sessions', section('downstream'), 'maxSessions', maxSessions);
  const idle = number('--idle-timeout');
  if (idle !== undefined) set('--idle-timeout', section('downstream'), 'idleTimeoutMs', idle === 0 ? false : idle);
  const drain = number('--drain-timeout');
  if (drain !== undefined) set('--drain-timeout', section('shutdown'), 'drainTimeoutMs', drain);
  const logs = () => ((section('observability')['logs'] as Record<string, unknown> | undefined) ?? (section('observability')['logs'] = {})) as Record<string, unknown>;
  if (values['log-level'] !== undefined) set('--log-level', logs(), 'level', values['log-level']);
  if (values['log-format'] !== undefined) set('--log-format', logs(), 'format', values['log-format']);

  return overrides.validate(file ?? 'the command-line options', base?.baseDir ?? process.cwd());
}

export type { GatewayConfig };
