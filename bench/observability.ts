/**
 * Issue 4 benchmark: what observability costs. SDK v1 Client → McpServer tools/call
 * over InMemoryTransport, the client transport bare vs wrapped with each observability
 * layer alone, then all three (logging at info, tracing with the real OpenTelemetry SDK
 * and a batch span processor, metrics), then all three in front of standard() when the
 * resilience layers are present. Target: the full stack ≥ 70 % of bare. A layer's own
 * cost is its time minus wrap(t, [])'s.
 */
import { Writable } from 'node:stream';
import { NodeSDK } from '@opentelemetry/sdk-node';
import { BatchSpanProcessor, type SpanExporter } from '@opentelemetry/sdk-trace';
import { Registry } from 'prom-client';
import winston from 'winston';
import * as layers from '#middleware/index.ts';
import { logging, metrics, tracing } from '#middleware/index.ts';
import type { LayerLike, Transport } from '#mcp-layers';
import { wrap } from '#mcp-layers';
import { sdkVariant } from './core.ts';
import type { Variant } from './harness.ts';

/** The OpenTelemetry SDK as an application would start it; spans are batched and dropped. */
export function startTracingSdk(): NodeSDK {
  let exported = 0;
  const exporter: SpanExporter = {
    export(spans, done) {
      exported += spans.length;
      done({ code: 0 });
    },
    shutdown: async () => {
      if (exported === 0) console.warn('the benchmark exported no spans');
    },
  };
  const sdk = new NodeSDK({
    autoDetectResources: false,
    spanProcessors: [new BatchSpanProcessor({ exporter })],
    metricReaders: [],
    logRecordProcessors: [],
  });
  sdk.start();
  return sdk;
}

/** A winston logger at info writing JSON lines nowhere (the formatting is still paid). */
export function nullLogger(): winston.Logger {
  const sink = new Writable({ write: (_chunk, _encoding, callback) => callback() });
  return winston.createLogger({ level: 'info', format: winston.format.json(), transports: [new winston.transports.Stream({ stream: sink })] });
}

const with_ = (make: () => LayerLike[]) => (t: Transport) => wrap(t, make());

/** The full observable stack issue 4 and issue 5 measure: logging at info, tracing, metrics. */
export function observableLayers(): LayerLike[] {
  return [logging({ logger: nullLogger() }), tracing(), metrics({ registry: new Registry() })];
}

export function observabilityVariants(): Variant[] {
  // standard() comes with the resilience layers; measured with them when they are present.
  const standard = (layers as Record<string, unknown>)['standard'] as (() => LayerLike) | undefined;
  const full = observableLayers;
  const variants = [
    sdkVariant('bare', undefined),
    // What the core costs by itself, so each layer's own cost can be read off.
    sdkVariant('wrap(t, [])', with_(() => [])),
    sdkVariant('logging (info)', with_(() => [logging({ logger: nullLogger() })])),
    sdkVariant('tracing (SDK, batch)', with_(() => [tracing()])),
    sdkVariant('metrics', with_(() => [metrics({ registry: new Registry() })])),
    sdkVariant('logging + tracing + metrics', with_(full)),
  ];
  if (standard !== undefined) {
    variants.push(sdkVariant('standard()', with_(() => [standard()])));
    variants.push(sdkVariant('logging + tracing + metrics + standard()', with_(() => [...full(), standard()])));
  }
  return variants;
}
