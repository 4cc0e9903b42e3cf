/**
 * Command-line options over a config file, for every command that runs something
 * (gateway, worker): each option sets a config path, and the result is validated as one
 * config — so a bad option reads like a bad file, named by the option, not the path:
 *
 *   mcp-layers worker: --max-in-flight: expected an integer >= 1, got "lots"
 */
import { ConfigError, type LoadedConfig, validateConfig } from '../config/load.ts';

/** A config being overridden: its sections, and which option set which path. */
export class Overrides {
  readonly config: Record<string, Record<string, unknown>>;
  /** Config path → the option that set it. */
  readonly #flagged = new Map<string, string>();

  constructor(base: LoadedConfig | undefined) {
    this.config = structuredClone((base?.config ?? { upstream: {} }) as Record<string, unknown>) as Record<string, Record<string, unknown>>;
  }

  section(name: string): Record<string, unknown> {
    return (this.config[name] ??= {});
  }

  /** `target[key] = value`, set by `flag`; problems at `path` name the flag. */
  set(flag: string, path: string, target: Record<string, unknown>, key: string, value: unknown): void {
    target[key] = value;
    this.#flagged.set(path, flag);
  }

  /** Validates the result; a ConfigError's problems name the options that set them. */
  validate(source: string, baseDir: string): LoadedConfig {
    try {
      return validateConfig(this.config, source, { baseDir, substitute: false });
    } catch (error) {
      if (!(error instanceof ConfigError)) throw error;
      const problems = error.problems.map((problem) => {
        for (const [path, flag] of this.#flagged) if (problem.startsWith(`${path}:`) || problem.startsWith(`${path}[`)) return `${flag}${problem.slice(path.length)}`;
        return problem;
      });
      throw new ConfigError(source, problems);
    }
  }
}

/** A number when the option looks like one, else the text (for the schema to refuse by name). */
export function numeric(raw: string | undefined): number | string | undefined {
  return raw === undefined ? undefined : /^-?\d+(\.\d+)?$/.test(raw.trim()) ? Number(raw) : raw;
}

/** `8080`, `:8080`, `0.0.0.0:8080`, `[::1]:8080`, `localhost:0`. */
export function parseListen(value: string): { host: string | undefined; port: number | string } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(.+)$/.exec(value.trim());
  const host = match === null ? undefined : (match[1] ?? (match[2] === '' ? undefined : match[2]));
  const rawPort = match === null ? value.trim() : (match[3] as string);
  return { host, port: /^\d+$/.test(rawPort) ? Number(rawPort) : rawPort };
}
