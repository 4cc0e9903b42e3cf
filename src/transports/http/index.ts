/**
 * mcp-layers/http: Streamable HTTP on undici and node:http.
 *
 *   createFetch(options)        a pooled, compressing `fetch` for the SDK's StreamableHTTPClientTransport
 *   listenHttp({ sessions })    serves SDK Streamable HTTP server transports with limits and compression
 */
export { createFetch, type CreateFetchOptions, type FetchCompressionOptions, type FetchInput, type McpFetch } from './fetch.ts';
export {
  listenHttp,
  McpHttpServer,
  type FetchHandler,
  type HandlerExtra,
  type HttpCompressionOptions,
  type HttpServerTransportLike,
  type McpHttpServerOptions,
} from './server.ts';
export { AuthenticationError, type Authenticate, type GuardOptions } from '../guard.ts';
