/**
 * The SDKs' own in-process links: a linked pair of SDK v1's or v2's InMemoryTransport.
 * (A link that misbehaves on demand is FaultyLink, in faulty-link.ts.)
 */
import { InMemoryTransport as V2InMemoryTransport } from '@modelcontextprotocol/server';
import { InMemoryTransport as V1InMemoryTransport } from '@modelcontextprotocol/sdk/inMemory.js';
import type { Transport } from '#core/transport.ts';

/** A linked [client side, server side] pair of the given SDK's InMemoryTransport. */
export function linkedPair(sdk: 'v1' | 'v2'): [Transport, Transport] {
  return sdk === 'v1' ? V1InMemoryTransport.createLinkedPair() : V2InMemoryTransport.createLinkedPair();
}
