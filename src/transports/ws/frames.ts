/**
 * Reading a WebSocket message as MCP: UTF-8 text holding one JSON-RPC message or a
 * non-empty JSON-RPC array of them. Anything else is a protocol error the connection
 * closes on (1007); the reason says exactly what was wrong, never echoing the payload.
 */
import type { JSONRPCMessage } from '../../jsonrpc.ts';
import { classify } from '../../validate.ts';

export type Parsed = { ok: true; messages: JSONRPCMessage[]; batch: boolean } | { ok: false; problem: string };

const utf8 = new TextDecoder('utf-8', { fatal: true });

export function parseFrame(data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): Parsed {
  const buffer = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
  let text: string;
  if (isBinary) {
    // Binary frames are accepted when they hold UTF-8 JSON (some clients send Buffers).
    try {
      text = utf8.decode(buffer);
    } catch {
      return { ok: false, problem: 'a binary message that is not valid UTF-8' };
    }
  } else {
    // ws has already validated the UTF-8 of text frames.
    text = buffer.toString('utf8');
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { ok: false, problem: `a message that is not valid JSON (${(error as Error).message})` };
  }
  if (Array.isArray(value)) {
    if (value.length === 0) return { ok: false, problem: 'an empty JSON-RPC batch' };
    const messages: JSONRPCMessage[] = [];
    for (let i = 0; i < value.length; i++) {
      const classified = classify(value[i]);
      if (classified.kind === 'invalid') return { ok: false, problem: `item ${i} of a batch is not a JSON-RPC message: ${classified.problem}` };
      messages.push(classified.message);
    }
    return { ok: true, messages, batch: true };
  }
  const classified = classify(value);
  if (classified.kind === 'invalid') return { ok: false, problem: `a message that is not JSON-RPC 2.0: ${classified.problem}` };
  return { ok: true, messages: [classified.message], batch: false };
}
