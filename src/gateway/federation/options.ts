/** The federation section with its defaults filled in (docs/gateway.md lists them). */
import type { FederationConfig } from '../config/gateway.ts';

export type PrefixMode = 'always' | 'on-clash' | 'never';

export interface FederationSettings {
  readonly prefix: PrefixMode;
  readonly separator: string;
  readonly pageSize: number;
  /** How long a list stays fresh when its upstream sends no ttlMs and declares no listChanged. */
  readonly cacheTtlMs: number;
}

export const FEDERATION_DEFAULTS: FederationSettings = { prefix: 'always', separator: '__', pageSize: 100, cacheTtlMs: 5_000 };

export function federationSettingsOf(config: FederationConfig | undefined): FederationSettings {
  return {
    prefix: config?.prefix ?? FEDERATION_DEFAULTS.prefix,
    separator: config?.separator ?? FEDERATION_DEFAULTS.separator,
    pageSize: config?.pageSize ?? FEDERATION_DEFAULTS.pageSize,
    cacheTtlMs: config?.cacheTtlMs ?? FEDERATION_DEFAULTS.cacheTtlMs,
  };
}

/** How many pages of one upstream's list the gateway follows before it gives up on it. */
export const MAX_MEMBER_PAGES = 100;
