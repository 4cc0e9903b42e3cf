/**
 * Live reload (SIGHUP, `--watch`): the config is read and checked exactly as
 * `mcp-layers check` would, and only a config with no problem is applied. A bad file keeps
 * the running config; every problem is logged by path and line. Reloads run one at a
 * time: one asked for while another runs happens once after it, with the file as it is
 * then — a burst of saves is one reload, and the last one always wins.
 *
 * What applying means is the gateway's (Gateway.reload, docs/gateway.md "Live reload");
 * this decides when, counts each outcome and keeps the generation.
 */
import type { Counter, Gauge, Registry } from 'prom-client';
import { asError } from '../../core/errors.ts';
import { ConfigError, type LoadedConfig } from '../config/load.ts';
import { counterOf, gaugeOf } from '../families.ts';
import type { GatewayLogger } from '../logger.ts';

export type ReloadTrigger = 'signal' | 'watch' | 'api';

/** What applying a config changed, for the log line; `needsRestart` names settings that apply only at the next start. */
export interface AppliedConfig {
  readonly changes: readonly string[];
  readonly needsRestart: readonly string[];
}

export interface ReloadOutcome {
  readonly outcome: 'applied' | 'unchanged' | 'rejected';
  /** The generation running after this reload (1 is the config the process started with). */
  readonly generation: number;
  readonly problems: readonly string[];
  readonly changes: readonly string[];
}

export interface ReloaderOptions {
  /** Reads the config again (the file, with the command line's options over it); throws ConfigError. */
  readonly load: () => LoadedConfig;
  /** What `mcp-layers check` finds beyond the schema: layers, commands. */
  readonly check: (loaded: LoadedConfig) => readonly string[];
  readonly apply: (loaded: LoadedConfig) => Promise<AppliedConfig>;
  readonly logger: GatewayLogger;
  readonly registry: Registry;
}

export const RELOAD_METRIC_FAMILIES = [
  { name: 'mcp_layers_gateway_config_generation', type: 'gauge', labels: [], help: 'The config generation running: 1 at start, +1 for every reload applied.' },
  { name: 'mcp_layers_gateway_config_reloads_total', type: 'counter', labels: ['trigger', 'outcome'], help: 'Config reloads, by what asked (signal, watch, api) and how they ended: applied, unchanged, rejected (the running config stays).' },
  { name: 'mcp_layers_gateway_config_last_reload_success', type: 'gauge', labels: [], help: '1 when the last reload was applied (or changed nothing), 0 when it was rejected; 1 before any reload.' },
  { name: 'mcp_layers_gateway_config_last_reload_timestamp_seconds', type: 'gauge', labels: [], help: 'When the last reload ended (Unix seconds); 0 before any reload.' },
] as const;

export class ConfigReloader {
  readonly #options: ReloaderOptions;
  readonly #metrics: { generation: Gauge; reloads: Counter; success: Gauge; timestamp: Gauge };
  #generation = 1;
  #running: Promise<ReloadOutcome> | undefined;
  #queued: Promise<ReloadOutcome> | undefined;
  #nextLoad: () => LoadedConfig;

  constructor(options: ReloaderOptions) {
    this.#options = options;
    this.#nextLoad = options.load;
    const [generation, reloads, success, timestamp] = RELOAD_METRIC_FAMILIES;
    const first = options.registry.getSingleMetric(generation.name) === undefined;
    // Gateways that share a registry share these, as they share the gateway's other families.
    this.#metrics = {
      generation: gaugeOf(options.registry, generation),
      reloads: counterOf(options.registry, reloads),
      success: gaugeOf(options.registry, success),
      timestamp: gaugeOf(options.registry, timestamp),
    };
    if (first) {
      this.#metrics.generation.set(1);
      this.#metrics.success.set(1);
      this.#metrics.timestamp.set(0);
    }
  }

  get generation(): number {
    return this.#generation;
  }

  /** Reads, checks and applies the config; resolves with what happened (never rejects). */
  /** `load` replaces the configured one for this reload (a config given in code). */
  reload(trigger: ReloadTrigger, load = this.#options.load): Promise<ReloadOutcome> {
    if (this.#running === undefined) return this.#start(trigger, load);
    // One reload waits behind the running one, whoever asks: it reads the file as it is by then.
    this.#nextLoad = load;
    this.#queued ??= this.#running.then(() => {
      this.#queued = undefined;
      return this.#start(trigger, this.#nextLoad);
    });
    return this.#queued;
  }

  #start(trigger: ReloadTrigger, load: () => LoadedConfig): Promise<ReloadOutcome> {
    const running = this.#run(trigger, load).finally(() => {
      if (this.#running === running) this.#running = undefined;
    });
    this.#running = running;
    return running;
  }

  async #run(trigger: ReloadTrigger, load: () => LoadedConfig): Promise<ReloadOutcome> {
    const { logger } = this.#options;
    let outcome: ReloadOutcome;
    try {
      const loaded = load();
      const problems = this.#options.check(loaded);
      if (problems.length > 0) throw new ConfigError(loaded.source, problems);
      const applied = await this.#options.apply(loaded);
      if (applied.changes.length === 0) {
        outcome = { outcome: 'unchanged', generation: this.#generation, problems: [], changes: [] };
        logger.info(`config reloaded (${trigger}): nothing changed`, { event: 'config-reload', trigger, outcome: 'unchanged', generation: this.#generation });
      } else {
        this.#generation++;
        outcome = { outcome: 'applied', generation: this.#generation, problems: [], changes: applied.changes };
        logger.info(`config reloaded (${trigger}): generation ${this.#generation}: ${applied.changes.join('; ')}`, {
          event: 'config-reload',
          trigger,
          outcome: 'applied',
          generation: this.#generation,
          changes: applied.changes,
        });
      }
      for (const setting of applied.needsRestart) {
        logger.warn(`config reload: ${setting} changed; it applies at the next start, the running value stays`, { event: 'config-reload-restart-needed', setting });
      }
    } catch (error) {
      const problems = error instanceof ConfigError ? error.problems : [asError(error).message];
      outcome = { outcome: 'rejected', generation: this.#generation, problems, changes: [] };
      const source = error instanceof ConfigError ? error.source : 'the configuration';
      logger.error(`config reload (${trigger}) rejected; generation ${this.#generation} keeps running. ${source}:\n${problems.map((p) => `  ${p}`).join('\n')}`, {
        event: 'config-reload',
        trigger,
        outcome: 'rejected',
        generation: this.#generation,
        problems,
      });
    }
    this.#metrics.reloads.inc({ trigger, outcome: outcome.outcome });
    this.#metrics.generation.set(this.#generation);
    this.#metrics.success.set(outcome.outcome === 'rejected' ? 0 : 1);
    this.#metrics.timestamp.set(Date.now() / 1000);
    return outcome;
  }
}
