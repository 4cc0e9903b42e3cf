/** Raw `ws` peers for tests that must send what no well-behaved transport would. */
import type { ClientRequestArgs } from 'node:http';
import { type ClientOptions, WebSocket } from 'ws';

export interface Closed {
  code: number;
  reason: string;
}

/** Opens a raw WebSocket (subprotocol mcp unless told otherwise). */
export function rawClient(url: string, options: ClientOptions & ClientRequestArgs & { protocols?: string[] } = {}): Promise<WebSocket> {
  const { protocols = ['mcp'], ...rest } = options;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, rest);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

export function closed(ws: WebSocket): Promise<Closed> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

/** The status and body of a refused upgrade. */
export function refusal(url: string, options: ClientOptions & ClientRequestArgs & { protocols?: string[] } = {}): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  const { protocols = ['mcp'], ...rest } = options;
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, rest);
    ws.on('error', () => {});
    ws.once('open', () => reject(new Error('the upgrade was accepted')));
    ws.once('unexpected-response', (req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        req.destroy();
        resolve({ status: res.statusCode ?? 0, body, headers: res.headers });
      });
    });
  });
}

/** Sends a request and resolves with the next message that answers it. */
export function request(ws: WebSocket, message: Record<string, unknown>): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const onMessage = (data: Buffer) => {
      const parsed = JSON.parse(data.toString()) as Record<string, unknown>;
      if (parsed['id'] === message['id']) {
        ws.off('message', onMessage);
        resolve(parsed);
      }
    };
    ws.on('message', onMessage);
    ws.send(JSON.stringify(message));
  });
}

export const INITIALIZE = {
  jsonrpc: '2.0',
  id: 1,
  method: 'initialize',
  params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '0' } },
};
