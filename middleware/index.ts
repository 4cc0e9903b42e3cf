/** Every layer, one file each. Layers depend on the core (src/), never the reverse. */
export { batching, BATCHING_PROTOCOL_VERSIONS, type BatchingOptions } from './batching.ts';
export { compression, type CompressionOptions } from './compression.ts';
export {
  DEFAULT_REFRESH_SKEW_MS,
  FileTokenStore,
  MemoryTokenStore,
  oauth,
  type AccessToken,
  type ClientAuthentication,
  type OAuthLayer,
  type OAuthOptions,
  type SdkAuthProvider,
  type SdkOAuthClientProvider,
  type StoredTokens,
  type TokenStore,
  type UnauthorizedEvent,
} from './oauth.ts';
