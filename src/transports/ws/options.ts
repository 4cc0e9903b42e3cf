/** Options shared by the WebSocket client and server, their defaults and validation. */
import type { PerMessageDeflateOptions } from 'ws';

import { EventBus } from '../../core/events.ts';
import { durationOption, integerOption, invalidOption, settingsObject } from '../../core/options.ts';
import type { ChannelSettings } from './channel.ts';

/** The WebSocket subprotocol MCP uses. */
export const SUBPROTOCOL = 'mcp';

export interface PerMessageDeflateSettings {
  /** Messages shorter than this many bytes are sent uncompressed. Default 1024. */
  minBytes?: number;
  /** zlib level 1 (fast) … 9 (small). Default 6. */
  level?: number;
}

export interface HeartbeatOptions {
  /** How often to ping. Default 30 000 ms. */
  intervalMs?: number;
  /** How long a ping may go unanswered before the connection is dropped. Default 10 000 ms. */
  timeoutMs?: number;
}

export interface WebSocketCommonOptions {
  /** The largest message accepted, in bytes; a larger one closes the connection with 1009. */
  maxPayloadBytes?: number;
  /** permessage-deflate: offered by the client, accepted by the server. `false` turns it off. Default on. */
  perMessageDeflate?: boolean | PerMessageDeflateSettings;
  /** Pings that detect a dead peer. `false` turns them off. */
  heartbeat?: false | HeartbeatOptions;
  /** send() waits while more than this many bytes are buffered for the socket. Default 1 MiB. */
  highWaterMarkBytes?: number;
  /** Where the transport publishes `connection`, `heartbeat`, `reconnect`, `wire`... (default: a bus of its own, `transport.events`). */
  events?: EventBus;
}

export interface ResolvedCommon {
  channel: ChannelSettings;
  /** undefined when permessage-deflate is off. */
  deflate: { minBytes: number; level: number } | undefined;
  events: EventBus;
}

export const DEFAULT_HIGH_WATER_MARK = 1024 * 1024;
export const DEFAULT_HEARTBEAT_INTERVAL_MS = 30_000;
export const DEFAULT_HEARTBEAT_TIMEOUT_MS = 10_000;
export const DEFAULT_DEFLATE_MIN_BYTES = 1024;

/** Option names every WebSocket transport takes. */
export const COMMON_OPTIONS = ['maxPayloadBytes', 'perMessageDeflate', 'heartbeat', 'highWaterMarkBytes', 'events'] as const;

export function resolveCommon(prefix: string, label: string, options: WebSocketCommonOptions, defaultMaxPayload: number): ResolvedCommon {
  const maxPayload = integerOption(`${prefix}.maxPayloadBytes`, options.maxPayloadBytes, defaultMaxPayload, 1);
  const highWaterMark = integerOption(`${prefix}.highWaterMarkBytes`, options.highWaterMarkBytes, DEFAULT_HIGH_WATER_MARK, 0);
  let heartbeatIntervalMs = DEFAULT_HEARTBEAT_INTERVAL_MS;
  let heartbeatTimeoutMs = DEFAULT_HEARTBEAT_TIMEOUT_MS;
  if (options.heartbeat === false) {
    heartbeatIntervalMs = 0;
  } else if (options.heartbeat !== undefined) {
    const heartbeat = settingsObject(`${prefix}.heartbeat`, options.heartbeat, ['intervalMs', 'timeoutMs']);
    heartbeatIntervalMs = durationOption(`${prefix}.heartbeat.intervalMs`, heartbeat['intervalMs'], DEFAULT_HEARTBEAT_INTERVAL_MS, 1);
    heartbeatTimeoutMs = durationOption(`${prefix}.heartbeat.timeoutMs`, heartbeat['timeoutMs'], Math.min(DEFAULT_HEARTBEAT_TIMEOUT_MS, heartbeatIntervalMs), 1);
  }
  let deflate: ResolvedCommon['deflate'] = { minBytes: DEFAULT_DEFLATE_MIN_BYTES, level: 6 };
  const pmd = options.perMessageDeflate;
  if (pmd === false) {
    deflate = undefined;
  } else if (pmd !== undefined && pmd !== true) {
    const settings = settingsObject(`${prefix}.perMessageDeflate`, pmd, ['minBytes', 'level']);
    deflate = {
      minBytes: integerOption(`${prefix}.perMessageDeflate.minBytes`, settings['minBytes'], DEFAULT_DEFLATE_MIN_BYTES, 0),
      level: integerOption(`${prefix}.perMessageDeflate.level`, settings['level'], 6, 1, 9),
    };
  }
  if (options.events !== undefined && !(options.events instanceof EventBus)) {
    throw invalidOption(`${prefix}.events`, 'an EventBus', options.events);
  }
  return {
    channel: { label, highWaterMark, heartbeatIntervalMs, heartbeatTimeoutMs, maxPayload },
    deflate,
    events: options.events ?? new EventBus(),
  };
}

/** ws's permessage-deflate options for what we resolved. The per-message decision is ours (minBytes). */
export function wsDeflateOptions(deflate: ResolvedCommon['deflate']): PerMessageDeflateOptions | false {
  if (deflate === undefined) return false;
  return {
    zlibDeflateOptions: { level: deflate.level },
    // The compress decision is made per message by the channel (the compression layer can tune it).
    threshold: 0,
    concurrencyLimit: 10,
  };
}
