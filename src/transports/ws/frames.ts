/**
 * Reading a WebSocket message as MCP: UTF-8 text holding one JSON-RPC message or a
 * non-empty JSON-RPC array of them. Anything else is a protocol error the connection
 * closes on (1007); the problem says exactly what was wrong, never echoing the payload
 * beyond the short quotes of validate.ts.
 *
 * UTF-8 is checked here rather than by `ws` (the transports set `skipUTF8Validation`):
 * `ws` fails the connection with a 1007 that carries no reason, and the peer deserves
 * to learn which problem it was.
 */
import { isUtf8 } from 'node:buffer';
import type { JSONRPCMessage } from '../../core/jsonrpc.ts';
import { classify } from '../../core/validate.ts';

export type Parsed = { ok: true; messages: JSONRPCMessage[]; batch: boolean } | { ok: false; problem: string };

export function parseFrame(data: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): Parsed {
  const buffer = Array.isArray(data) ? Buffer.concat(data) : Buffer.isBuffer(data) ? data : Buffer.from(data);
  // Binary frames are accepted when they hold UTF-8 JSON (some clients send Buffers).
  if (!isUtf8(buffer)) return { ok: false, problem: isBinary ? 'a binary message that is not valid UTF-8 text' : 'a text message that is not valid UTF-8' };
  const text = buffer.toString('utf8');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    return { ok: false, problem: `a message that is not valid JSON (${jsonSyntaxError(error as Error)})` };
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

/**
 * V8's syntax error without the excerpt of the input it quotes (`Unexpected token 'x', "…"
 * is not valid JSON`) and without the line and column a one-line message does not need:
 * short enough for a close reason.
 */
function jsonSyntaxError(error: Error): string {
  return error.message.replace(/, (?:\.\.\.)?".*" is not valid JSON$/s, '').replace(/ \(line \d+ column \d+\)$/, '');
}
