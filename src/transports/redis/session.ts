/**
 * RedisServerTransport: what the application's McpServer connects to on a Redis worker —
 * one per 2025-era session, or one per sessionless (2026-07-28) request. Everything it
 * does is the broker server transport's (../broker/session.ts); the class names where
 * it came from.
 */
import { BrokerServerTransport } from '../broker/session.ts';

export class RedisServerTransport extends BrokerServerTransport {}
