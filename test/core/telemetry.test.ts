/** What the observability layers share: network inference, option checks, optional peers. */
import { describe, expect, it } from 'vitest';
import { requirePeer, tryRequirePeer } from '#layer-kit/peer-deps.ts';
import { inferNetwork, validateNetwork } from '#middleware/observability/telemetry.ts';
import type { Transport } from '#core/transport.ts';

function transportNamed(name: string, fields: Record<string, unknown> = {}): Transport {
  // A transport whose constructor has `name`, as the SDK's classes do.
  const Class = { [name]: class { start = async () => {}; send = async () => {}; close = async () => {}; } }[name] as new () => Transport;
  return Object.assign(new Class(), fields);
}

describe('inferNetwork', () => {
  it('reads the SDK transport classes and the server URL they hold', () => {
    expect(inferNetwork(transportNamed('StdioClientTransport'))).toEqual({ transport: 'pipe' });
    expect(inferNetwork(transportNamed('StdioServerTransport'))).toEqual({ transport: 'pipe' });
    expect(inferNetwork(transportNamed('StreamableHTTPClientTransport', { _url: new URL('https://mcp.example.com/mcp') }))).toEqual({
      transport: 'tcp',
      protocolName: 'http',
      serverAddress: 'mcp.example.com',
      serverPort: 443,
    });
    expect(inferNetwork(transportNamed('WebSocketClientTransport', { url: 'ws://[::1]:8080/' }))).toEqual({
      transport: 'tcp',
      protocolName: 'websocket',
      serverAddress: '::1',
      serverPort: 8080,
    });
    expect(inferNetwork(transportNamed('InMemoryTransport'))).toEqual({});
    expect(inferNetwork(transportNamed('Custom', { url: 'not a url' }))).toEqual({});
  });
});

describe('validateNetwork', () => {
  it('keeps the fields given and names the bad one', () => {
    expect(validateNetwork({ transport: 'tcp', serverPort: 443, serverAddress: undefined }, 'x.network')).toEqual({ transport: 'tcp', serverPort: 443 });
    expect(() => validateNetwork('tcp', 'x.network')).toThrow('x.network: expected an object');
    expect(() => validateNetwork({ transport: '' }, 'x.network')).toThrow('x.network.transport: expected a non-empty string, got ""');
    expect(() => validateNetwork({ serverPort: 1.5 }, 'x.network')).toThrow('x.network.serverPort');
  });
});

describe('optional peer dependencies', () => {
  it('says what to install when one is missing', () => {
    expect(() => requirePeer('mcp-layers-no-such-package', 'tracing()')).toThrow(
      'tracing() needs the optional peer dependency "mcp-layers-no-such-package": npm install mcp-layers-no-such-package',
    );
    expect(tryRequirePeer('mcp-layers-no-such-package')).toBeUndefined();
    expect(tryRequirePeer<{ trace: unknown }>('@opentelemetry/api')?.trace).toBeDefined();
  });
});
