/**
 * compression({ encodings, minBytes }): compresses what crosses the wire with the
 * transport's own, negotiated mechanism — so a peer without support keeps working on
 * identity:
 *
 *   - WebSocket (mcp-layers/ws): permessage-deflate (`deflate`), negotiated in the
 *     opening handshake; messages of at least `minBytes` bytes are deflated;
 *   - Streamable HTTP client (the SDK's transport with createFetch() from
 *     mcp-layers/http): request bodies get the first of `encodings` the server lists in
 *     its Accept-Encoding (zstd, br, gzip); responses are negotiated by Accept-Encoding;
 *   - Streamable HTTP server (served by McpHttpServer): responses in the first of
 *     `encodings` the client accepts; SSE streams are flushed per event.
 *
 * It publishes `bytes-compressed` and `wire` on the wrapped transport's bus. Any other
 * transport (stdio, a foreign `fetch`) is refused at wrap() time, saying what to use.
 */
import { integerOption, optionsObject } from '../src/core/options.ts';
import type { Layer, LayerHost } from '../src/core/layer.ts';
import { type CompressionSettings, type Encoding, encodingsOption, wireCapabilities } from '../src/core/wire.ts';

export interface CompressionOptions {
  /** Allowed encodings, most preferred first. Default `['zstd', 'br', 'gzip', 'deflate']` (those this Node has). */
  encodings?: readonly Encoding[];
  /** Messages and bodies smaller than this many bytes are sent uncompressed. Default 1024. */
  minBytes?: number;
}

export function compression(options?: CompressionOptions): Layer {
  const o = optionsObject(options, 'compression', ['encodings', 'minBytes']);
  const encodings = encodingsOption('compression.encodings', o.encodings, ['zstd', 'br', 'gzip', 'deflate']);
  const minBytes = integerOption('compression.minBytes', o.minBytes, 1024, 0);
  const settings: CompressionSettings = { encodings, minBytes };
  return {
    name: 'compression',
    handle: (_ctx, next) => next(),
    attach(host: LayerHost) {
      const caps = wireCapabilities(host.inner);
      const control = caps.control;
      if (control === undefined) {
        throw new TypeError(
          `compression: ${caps.transport} has no compression this layer can drive; use mcp-layers/ws transports, the SDK's StreamableHTTPClientTransport with { fetch: createFetch() } from mcp-layers/http, or an HTTP server transport served by McpHttpServer`,
        );
      }
      control.compress(settings);
      return control.observe(host.events);
    },
  };
}
