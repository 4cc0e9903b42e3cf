/**
 * mcp-layers/ws: MCP over WebSocket (subprotocol `mcp`) on the `ws` library.
 *
 *   WebSocketClientTransport(url, options)  a client transport that reconnects on its own
 *   listenWebSocket({ port, onconnection })   a server: one Transport per connection
 *   new McpWebSocketServer({ server, path, onconnection })  attached to your http(s) server
 */
export { WebSocketClientTransport, type ReconnectOptions, type WebSocketClientTransportOptions } from './client.ts';
export { McpWebSocketServer, listenWebSocket, WebSocketServerTransport, type WebSocketServerOptions } from './server.ts';
export type { HeartbeatOptions, PerMessageDeflateSettings, WebSocketCommonOptions } from './options.ts';
export { AuthenticationError, type Authenticate, type GuardOptions } from '../guard.ts';
