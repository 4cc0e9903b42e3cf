/** What the gateway answers when a protocol era cannot be served (docs/gateway.md, "The 2026-07-28 era over HTTP"). */

/** The JSON-RPC code of an unsupported protocol version (the SDK's UnsupportedProtocolVersion). */
export const UNSUPPORTED_PROTOCOL_VERSION = -32022;

/** What is served when the 2026-07-28 era cannot be: the 2025 eras, newest first. */
export const SESSION_ERA_VERSIONS = ['2025-11-25', '2025-06-18', '2025-03-26', '2024-11-05'] as const;
